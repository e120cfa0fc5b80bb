"""The whole tiny DAG (fixture `tiny_dag` in conftest), checked by content; each stage adds its own
`tests/test_integration_<stage>.py` using the same fixture, so the DAG runs once per session."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, job_counts, snakemake
from workflow.train.metrics import read_metrics

pytestmark = pytest.mark.integration


def unigram_entropy_nats(prefix: str) -> float:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(prefix)
    counts = np.bincount(np.concatenate([np.asarray(ds[i]) for i in range(len(ds))]))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_every_stage_produced_its_outputs_and_logs(tiny_dag):
    r = tiny_dag / "results" / "tiny"
    stats = json.loads((r / "data" / "synthetic" / "stats.json").read_text())
    assert stats["splits"]["train"]["documents"] > 5000 and stats["splits"]["valid"]["documents"] > 100
    for rule in ("prepare_corpus", "train_tokenizer", "tokenize_corpus", "pretrain", "evaluate_loss", "loss_curves"):
        assert list((tiny_dag / "logs" / "tiny" / rule).rglob("*.log")), rule
        assert list((r / "benchmarks" / rule).rglob("*.tsv")), rule
    leftovers = [p for p in tiny_dag.rglob("*") if p.name.endswith((".tmp", ".partial")) or ".tmp." in p.name]
    assert leftovers == []


def test_both_architectures_learn_well_below_unigram_entropy(tiny_dag):
    r = tiny_dag / "results" / "tiny"
    h1 = unigram_entropy_nats(str(r / "data" / "synthetic" / "tokens" / "train"))
    table = pd.read_csv(r / "matgpt" / "tables" / "loss.csv")
    assert sorted(table["arch"]) == ["gpt-neox", "llama"]
    for run in table["run"]:
        rows = read_metrics(r / "matgpt" / "runs" / run / "metrics.jsonl")
        valid = [x["loss"] for x in rows if x["kind"] == "valid"]
        assert valid[0] > valid[-1] + 3, (run, valid)  # loss decreases
        ev = json.loads((r / "matgpt" / "runs" / run / "eval_loss.json").read_text())
        assert ev["loss"] < 0.5 * h1, (run, ev["loss"], h1)
        assert math.isclose(ev["loss"], table.set_index("run").loc[run, "valid_loss"], abs_tol=1e-4)


def test_figures_are_valid_images(tiny_dag):
    import matplotlib.image

    fig = tiny_dag / "results" / "tiny" / "matgpt" / "figures"
    image = matplotlib.image.imread(fig / "loss_curves.png")
    assert image.shape[0] > 300 and image.shape[1] > 300 and image.std() > 0.01
    assert (fig / "loss_curves.pdf").read_bytes()[:5] == b"%PDF-"


def test_rerun_has_nothing_to_do(tiny_dag):
    proc = snakemake(
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tiny_dag),
        "--configfile",
        str(REPO / "config.yaml"),
        "-n",
        cwd=tiny_dag,
    )
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    assert "Job stats" not in proc.stdout or job_counts(proc.stdout) == {}
