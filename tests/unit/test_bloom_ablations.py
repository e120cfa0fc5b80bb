"""The BLOOM ablation study's DAG: one run per ablated option at tiny and paper scale, each with its
own architecture (checked in the resolved run spec), and its outputs in the tiny DAG."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import REPO, job_counts, snakemake
from workflow.config import load_config, pretrain_spec, study_runs
from workflow.model.gpt import make_model_spec
from workflow.train.metrics import read_metrics

STUDY = "bloom_ablations"
# run -> the option it changes from the `rotary` baseline (GPT-NeoX preset, rotary on the full head)
ABLATIONS = {
    "rotary": {},
    "learned": {"position_embedding": "learned"},
    "alibi": {"position_embedding": "alibi"},
    "nope": {"position_embedding": "none"},
    "swiglu": {"activation": "swiglu"},
    "embed-ln": {"embedding_layernorm": True},
}


@pytest.mark.parametrize("scale,shape", [("tiny", "tiny-1m"), ("paper", "bloom-1.3b")])
def test_dag_trains_every_ablation(scale, shape):
    target = f"results/{scale}/{STUDY}/tables/loss.csv"
    proc = snakemake("-n", "--forceall", "--config", f"scale={scale}", "--", target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    runs = sorted(study_runs(load_config(REPO / "config.yaml", {"scale": scale}), STUDY))
    assert {f"{a}_{shape}" for a in ABLATIONS} <= set(runs)  # plus the corpus ablation's run(s)
    assert counts["pretrain"] == counts["evaluate_loss"] == len(runs) and counts["loss_curves"] == 1
    for run in runs:
        assert f"results/{scale}/{STUDY}/runs/{run}/summary.json" in proc.stdout
    # the study is part of the default target
    default = snakemake("-n", "--forceall", "--config", f"scale={scale}")
    assert f"results/{scale}/{STUDY}/figures/loss_curves.png" in default.stdout


def test_each_run_differs_from_the_baseline_in_one_option():
    cfg = load_config(REPO / "config.yaml")
    baseline = pretrain_spec(cfg, STUDY, "rotary_tiny-1m")
    base_model = make_model_spec(
        baseline["arch"], baseline["shape"], baseline["vocab_size"], baseline["arch_overrides"]
    ).to_dict()
    assert base_model["position_embedding"] == "rotary" and base_model["rotary_percent"] == 1.0
    for run, change in ABLATIONS.items():
        spec = pretrain_spec(cfg, STUDY, f"{run}_tiny-1m")
        model = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec["arch_overrides"]).to_dict()
        differs = {k for k in model if model[k] != base_model[k]}
        if model["position_embedding"] != "rotary":
            differs.discard("rotary_percent")  # unused without rotary
        expected = set(change) | ({"ffn_hidden"} if "activation" in change else set())
        assert differs == expected, (run, differs)
        assert spec["train"]["tokens"] == 150000  # the study's tiny token budget


@pytest.mark.parametrize("scale", ["tiny", "small", "paper"])
def test_multilingual_model_is_the_baseline_at_equal_compute_on_another_corpus(scale):
    """BLOOM's multilingual comparison: the baseline's architecture, shape and token budget (equal
    compute), only the corpus (and so the tokenizer trained on it) differs."""
    cfg = load_config(REPO / "config.yaml", {"scale": scale})
    shape = cfg["studies"][STUDY]["sizes"][scale][0]
    base, multi = (pretrain_spec(cfg, STUDY, f"{v}_{shape}") for v in ("rotary", "multilingual"))
    corpus = cfg["studies"][STUDY]["runs"]["multilingual"]["corpus"][scale]
    assert multi["data"]["tokenizer"].endswith(f"data/{corpus}/tokenizer.json")
    assert base["data"]["tokenizer"] != multi["data"]["tokenizer"]
    for key in ("arch", "arch_overrides", "shape", "train", "vocab_size"):
        assert base[key] == multi[key], key
    assert cfg["studies"][STUDY]["language_eval"][scale] == corpus  # evaluated per language on its text


@pytest.mark.integration
def test_tiny_dag_measured_english_bits_per_byte_of_the_multilingual_model(tiny_dag):
    """Every run is evaluated on the multilingual corpus's validation text per language; the table
    compares English bits per byte with the baseline on the same documents."""
    root = tiny_dag / "results" / "tiny" / STUDY
    table = pd.read_csv(root / "tables" / "downstream.csv").set_index("run")
    multi, base = table.loc["multilingual_tiny-1m"], table.loc["rotary_tiny-1m"]
    for tag in ("en", "xa", "yo"):
        assert 0 < multi[f"bpb_{tag}"] < 8 and base[f"bpb_{tag}"] > 0
    # only the multilingual model has seen xa and yo: it must read them far better than the baseline
    assert multi["bpb_xa"] < base["bpb_xa"] / 2 and multi["bpb_yo"] < base["bpb_yo"] / 2
    assert multi["delta_bpb_en"] == pytest.approx(multi["bpb_en"] - base["bpb_en"], abs=0.02)
    assert multi["delta_bpb_en_se"] > 0 and "English-only" in multi["paper_finding"]
    result = json.loads((root / "runs" / "multilingual_tiny-1m" / "eval_loss.json").read_text())
    en = result["language_eval"]["tags"]["en"]
    assert en["documents"] == len(en["document_nats"]) == len(en["document_bytes"]) > 50


@pytest.mark.integration
def test_tiny_dag_trained_every_ablation(tiny_dag):
    runs = tiny_dag / "results" / "tiny" / STUDY / "runs"
    for run, change in ABLATIONS.items():
        summary = json.loads((runs / f"{run}_tiny-1m" / "summary.json").read_text())
        for key, value in change.items():
            assert summary["model"][key] == value
        valid = [r["loss"] for r in read_metrics(runs / f"{run}_tiny-1m" / "metrics.jsonl") if r["kind"] == "valid"]
        assert valid[-1] < valid[0] - 1.0, (run, valid)
