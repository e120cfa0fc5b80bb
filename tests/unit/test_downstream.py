"""Downstream settings, study tables, and the DAG's downstream jobs (dry runs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.bloom_ablations import ablation_table
from analysis.matgpt import architecture_table
from conftest import REPO, job_counts, snakemake
from workflow.config import load_config, study_runs
from workflow.errors import ScaleDAGError
from workflow.evaluate.downstream import average_se, bandgap_table, zeroshot_table


def test_downstream_on_a_study_without_runs_is_one_line_error():
    import yaml

    studies = yaml.safe_load((REPO / "config.yaml").read_text())["studies"]
    studies["chinchilla"]["zeroshot"] = True  # an IsoFLOP sweep has no final models to evaluate
    with pytest.raises(
        ScaleDAGError, match=r"studies.chinchilla.kind: 'isoflop' does not fit the other keys here; expected 'runs'"
    ):
        load_config(REPO / "config.yaml", {"studies": studies})
    with pytest.raises(ScaleDAGError, match=r"zeroshot.tasks.0: 'squad' is not allowed"):
        load_config(REPO / "config.yaml", {"zeroshot": {"tasks": ["squad"]}})


def test_bloom_variants_declare_the_axis_they_move():
    runs = study_runs(load_config(REPO / "config.yaml"), "bloom_ablations")
    axes = {spec["variant"]: spec.get("axis") for spec in runs.values()}
    assert axes == {
        "rotary": None,
        "learned": "position embedding",
        "alibi": "position embedding",
        "nope": "position embedding",
        "swiglu": "activation",
        "embed-ln": "embedding LayerNorm",
        "corpus-mix": "corpus",
        "multilingual": "multilingual",
    }


def test_an_ablation_needs_exactly_one_baseline():
    import yaml

    studies = yaml.safe_load((REPO / "config.yaml").read_text())["studies"]
    studies["bloom_ablations"]["runs"]["rotary"]["axis"] = "position embedding"
    with pytest.raises(ScaleDAGError, match=r"studies.bloom_ablations.runs: .* exactly one baseline .*found none"):
        load_config(REPO / "config.yaml", {"studies": studies})


def test_average_se_is_the_item_sampling_error():
    # 7 tasks at p = 0.5, 16 items each: sqrt(7 x 0.25 / 16) / 7 = 0.0472
    assert average_se([0.5] * 7, [16] * 7) == pytest.approx(0.04725, abs=1e-4)
    assert average_se([0.5, 0.5], [16, None]) is None


def _zs(tmp_path, run, task, acc, random_acc, ppl=None, items=100):
    metrics = {"acc": acc, **({"perplexity": ppl} if ppl else {})}
    path = tmp_path / f"{run}.{task}.json"
    record = {"run": run, "task": task, "metrics": metrics, "random_acc": random_acc, "items": items}
    path.write_text(json.dumps(record))
    return str(path)


def test_tables(tmp_path):
    runs = {
        "a_s": {"variant": "a", "arch": "llama", "shape_name": "s", "overrides": {}},
        "b_s": {"variant": "b", "arch": "gpt-neox", "shape_name": "s", "overrides": {}},
    }
    results = [
        _zs(tmp_path, "a_s", "piqa", 0.6, 0.5),
        _zs(tmp_path, "a_s", "lambada_openai", 0.2, 0.0, 50.0),
        _zs(tmp_path, "b_s", "piqa", 0.7, 0.5),
        _zs(tmp_path, "b_s", "lambada_openai", 0.1, 0.0, 80.0),
    ]
    zs = zeroshot_table(results, runs).set_index("run")
    assert zs.loc["a_s", "average"] == pytest.approx(0.4) and zs.loc["random", "average"] == pytest.approx(0.25)
    assert zs.loc["b_s", "lambada_openai_ppl"] == 80.0
    zs.reset_index().to_csv(tmp_path / "zs.csv", index=False)
    cv = {"mae": 0.9, "mae_std": 0.1, "rmse": 1.2}
    (tmp_path / "base.json").write_text(
        json.dumps({"rows": 10, "results": {"dummy": {**cv, "mae": 1.1}, "rf[composition]": {**cv, "mae": 0.5}}})
    )
    for run, mae in (("a_s", 0.8), ("b_s", 0.7)):
        (tmp_path / f"{run}.bg.json").write_text(
            json.dumps(
                {
                    "run_id": f"tiny.x.{run}",
                    "rows": 10,
                    "results": {
                        "ridge[formula]": {**cv, "mae": mae},
                        "mlp[formula]": {**cv, "mae": mae + 0.05},
                        "ridge[formula+composition]": {**cv, "mae": mae - 0.2},
                    },
                }
            )
        )
    bg = bandgap_table(
        [str(tmp_path / "a_s.bg.json"), str(tmp_path / "b_s.bg.json")], str(tmp_path / "base.json"), runs
    )
    assert len(bg) == 2 + 6 and set(bg[bg["arch"].isna()]["method"]) == {"dummy", "rf[composition]"}
    bg.to_csv(tmp_path / "bg.csv", index=False)
    for run, loss in (("a_s", 2.0), ("b_s", 2.5)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "eval_loss.json").write_text(json.dumps({"loss": loss}))
    table = architecture_table(
        runs,
        str(tmp_path / "zs.csv"),
        [str(tmp_path / r / "eval_loss.json") for r in runs],
        str(tmp_path / "bg.csv"),
    ).set_index("run")
    assert table.loc["b_s", "valid_loss"] == 2.5 and table.loc["b_s", "bandgap_mae"] == pytest.approx(0.7)
    assert table.loc["b_s", "bandgap_mae_with_composition"] == pytest.approx(0.5)
    assert table.loc["dummy", "bandgap_mae"] == 1.1 and table.loc["random", "zeroshot_avg"] == pytest.approx(0.25)
    # sqrt(0.6 x 0.4 / 100 + 0.2 x 0.8 / 100) / 2 = 0.0316
    assert table.loc["a_s", "zeroshot_avg_se"] == pytest.approx(0.0316, abs=1e-4)


def test_ablation_table_reads_each_variant_against_its_baseline(tmp_path):
    runs = {
        "base_s": {"variant": "base", "arch": "gpt-neox", "shape_name": "s", "overrides": {}},
        "alibi_s": {"variant": "alibi", "arch": "gpt-neox", "shape_name": "s", "axis": "position embedding"},
        "mix_s": {"variant": "mix", "arch": "gpt-neox", "shape_name": "s", "axis": "corpus", "corpus": "c2"},
    }
    # 1,000 items: SE of each average ~0.016, of a difference ~0.022, so 0.2 is resolved and 0.01 is not
    results = [
        _zs(tmp_path, "base_s", "piqa", 0.50, 0.5, items=1000),
        _zs(tmp_path, "alibi_s", "piqa", 0.70, 0.5, items=1000),
        _zs(tmp_path, "mix_s", "piqa", 0.51, 0.5, items=1000),
    ]
    zeroshot_table(results, runs).to_csv(tmp_path / "zs.csv", index=False)
    for run, loss in (("base_s", 2.0), ("alibi_s", 1.9), ("mix_s", 3.0)):
        (tmp_path / run).mkdir()
        (tmp_path / run / "eval_loss.json").write_text(json.dumps({"loss": loss}))
    evals = [str(tmp_path / r / "eval_loss.json") for r in runs]
    table = ablation_table(runs, str(tmp_path / "zs.csv"), evals).set_index("run")
    assert list(table.index) == ["base_s", "alibi_s", "mix_s", "random"]  # the baseline first
    assert table.loc["base_s", "axis"] == "baseline" and pd.isna(table.loc["base_s", "delta_zeroshot"])
    assert table.loc["alibi_s", "delta_zeroshot"] == pytest.approx(0.2)
    assert table.loc["alibi_s", "delta_se"] == pytest.approx((0.25 / 1000 + 0.21 / 1000) ** 0.5, rel=1e-3)
    assert bool(table.loc["alibi_s", "resolved"]) and not bool(table.loc["mix_s", "resolved"])
    assert table.loc["alibi_s", "delta_valid_loss"] == pytest.approx(-0.1)
    assert pd.isna(table.loc["mix_s", "delta_valid_loss"])  # another corpus's held-out text: not comparable
    assert "ALiBi" in table.loc["alibi_s", "paper_finding"]
    with pytest.raises(ScaleDAGError, match="size s has no baseline"):
        ablation_table({k: v for k, v in runs.items() if k != "base_s"}, str(tmp_path / "zs.csv"), evals)


def _language_eval(per_doc: list[tuple[float, int]]) -> dict:
    nats, nbytes = zip(*per_doc)
    return {
        "bits_per_byte": sum(nats) / math.log(2) / sum(nbytes),
        "document_nats": [float(x) for x in nats],
        "document_bytes": [int(x) for x in nbytes],
    }


def test_multilingual_row_compares_english_bits_per_byte_on_the_same_documents(tmp_path):
    """The multilingual variant's row: its per-language bits per byte, and its English bits per byte
    against the English-only baseline's on the same documents, with a paired SE over documents."""
    runs = {
        "base_s": {"variant": "base", "arch": "gpt-neox", "shape_name": "s"},
        "multi_s": {"variant": "multi", "arch": "gpt-neox", "shape_name": "s", "axis": "multilingual", "corpus": "m"},
    }
    zeroshot_table([_zs(tmp_path, r, "piqa", 0.5, 0.5, items=1000) for r in runs], runs).to_csv(
        tmp_path / "zs.csv", index=False
    )
    rng = np.random.default_rng(0)
    nbytes = rng.integers(800, 1200, size=60)
    base_nats = nbytes * math.log(2) * rng.normal(1.0, 0.05, size=60)  # ~1.0 bit per byte
    # the multilingual model: 0.1 bit per byte worse on every English document (+ document noise)
    multi_nats = base_nats + nbytes * math.log(2) * rng.normal(0.1, 0.01, size=60)
    tags = {
        "base_s": {"en": _language_eval(list(zip(base_nats, nbytes))), "xa": _language_eval([(3000.0, 1000)] * 5)},
        "multi_s": {"en": _language_eval(list(zip(multi_nats, nbytes))), "xa": _language_eval([(900.0, 1000)] * 5)},
    }
    for run, loss in (("base_s", 2.0), ("multi_s", 2.5)):
        (tmp_path / run).mkdir()
        result = {"loss": loss, "language_eval": {"text": "valid.jsonl", "tags": tags[run]}}
        (tmp_path / run / "eval_loss.json").write_text(json.dumps(result))
    evals = [str(tmp_path / r / "eval_loss.json") for r in runs]
    table = ablation_table(runs, str(tmp_path / "zs.csv"), evals).set_index("run")
    # both rows carry every tag; the multilingual model is the one that learned xa
    assert table.loc["multi_s", "bpb_xa"] == pytest.approx(900 / math.log(2) / 1000)
    assert table.loc["base_s", "bpb_xa"] == pytest.approx(3000 / math.log(2) / 1000)
    # the last document is left out (it may be cut by max_tokens): 59 paired documents
    expected = multi_nats[:59].sum() / nbytes[:59].sum() / math.log(2) - base_nats[:59].sum() / nbytes[
        :59
    ].sum() / math.log(2)
    assert table.loc["multi_s", "delta_bpb_en"] == pytest.approx(expected) and 0.09 < expected < 0.11
    # paired: the SE reflects the 0.01-bit spread of the per-document difference (~0.01/sqrt(59)),
    # not the 0.05-bit spread of either model's documents
    assert 0.0005 < table.loc["multi_s", "delta_bpb_en_se"] < 0.003
    assert bool(table.loc["multi_s", "resolved_bpb_en"])
    # its own held-out text is another corpus: no validation-loss difference (no column at all here)
    assert "delta_valid_loss" not in table.columns
    assert "English-only" in table.loc["multi_s", "paper_finding"]


def _dry(*config):
    proc = snakemake("-n", "--forceall", "--config", *config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, job_counts(proc.stdout)


def test_dag_evaluates_every_run_of_the_downstream_studies():
    cfg = load_config(REPO / "config.yaml")
    _, counts = _dry("scale=tiny")
    zs_studies = [s for s, st in cfg["studies"].items() if st.get("zeroshot")]
    zs_runs = sum(len(study_runs(cfg, s)) for s in zs_studies)
    bg_runs = sum(len(study_runs(cfg, s)) for s, st in cfg["studies"].items() if st.get("bandgap"))
    assert counts["evaluate_zeroshot"] == zs_runs and counts["prepare_zeroshot"] == len(cfg["zeroshot"]["tasks"])
    assert counts["embed_bandgap"] == counts["bandgap"] == bg_runs and counts["bandgap_baselines"] == 1
    assert counts["zeroshot_table"] == len(zs_studies) == 2
    assert counts["matgpt_table"] == counts["bloom_ablations_table"] == 1


def test_dag_skips_downstream_when_data_is_absent(tmp_path):
    proc, counts = _dry("scale=tiny", f"zeroshot={{data_dir: {tmp_path}/zs}}", f"bandgap={{data_dir: {tmp_path}/bg}}")
    assert "evaluate_zeroshot" not in counts and "embed_bandgap" not in counts and "pretrain" in counts
    assert (
        f"zero-shot evaluation of matgpt skipped: {tmp_path}/zs/lambada/lambada_openai.jsonl is missing" in proc.stderr
    )
    assert f"band-gap evaluation of matgpt skipped: {tmp_path}/bg/matbench_expt_gap.csv is missing" in proc.stderr
