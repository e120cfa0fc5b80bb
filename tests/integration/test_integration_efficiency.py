"""Efficiency studies in the tiny DAG (shared `tiny_dag` run): every declared point produced a row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import REPO
from workflow.config import load_config
from workflow.dag import EFFICIENCY_FIGURES
from workflow.studies import benchmarks as eff
from workflow.studies import proxy

pytestmark = pytest.mark.integration

CFG = load_config(REPO / "config.yaml", {"scale": "tiny"})


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_block_point_has_a_dense_row_and_a_sparse_row_or_reason(tiny_dag):
    root = tiny_dag / "results" / "tiny" / "efficiency"
    sweep = eff.block_sweep(CFG, "efficiency")
    for arch in sweep["archs"]:
        rows = _rows(root / "block" / f"{arch}.jsonl")
        for p in eff.block_points(sweep):
            match = [r for r in rows if all(r[k] == v for k, v in p.items())]
            assert sorted(r["mode"] for r in match) == ["dense", "sparse24"], (arch, p)
            dense = next(r for r in match if r["mode"] == "dense")
            sparse = next(r for r in match if r["mode"] == "sparse24")
            assert dense["status"] == "ok" and dense["tokens_per_s"] > 0 and dense["tflops"] > 0
            assert sparse["status"] == "unsupported" and sparse["reason"]  # CPU: never silently dense
            assert dense["device"] and dense["torch"] and dense["megatron_core"]
    table = pd.read_csv(root / "tables" / "sparsity.csv")
    table = table[table["device"].isin({r["device"] for r in rows})]  # rows of other machines may be drawn too
    assert len(table) == len(sweep["archs"]) * len(eff.block_points(sweep)) and set(table["status"]) == {"unsupported"}


@pytest.mark.parametrize("workload", eff.TRAIN_WORKLOADS)
def test_every_training_point_has_a_row_and_scaling_efficiency(tiny_dag, workload):
    """GPT-2 and GenSLM alike: a row per declared point, on the workload's own corpus and vocabulary."""
    root = tiny_dag / "results" / "tiny" / "efficiency"
    keys = ("sweep", "size", "seq_length", "micro_batch_size", "grad_accum", "devices")
    sweep = eff.train_sweep(CFG, "efficiency", workload)
    for job, points in eff.train_jobs(CFG, "efficiency", workload).items():
        rows = _rows(root / workload / f"{job}.jsonl")
        assert [tuple(r[k] for k in keys) for r in rows] == [tuple(p[k] for k in keys) for p in points]
        assert all(r["tokens_per_s"] > 0 and r["tflops_per_device_chinchilla"] > 0 for r in rows)
        assert {(r["workload"], r["corpus"]) for r in rows} == {(workload, sweep["corpus"])}
    ours = {r["device"] for r in rows}
    scaling = pd.read_csv(root / "tables" / "scaling.csv")
    scaling = scaling[scaling["device"].isin(ours) & (scaling["workload"] == workload)]
    assert sorted(scaling["devices"]) == sorted(sweep["devices"])
    one = scaling[scaling["devices"] == 1]["scaling_efficiency"]
    assert (one == 1.0).all() and (scaling["scaling_efficiency"] > 0).all()
    table = pd.read_csv(root / "tables" / f"{workload}.csv")
    table = table[table["scale"] == "tiny"]
    assert len(table) == sum(len(p) for p in eff.train_jobs(CFG, "efficiency", workload).values())


def test_efficiency_figures_are_images(tiny_dag):
    import matplotlib.image

    fig = tiny_dag / "results" / "tiny" / "efficiency" / "figures"
    for name in EFFICIENCY_FIGURES:
        image = matplotlib.image.imread(fig / f"{name}.png")
        assert image.shape[0] > 300 and image.std() > 0.01, name


def test_proxy_study_reports_spearman_over_at_least_five_shapes(tiny_dag):
    root = tiny_dag / "results" / "tiny" / "arch_proxy"
    candidates = proxy.enumerate_candidates(proxy.proxy_settings(CFG, "arch_proxy"))
    ranking = json.loads((root / "proxy" / "ranking.json").read_text())
    assert sorted(r["shape"] for r in ranking["candidates"]) == sorted(c["name"] for c in candidates)
    report = json.loads((root / "proxy" / "report.json").read_text())
    assert report["n_full"] == len(candidates) >= 5
    assert report["spearman"] is not None and -1.0 <= report["spearman"] <= 1.0
    assert 0 < report["proxy_flops_fraction"] < 0.5 and report["proxy_seconds_fraction"] > 0
    table = pd.read_csv(root / "tables" / "proxy.csv")
    assert len(table) == len(candidates) and (table["actual_loss"] < table["predicted_loss"]).all()
    assert (root / "figures" / "proxy_predicted_vs_actual.pdf").read_bytes()[:5] == b"%PDF-"
