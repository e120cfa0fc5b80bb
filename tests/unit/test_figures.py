"""Loss-curve figure and table from run outputs."""

import json

import pytest

from workflow.report.loss_curves import main


def _fake_run(root, name, arch, losses):
    run = root / name
    run.mkdir(parents=True)
    rows = [
        {"kind": "train", "step": i + 1, "tokens": (i + 1) * 100, "loss": loss, "tokens_per_s": 10.0}
        for i, loss in enumerate(losses)
    ]
    rows.append({"kind": "valid", "step": len(losses), "tokens": len(losses) * 100, "loss": losses[-1]})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(
        json.dumps(
            {
                "arch": arch,
                "model": {"layers": 2, "hidden": 64, "heads": 2},
                "parameters": 1000,
                "tokens": 100 * len(losses),
                "final_train_loss": losses[-1],
                "train_tokens_per_s": 10.0,
                "device": "cpu",
            }
        )
    )
    (run / "eval_loss.json").write_text(json.dumps({"loss": losses[-1], "perplexity": 2.0}))
    return run


def _args(runs, tmp_path):
    return [
        "loss-curves",
        "--title",
        "t",
        "--metrics",
        *[str(r / "metrics.jsonl") for r in runs],
        "--summaries",
        *[str(r / "summary.json") for r in runs],
        "--evals",
        *[str(r / "eval_loss.json") for r in runs],
        "--png",
        str(tmp_path / "f.png"),
        "--pdf",
        str(tmp_path / "f.pdf"),
        "--table",
        str(tmp_path / "t.csv"),
    ]


def test_figure_and_table(tmp_path):
    import pandas as pd

    runs = [
        _fake_run(tmp_path, "gpt-neox_x", "gpt-neox", [5, 4, 3]),
        _fake_run(tmp_path, "llama_x", "llama", [5, 3.5, 2.5]),
    ]
    main(_args(runs, tmp_path))
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table["arch"]) == ["gpt-neox", "llama"] and list(table["valid_loss"]) == [3, 2.5]


def test_missing_eval_is_named(tmp_path):
    run = _fake_run(tmp_path, "llama_x", "llama", [5, 4])
    (run / "eval_loss.json").unlink()
    args = _args([run], tmp_path)
    args = (
        args[: args.index("--evals") + 1] + [str(tmp_path / "other" / "eval_loss.json")] + args[args.index("--png") :]
    )
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert not (tmp_path / "f.png").exists()
