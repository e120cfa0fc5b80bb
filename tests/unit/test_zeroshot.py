"""Zero-shot through lm-eval: offline task conversion, the Megatron LM, and a forced-answer scorer check."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import make_run_spec, require_shared, run_module, train_run
from workflow.errors import ScaleDAGError
from workflow.evaluate.zeroshot_tasks import TASKS, load_task, prepare_task

# Rows per file, from ../shared/data/zeroshot/README.md.
README_ROWS = {
    "lambada_openai": 5153,
    "hellaswag": 10042,
    "piqa": 1838,
    "arc_easy": 2376,
    "arc_challenge": 1172,
    "winogrande": 1267,
    "boolq": 3270,
}


@pytest.mark.shared_data
def test_every_offline_task_converts_without_loss():
    data = require_shared("zeroshot")
    for task, rows in README_ROWS.items():
        items, skipped = load_task(task, data)
        assert (len(items), skipped) == (rows, []), task


def _arc_file(root: Path, items: list[dict]) -> Path:
    (root / "arc").mkdir(parents=True, exist_ok=True)
    path = root / "arc" / "arc_easy.jsonl"
    path.write_text("".join(json.dumps(it) + "\n" for it in items))
    return path


def test_malformed_line_is_skipped_and_counted(tmp_path, capsys):
    good = {"query": "Question: Which is a metal?", "choices": ["iron", "oxygen", "neon"], "gold": 0}
    path = _arc_file(tmp_path, [good, good])
    with open(path, "a") as fh:
        fh.write('{"query": "Question: broken", "choices": ["a"]\n')  # not JSON
        fh.write(json.dumps({"query": "Q", "choices": ["a", "b"], "gold": 5}) + "\n")  # gold out of range
    stats = prepare_task("arc_easy", tmp_path, tmp_path / "out" / "arc_easy.jsonl")
    assert stats["items"] == 2 and stats["skipped"] == 2
    assert [s["line"] for s in stats["skipped_lines"]] == [3, 4]
    assert "skipped 2 malformed line(s)" in capsys.readouterr().out
    row = json.loads((tmp_path / "out" / "arc_easy.jsonl").read_text().splitlines()[0])
    assert row == {"question": "Which is a metal?", "choices": {"text": ["iron", "oxygen", "neon"]}, "label": 0}


def test_missing_task_file_names_it(tmp_path):
    with pytest.raises(ScaleDAGError, match=r"piqa/valid-labels.lst is missing"):
        (tmp_path / "piqa").mkdir()
        (tmp_path / "piqa" / "valid.jsonl").write_text("{}\n")
        prepare_task("piqa", tmp_path, tmp_path / "o.jsonl")


def test_sample_is_seeded_and_keeps_file_order(tmp_path):
    items = [{"query": f"Question: q{i}?", "choices": ["a", "b"], "gold": i % 2} for i in range(50)]
    _arc_file(tmp_path, items)
    a = prepare_task("arc_easy", tmp_path, tmp_path / "a.jsonl", limit=10, seed=1)
    prepare_task("arc_easy", tmp_path, tmp_path / "b.jsonl", limit=10, seed=1)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    qs = [int(json.loads(line)["question"][1:-1]) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(qs) == 10 and qs == sorted(qs) and a["random_acc"] == 0.5


def _zeroshot_cli(spec: dict, tasks: dict[str, Path], out_dir: Path, **kw):
    return run_module(
        "workflow.evaluate.zeroshot",
        [
            "--spec",
            json.dumps(spec),
            "--data",
            *[f"{t}={p}" for t, p in tasks.items()],
            "--out",
            *[f"{t}={out_dir / (t + '.json')}" for t in tasks],
        ],
        **kw,
    )


@pytest.mark.shared_data
def test_lm_eval_offline_on_tiny_checkpoint(tiny_corpus, trained_run, tmp_path):
    data = require_shared("zeroshot")
    prepare_task("piqa", data, tmp_path / "piqa.jsonl", limit=8)
    spec = make_run_spec(tiny_corpus, trained_run)
    _zeroshot_cli(
        spec, {"piqa": tmp_path / "piqa.jsonl"}, tmp_path, env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    )
    record = json.loads((tmp_path / "piqa.json").read_text())
    assert 0.0 <= record["metrics"]["acc"] <= 1.0 and 0.0 <= record["metrics"]["acc_norm"] <= 1.0
    assert record["metrics"]["samples"] == 8 and record["random_acc"] == 0.5 and record["model"] == "megatron"


def test_tokenizer_of_another_vocabulary_is_refused(tiny_corpus, trained_run, tmp_path):
    from workflow.data.tokenizer import train_tokenizer

    big = tmp_path / "tokenizer.json"
    train_tokenizer(Path(tiny_corpus["root"]) / "train.jsonl", big, vocab_size=1024)
    from workflow.evaluate.lm_eval_megatron import MegatronLM

    with pytest.raises(ScaleDAGError, match=r"tokenizer has \d+ tokens but the checkpoint's embedding has 512 rows"):
        MegatronLM.from_run(make_run_spec(tiny_corpus, trained_run), tokenizer_path=str(big))


# -- forced answers: a model trained to memorise hand-made items must get ~all of them right ---------
FACTS = [
    ("What colour is a zorbel?", "purple"),
    ("Where does the quimble live?", "under the bridge"),
    ("What does a fennix eat?", "copper coins"),
    ("Who built the tower of Vell?", "the glass masons"),
    ("What is the capital of Drusk?", "Mornhal"),
    ("How many legs has a trivet bird?", "seven"),
    ("What sound does a blorp make?", "a low whistle"),
    ("What metal is a sprocket made of?", "tungsten"),
]


@pytest.fixture(scope="module")
def memorised_run(tmp_path_factory):
    from workflow.data.tokenize import encode_jsonl
    from workflow.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("forced")
    docs = [f"Question: {q}\nAnswer: {a}" for q, a in FACTS]
    rng = random.Random(0)
    train = [d for _ in range(40) for d in rng.sample(docs, len(docs))]
    (root / "train.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in train))
    (root / "valid.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs * 4))
    train_tokenizer(root / "train.jsonl", root / "tokenizer.json", vocab_size=300)
    for split in ("train", "valid"):
        encode_jsonl(root / f"{split}.jsonl", root / "tokenizer.json", root / "tokens" / split)
    corpus = {
        "tokenizer": str(root / "tokenizer.json"),
        "train_prefix": str(root / "tokens" / "train"),
        "valid_prefix": str(root / "tokens" / "valid"),
    }
    spec = make_run_spec(corpus, root / "run", steps=120, lr=5e-3, save_interval=120, eval_interval=120)
    spec["vocab_size"] = 300
    train_run(spec)
    return spec, root


def test_lm_eval_scores_memorised_answers_correct(memorised_run, tmp_path):
    """lm-eval's arc_easy pipeline ("Question: ...\\nAnswer:" + each choice) on the memorised facts;
    the wrong choices are other facts' answers, so only the question can pick the right one."""
    spec, _ = memorised_run
    answers = [a for _, a in FACTS]
    items = []
    for i, (q, a) in enumerate(FACTS):
        wrong = [answers[(i + k) % len(FACTS)] for k in (1, 3, 5)]
        choices = wrong[: i % 4] + [a] + wrong[i % 4 :]
        items.append({"query": f"Question: {q}", "choices": choices, "gold": i % 4})
    _arc_file(tmp_path / "data", items)
    prepare_task("arc_easy", tmp_path / "data", tmp_path / "arc_easy.jsonl")
    _zeroshot_cli(spec, {"arc_easy": tmp_path / "arc_easy.jsonl"}, tmp_path)
    metrics = json.loads((tmp_path / "arc_easy.json").read_text())["metrics"]
    assert metrics["acc"] >= 7 / 8, metrics


def test_registry_matches_yaml_files():
    from workflow.evaluate.zeroshot import TASK_NAMES

    assert sorted(TASKS) == TASK_NAMES


@pytest.mark.shared_data
def test_megatron_lm_and_hf_export_agree(tiny_corpus, trained_run, tmp_path):
    """lm-eval's numbers must agree between the Megatron LM and the HF export (`hf` model)."""
    from workflow.evaluate.zeroshot import run_lm_eval

    data = require_shared("zeroshot")
    prepare_task("arc_easy", data, tmp_path / "arc_easy.jsonl", limit=16)
    spec = make_run_spec(tiny_corpus, trained_run)
    _zeroshot_cli(spec, {"arc_easy": tmp_path / "arc_easy.jsonl"}, tmp_path)
    megatron = json.loads((tmp_path / "arc_easy.json").read_text())["metrics"]
    run_module(
        "workflow.export.hf",
        ["--run-dir", str(trained_run), "--tokenizer", tiny_corpus["tokenizer"], "--out", str(tmp_path / "hf")],
    )
    hf_lm = ("hf", f"pretrained={tmp_path / 'hf'},dtype=float32,max_length=64")  # lm-eval's own HF model
    hf = run_lm_eval(hf_lm, {"arc_easy": tmp_path / "arc_easy.jsonl"}, batch_size=8, device="cpu")["arc_easy"]
    assert (hf["acc"], hf["acc_norm"], hf["samples"]) == (megatron["acc"], megatron["acc_norm"], megatron["samples"])
