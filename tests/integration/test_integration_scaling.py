"""Integration: the tiny DAG's IsoFLOP sweep -> Chinchilla's tables and figures.

Checks what the real 12-run sweep produced, not what it should conclude: at tiny scale the fits
are rough, so the checks are on structure, consistency with the runs, and sanity."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from workflow.config import load_config
from workflow.studies.isoflop import isoflop_plan

pytestmark = pytest.mark.integration

STUDY = "results/tiny/chinchilla"


@pytest.fixture(scope="module")
def out(tiny_dag):
    return tiny_dag / STUDY


@pytest.fixture(scope="module")
def plan():
    from conftest import REPO

    return {p["run"]: p for p in isoflop_plan(load_config(REPO / "config.yaml"), "chinchilla")}


def test_every_run_trained_to_its_budget(out, plan):
    points = pd.read_csv(out / "tables" / "scaling_points.csv")
    assert sorted(points["run"]) == sorted(plan)
    assert points["budget"].nunique() >= 3 and points.groupby("budget").size().min() >= 4
    for _, row in points.iterrows():
        p = plan[row["run"]]
        assert row["params_all"] == p["params"]  # the N the sweep planned is the N Megatron built
        assert row["params"] == p["params_one_embedding"]  # fitted as Chinchilla counts N
        assert row["params_non_embedding"] == p["params_non_embedding"]
        # Tokens are D = C / FLOPs-per-token rounded up to whole batches: C within one batch.
        assert row["tokens"] >= p["tokens"] and row["flops"] == pytest.approx(row["budget"], rel=0.05)
        assert math.isfinite(row["loss"]) and 0 < row["loss"] < 8
    curves = pd.read_csv(out / "tables" / "scaling_curves.csv")
    assert (curves.groupby("run").size() >= 5).all()  # approach 1 sees every intermediate evaluation


def test_exponents_table(out):
    exps = pd.read_csv(out / "tables" / "scaling_exponents.csv").fillna({"note": ""})
    assert list(exps["approach"]) == ["approach1", "approach2", "approach3"]
    for _, row in exps.iterrows():
        # Each approach either has exponents summing to 1 (within regression noise) or says why not.
        if np.isfinite(row["a"]):
            assert abs(row["a"] + row["b"] - 1) < 0.05 or row["approach"] == "approach1", row.to_dict()
        else:
            assert row["note"], row.to_dict()
    a3 = exps.set_index("approach").loc["approach3"]
    assert 0 < a3["a"] < 1 and a3["a"] + a3["b"] == pytest.approx(1)
    assert a3["a_lo"] <= a3["a_hi"]


def test_fit_allocation_and_prediction(out):
    fit = json.loads((out / "tables" / "scaling_fit.json").read_text())
    assert fit["n_points"] >= 12
    f3 = fit["approach3"]
    assert all(f3[k] >= 0 for k in ("E", "A", "B", "alpha", "beta"))
    alloc = pd.read_csv(out / "tables" / "compute_optimal_allocation.csv")
    a3 = alloc[alloc["approach"] == "approach3"]
    assert len(a3) >= 3
    assert np.allclose(6 * a3["N_opt"] * a3["D_opt"], a3["budget"], rtol=1e-4)  # CSVs keep 6 digits
    assert a3["N_opt"].is_monotonic_increasing and a3["loss"].is_monotonic_decreasing
    pred = pd.read_csv(out / "tables" / "target_prediction.csv").set_index("approach")
    assert set(pred["budget"]) == {fit["target_budget"]}
    assert pred.loc["approach3", "N_opt"] > 0 and np.isfinite(pred.loc["approach3", "D_opt"])
    minima = pd.read_csv(out / "tables" / "isoflop_minima.csv")
    assert len(minima) == len(fit["budgets"])


def test_default_tiny_design_brackets_every_minimum(out):
    """The default design is well-formed (issue 16 item 5): at every budget the lowest loss is at
    an inner size and the parabola's vertex lies inside the sampled sizes, so approach 2 has no
    extrapolated point; approach 1's envelope has >= 3 sizes and gives numbers. Pilots put the
    nearest edge ~0.2 nats above the minimum, far beyond run-to-run noise: a failure here means the
    windows no longer bracket the optimum (re-pilot them), not a slow or noisy machine."""
    minima = pd.read_csv(out / "tables" / "isoflop_minima.csv").fillna({"edge": ""})
    assert minima["inside"].all() and (minima["edge"] == "").all(), minima.to_dict("records")
    exps = pd.read_csv(out / "tables" / "scaling_exponents.csv").fillna({"note": ""}).set_index("approach")
    for approach in ("approach1", "approach2"):
        assert np.isfinite(exps.loc[approach, "a"]) and not exps.loc[approach, "note"], exps.loc[approach].to_dict()


def test_figures(out):
    for name in ("isoflop_curves", "parametric_contour"):
        png, pdf = out / "figures" / f"{name}.png", out / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not (out / "figures" / "loss_curves.png").exists()  # generator studies skip the generic curves


def test_closed_loop_trains_the_prediction_and_compares(out):
    """The fit's optimum and an over- and under-sized model at C* were trained and scored against
    the prediction: structure and consistency, not the verdict (tiny fits are rough)."""
    plan = json.loads((out / "closed_loop" / "plan.json").read_text())
    roles = {role for r in plan["runs"] for role in r["roles"]}
    assert {"approach3", "over", "under"} <= roles
    table = pd.read_csv(out / "tables" / "closed_loop.csv")
    assert sorted(table["run"]) == sorted(r["run"] for r in plan["runs"])
    for _, row in table.iterrows():
        assert row["run"].startswith("loopc9e11_") and 0 < row["achieved_loss"] < 8
        assert (
            row["predicted_lo_95"]
            <= row["predicted_lo_80"]
            <= row["predicted_loss"]
            <= row["predicted_hi_80"]
            <= row["predicted_hi_95"]
        )
        assert row["inside_95"] == (row["predicted_lo_95"] <= row["achieved_loss"] <= row["predicted_hi_95"])
        assert row["tokens"] > 0 and row["params"] > 0
    best = table[table["roles"].str.contains("approach3")]
    assert len(best) == 1 and best["beats_over"].notna().all()
    choice = pd.read_csv(out / "tables" / "size_choice.csv")
    assert set(choice["approach"]) >= {"approach3"} and (choice["flops"] == 0.05 * 3600 * 0.03e12).all()
    assert "shapes:" in (out / "closed_loop" / "size_choice.yaml").read_text()
    png = out / "figures" / "closed_loop.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
