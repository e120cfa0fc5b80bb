"""Tests for analysis.chinchilla.fit: Chinchilla's three approaches, the frontier, and the CLI.

Synthetic truth is the paper's own fit: as printed, (E, A, B, alpha, beta) =
(1.69, 406.4, 410.7, 0.34, 0.28), so a = beta/(alpha+beta) ~ 0.452, b ~ 0.548 (`TRUTH`); and,
for the tests that the fitter recovers a known law over a Chinchilla-like IsoFLOP design, the
unrounded coefficients of the paper's LaTeX source (`PAPER_FIT`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from analysis.chinchilla.fit import (
    ParametricFit,
    _smooth,
    approach1,
    approach2,
    bootstrap,
    drop_outliers,
    fit_parametric,
    frontier,
    huber_objective,
    init_grid,
    load_points,
    main,
    optimal_allocation_table,
    table_exponents,
    write_table,
)
from workflow.errors import ScaleDAGError

REPO = Path(__file__).resolve().parents[2]
SHARED_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "chinchilla_epoch" / "svg_extracted_data.csv"

TRUTH = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
TRUE_FIT = ParametricFit(**TRUTH)
A_TRUE = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])


def law(N, D):
    return TRUE_FIT.predict(N, D)


@pytest.fixture(scope="module")
def synthetic_points():
    """12 x 12 grid, N in [1e7, 1e10], D in [1e8, 1e11], 0.05% log-normal noise (seed 0).

    The noise is small because A and B are only weakly identified: an error of 0.001 in alpha
    moves A by ~2% (A = exp(log_A), log_A is correlated with alpha * log N ~ 20 alpha).
    """
    rng = np.random.default_rng(0)
    N, D = (m.ravel() for m in np.meshgrid(np.logspace(7, 10, 12), np.logspace(8, 11, 12)))
    L = law(N, D) * np.exp(5e-4 * rng.standard_normal(N.size))
    return N, D, L


@pytest.fixture(scope="module")
def synthetic_fit(synthetic_points):
    return fit_parametric(*synthetic_points)


# ---------------------------------------------------------------- Approach 3: parametric fit


def test_init_grid_is_the_papers():
    grid = init_grid()
    assert grid.shape == (4500, 5)
    assert sorted(set(grid[:, 0])) == [0, 5, 10, 15, 20, 25]
    assert sorted(set(grid[:, 2])) == [-1, -0.5, 0, 0.5, 1]
    assert sorted(set(grid[:, 3])) == sorted(set(grid[:, 4])) == [0, 0.5, 1, 1.5, 2]


def test_objective_gradient_matches_finite_differences(synthetic_points):
    N, D, L = synthetic_points
    args = (np.log(N), np.log(D), np.log(L), 1e-3)
    theta = np.array([6.2, 5.8, 0.4, 0.33, 0.29])
    value, grad = huber_objective(theta, *args)
    eps = 1e-7
    numeric = [
        (huber_objective(theta + eps * e, *args)[0] - huber_objective(theta - eps * e, *args)[0]) / (2 * eps)
        for e in np.eye(5)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-10)
    batch_value, batch_grad = huber_objective(np.stack([theta, theta]), *args)
    np.testing.assert_allclose(batch_value, [value, value])
    np.testing.assert_allclose(batch_grad[1], grad)


def test_parametric_fit_recovers_truth_within_2pct(synthetic_fit):
    for name, true in TRUTH.items():
        assert getattr(synthetic_fit, name) == pytest.approx(true, rel=0.02), name
    assert synthetic_fit.a + synthetic_fit.b == pytest.approx(1.0)


def test_frontier_matches_brute_force_minimisation():
    fit = TRUE_FIT
    for C in (1e18, 1e21, 5.76e23):
        res = minimize_scalar(
            lambda x, C=C: float(law(np.exp(x), C / (6 * np.exp(x)))),
            bounds=(np.log(1e5), np.log(1e14)),
            method="bounded",
            options={"xatol": 1e-10},
        )
        n_opt, d_opt = frontier(fit, C)
        assert n_opt == pytest.approx(np.exp(res.x), rel=1e-4)
        assert 6 * n_opt * d_opt == pytest.approx(C)
    # Exponents: N_opt ∝ C^a.
    n1, _ = frontier(fit, 1e20)
    n2, _ = frontier(fit, 1e22)
    assert np.log(n2 / n1) / np.log(100) == pytest.approx(fit.a)


def test_optimal_allocation_table():
    budgets = [1e19, 1e21, 1e23]
    table = optimal_allocation_table(TRUE_FIT, budgets)
    assert list(table.columns) == ["budget", "N_opt", "D_opt", "loss"]
    np.testing.assert_allclose(6 * table["N_opt"] * table["D_opt"], budgets)
    assert table["loss"].is_monotonic_decreasing
    np.testing.assert_allclose(table["loss"], law(table["N_opt"], table["D_opt"]))


def test_bootstrap_intervals(synthetic_points, synthetic_fit):
    iv = bootstrap(*synthetic_points, k=12, seed=1, full_fit=synthetic_fit)
    assert len(iv["samples"]) == 12
    for key in ("E", "A", "B", "alpha", "beta", "a", "b"):
        lo, hi = iv[key]
        assert lo <= hi
        # Loose: the interval sits near the truth (12 replicates give a rough interval).
        true = TRUTH.get(key, A_TRUE if key == "a" else 1 - A_TRUE)
        assert lo * 0.95 <= true <= hi * 1.05, key
    again = bootstrap(*synthetic_points, k=12, seed=1, full_fit=synthetic_fit)
    assert again["alpha"] == iv["alpha"]  # reproducible for a seed


def test_drop_outliers_removes_corrupted_points(synthetic_points):
    N, D, L = (v.copy() for v in synthetic_points)
    L[[3, 50, 100]] *= [1.3, 0.8, 1.5]
    fit = fit_parametric(N, D, L)
    keep = drop_outliers(N, D, L, fit)
    assert set(np.flatnonzero(~keep)) >= {3, 50, 100}
    assert (~keep).sum() <= 10
    refit = fit_parametric(N[keep], D[keep], L[keep])
    assert refit.alpha == pytest.approx(TRUTH["alpha"], rel=0.05)
    assert refit.beta == pytest.approx(TRUTH["beta"], rel=0.05)


def test_fit_rejects_bad_input():
    with pytest.raises(ScaleDAGError, match="at least 5"):
        fit_parametric([1e8] * 4, [1e9] * 4, [3.0] * 4)
    with pytest.raises(ScaleDAGError, match="loss"):
        fit_parametric([1e8] * 5, [1e9] * 5, [3.0, 2.0, -1.0, 2.0, 2.0])


# ---------------------------------------------------------------- Approaches 1 and 2


def parabola_sweep(budgets, sizes_per_budget, flops_per_param_token=6.0):
    """Per budget, loss is an exact parabola in log N with vertex at N* = 0.1 * C^0.45; D = C / (k N)."""
    rows = []
    for C in budgets:
        n_star = 0.1 * C**0.45
        for n in n_star * np.logspace(-1, 1, sizes_per_budget):
            rows.append(
                dict(
                    budget=C,
                    params=n,
                    tokens=C / (flops_per_param_token * n),
                    loss=2.0 + 0.05 * np.log(n / n_star) ** 2,
                )
            )
    return pd.DataFrame(rows)


def test_approach2_recovers_known_parabola_minimum():
    res = approach2(parabola_sweep(np.logspace(18, 22, 5), 7), bootstrap_k=50)
    minima = res["minima"]
    assert minima["ok"].all()
    np.testing.assert_allclose(minima["N_opt"], 0.1 * minima["budget"] ** 0.45, rtol=1e-6)
    np.testing.assert_allclose(minima["loss_opt"], 2.0, atol=1e-9)
    assert res["a"] == pytest.approx(0.45, abs=1e-6)
    assert res["b"] == pytest.approx(0.55, abs=1e-6)
    assert res["N_coef"] == pytest.approx(0.1, rel=1e-5)
    assert res["intervals"]["a"][0] <= res["a"] <= res["intervals"]["a"][1] + 1e-9


def test_approach2_on_parametric_isoflops_and_bad_budgets():
    rows = []
    for C in np.logspace(18, 22, 5):
        n_star, _ = frontier(TRUE_FIT, C)
        for n in n_star * np.logspace(-0.5, 0.5, 9):
            rows.append(dict(budget=C, params=n, tokens=C / (6 * n), loss=float(law(n, C / (6 * n)))))
    rows.append(dict(budget=1e30, params=1e9, tokens=1e9, loss=2.0))  # 1 point: unusable
    res = approach2(pd.DataFrame(rows))
    assert not res["minima"].set_index("budget").loc[1e30, "ok"]
    # A parabola only approximates the profile: a within 0.01 of the truth.
    assert res["a"] == pytest.approx(A_TRUE, abs=0.01)
    with pytest.raises(ScaleDAGError):
        approach2(pd.DataFrame(rows[:9]))  # a single budget


@pytest.fixture(scope="module")
def synthetic_curves():
    """31 model sizes in [1e7, 1e10], each 'trained' to 1e12 tokens with 80 evaluations whose
    loss is the parametric law (each intermediate point treated as a tuned final loss), 0.1% noise."""
    rng = np.random.default_rng(0)
    frames = []
    for i, n in enumerate(np.logspace(7, 10, 31)):
        d = np.logspace(8, 12, 80)
        loss = law(n, d) * np.exp(1e-3 * rng.standard_normal(d.size))
        frames.append(pd.DataFrame(dict(run=f"m{i:02d}", params=n, tokens=d, flops=6 * n * d, loss=loss)))
    return pd.concat(frames, ignore_index=True)


def test_approach1_on_synthetic_curves(synthetic_curves):
    # Looser tolerance (0.02): the envelope's N_opt can only take the 31 sampled sizes, and
    # the smoothing / interpolation bias it slightly; observed error is ~0.005.
    res = approach1(synthetic_curves, bootstrap_k=20)
    assert res["a"] == pytest.approx(A_TRUE, abs=0.02)
    assert res["b"] == pytest.approx(1 - A_TRUE, abs=0.02)
    env = res["envelope"]
    assert {"flops", "loss", "run", "params", "tokens", "used"} <= set(env.columns)
    assert len(env) == 1500 and env["used"].sum() > 100
    # The envelope falls with compute (up to the 0.1% noise) and lies below every run's points
    # (up to smoothing).
    assert (np.diff(env["loss"]) <= 1e-3).all()
    one_run = synthetic_curves[synthetic_curves["run"] == "m15"]
    env_at = np.interp(np.log(one_run["flops"]), np.log(env["flops"]), env["loss"])
    assert (env_at <= one_run["loss"].to_numpy() * 1.003).all()
    lo, hi = res["intervals"]["a"]
    assert lo <= res["a"] <= hi


def test_approach1_needs_runs():
    with pytest.raises(ScaleDAGError, match="missing column"):
        approach1(pd.DataFrame({"params": [1.0]}))


def test_table_exponents(synthetic_curves, synthetic_fit, tmp_path):
    table = table_exponents(
        {
            "approach1": approach1(synthetic_curves),
            "approach3": {"fit": synthetic_fit, "intervals": {"a": (0.4, 0.5), "b": (0.5, 0.6)}},
            "paper_fit": TRUE_FIT,
        }
    )
    assert list(table.columns) == [
        "approach",
        "a",
        "a_lo",
        "a_hi",
        "b",
        "b_lo",
        "b_hi",
        "a_lo95",
        "a_hi95",
        "b_lo95",
        "b_hi95",
    ]
    assert table[["a_lo95", "a_hi95", "b_lo95", "b_hi95"]].isna().all().all()  # none given here
    assert list(table["approach"]) == ["approach1", "approach3", "paper_fit"]
    assert np.isnan(table.loc[0, "a_lo"]) and table.loc[1, "a_hi"] == 0.5
    assert table.loc[2, "a"] == pytest.approx(A_TRUE)
    write_table(table, tmp_path / "tables" / "exponents.csv")
    back = pd.read_csv(tmp_path / "tables" / "exponents.csv")
    assert list(back["approach"]) == list(table["approach"])
    assert list(tmp_path.joinpath("tables").iterdir()) == [tmp_path / "tables" / "exponents.csv"]


# ---------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory, synthetic_points):
    N, D, L = synthetic_points
    path = tmp_path_factory.mktemp("csv") / "points.csv"
    pd.DataFrame({"params": N, "tokens": D, "loss": L}).to_csv(path, index=False)
    return path


def test_cli_fit_subprocess(good_csv):
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.chinchilla.fit", "fit", str(good_csv), "--bootstrap", "4", "--seed", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object
    for key in ("E", "A", "B", "alpha", "beta", "a", "b", "intervals"):
        assert key in out
    assert set(out["intervals"]) == {"E", "A", "B", "alpha", "beta", "a", "b"}
    assert out["alpha"] == pytest.approx(TRUTH["alpha"], rel=0.02)
    # The optimiser's record: which of the paper's grid starts won, and whether L-BFGS-B converged.
    assert out["converged"] is True and out["n_starts"] == 100 and out["n_iter"] > 0
    assert out["start"] == init_grid()[out["start_index"]].tolist()
    assert "CONVERGENCE" in out["message"]
    assert 0 <= out["bootstrap_not_converged"] <= 4


def test_cli_flops_columns_and_drop_outliers(tmp_path, synthetic_points, capsys):
    N, D, L = synthetic_points
    path = tmp_path / "flops.csv"
    pd.DataFrame({"params": N, "flops": 6 * N * D, "loss": L}).to_csv(path, index=False)
    assert main(["fit", str(path), "--drop-outliers"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["beta"] == pytest.approx(TRUTH["beta"], rel=0.02)
    assert out["n_dropped"] >= 0 and "intervals" not in out


BAD_CSVS = {
    "missing_column": ("params,tokens\n" + "1e8,1e9\n" * 6, "missing column"),
    "non_positive": ("params,tokens,loss\n" + "1e8,1e9,3\n" * 5 + "0,1e9,3\n", "positive"),
    "non_numeric": ("params,tokens,loss\n" + "1e8,1e9,3\n" * 5 + "1e8,lots,3\n", "positive"),
    "empty_cell": ("params,tokens,loss\n" + "1e8,1e9,3\n" * 5 + "1e8,,3\n", "positive"),
    "too_few_rows": ("params,tokens,loss\n" + "1e8,1e9,3\n" * 4, "at least 5"),
    "empty_file": ("", "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_cli_bad_csv_exits_2_with_one_line(case, tmp_path, capsys):
    text, fragment = BAD_CSVS[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(path)])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and fragment in lines[0], captured.err


@pytest.mark.parametrize("kind", ["missing", "directory", "binary"])
def test_cli_unreadable_file_exits_2(kind, tmp_path, capsys):
    path = tmp_path / "data.csv"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00\x81" * 64)
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(path)])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0]


def test_cli_bad_csv_subprocess(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("params,loss\n1,2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.chinchilla.fit", "fit", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing column" in proc.stderr


# ---------------------------------------------------------------- shared data


@pytest.mark.shared_data
def test_fit_on_chinchilla_extracted_points():
    if not SHARED_CSV.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED_CSV} is missing (CI=true requires ../shared/data)")
        pytest.skip(f"{SHARED_CSV} not present (../shared/data is absent and CI is not 'true')")
    pts = load_points(SHARED_CSV)  # 'Model Size', 'Training FLOP' columns; D = C / (6 N)
    assert len(pts) == 245
    fit = fit_parametric(pts["params"], pts["tokens"], pts["loss"])
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit, name) > 0, name
    assert 0.2 <= fit.alpha <= 0.6 and 0.2 <= fit.beta <= 0.6
    assert fit.a + fit.b == pytest.approx(1.0)
    assert 0 < fit.a < 1
    # the two outlier rules on Epoch AI's points: ours (MAD of a first fit's residuals) and theirs
    # (the 5 highest losses), each selectable by name; they differ by 0.014 in a
    for rule, a in (("mad", 0.528), ("epoch5", 0.514)):
        out = subprocess.run(
            [sys.executable, "-m", "analysis.chinchilla.fit", "fit", str(SHARED_CSV), "--drop-outliers", rule],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout)
        assert result["drop_rule"] == rule and result["a"] == pytest.approx(a, abs=0.002), (rule, result["a"])


# ---------------------------------------------------------------- robustness on real sweeps


def test_approach2_reads_d_opt_off_the_points_under_any_flop_count():
    # Budgets split by a count other than 6ND (e.g. appendix F): D = C / (7.3 N).
    minima = approach2(parabola_sweep(np.logspace(18, 21, 4), 5, flops_per_param_token=7.3))["minima"]
    np.testing.assert_allclose(minima["D_opt"], minima["budget"] / (7.3 * minima["N_opt"]), rtol=1e-9)
    assert minima["inside"].all()


def test_approach1_refuses_a_power_law_over_a_sliver_of_compute(synthetic_curves):
    # Four adjacent sizes: the two interior ones win the envelope over far less than the asked span.
    runs = synthetic_curves[synthetic_curves["run"].isin(["m13", "m14", "m15", "m16"])]
    with pytest.raises(ScaleDAGError, match="range of FLOPs"):
        approach1(runs, min_span=1e6)


def test_degenerate_exponent_has_no_frontier():
    assert np.isnan(ParametricFit(E=1.0, A=10.0, B=10.0, alpha=0.3, beta=0.0).G)


# ---------------------------------------------------------------- the optimiser's record


def test_fit_records_the_winning_start_and_convergence(synthetic_points, synthetic_fit):
    assert synthetic_fit.converged, synthetic_fit.message
    assert synthetic_fit.n_starts == 100 and synthetic_fit.n_iter > 0
    np.testing.assert_array_equal(synthetic_fit.start, init_grid()[synthetic_fit.start_index])
    capped = fit_parametric(*synthetic_points, starts=3, maxiter=2)
    assert not capped.converged and capped.n_iter == 2 and "ITERATIONS" in capped.message
    assert capped.n_starts == 3
    record = json.loads(json.dumps(capped.to_dict()))
    assert record["converged"] is False and record["start"] == list(capped.start)
    assert record["start_index"] == capped.start_index and record["n_iter"] == 2
    # A law written down by hand (a paper's) says it was not fitted here.
    assert TRUE_FIT.to_dict()["n_starts"] == 0 and TRUE_FIT.to_dict()["start"] == []


# ---------------------------------------------------------------- recovering a known law
#
# The design: Chinchilla-like IsoFLOP profiles, 9 budgets (the paper's 6e18-3e21 FLOPs) x 9 model
# sizes log-uniform within a factor 4 either side of the law's own optimum, D = C / (6 N).

# The paper's approach-3 coefficients unrounded, as in its LaTeX source (reported by Besiroglu et
# al. 2024, "Chinchilla Scaling: A replication attempt"); the PDF prints alpha = 0.34, beta = 0.28.
PAPER_FIT = ParametricFit(E=1.6934, A=406.4, B=410.7, alpha=0.3392, beta=0.2849)
PAPER_KEYS = ("E", "A", "B", "alpha", "beta")
GOPHER_BUDGET = 5.76e23
DESIGN_BUDGETS = np.geomspace(6e18, 3e21, 9)


def isoflop_design(law=PAPER_FIT, budgets=DESIGN_BUDGETS, sizes=9, spread=4.0):
    """Noise-free IsoFLOP sweep of `law`: per budget C, `sizes` model sizes log-uniform in
    [N_opt / spread, N_opt * spread], D = C / (6 N)."""
    n_opt, _ = frontier(law, budgets)
    N = (n_opt[:, None] * np.geomspace(1 / spread, spread, sizes)[None, :]).ravel()
    C = np.repeat(budgets, sizes)
    D = C / (6 * N)
    return pd.DataFrame({"budget": C, "params": N, "tokens": D, "loss": law.predict(N, D)})


def isoflop_curves(design, spacing, law=PAPER_FIT):
    """Approach 1's training curves for `design`: each run evaluated every D/20 tokens (a fixed
    eval interval, as the DAG's runs are) or at 30 log-spaced points from D/100 to D; the loss at
    each is the law at the tokens seen so far (each point taken as a run tuned to stop there)."""
    frames = []
    for i, (n, d) in enumerate(zip(design["params"], design["tokens"])):
        seen = d * np.arange(1, 21) / 20 if spacing == "linear" else np.geomspace(d / 100, d, 30)
        frames.append(
            pd.DataFrame(dict(run=f"r{i:02d}", params=n, tokens=seen, flops=6 * n * seen, loss=law.predict(n, seen)))
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def isoflop():
    return isoflop_design()


def test_approach3_recovers_every_parameter_within_1pct_without_noise(isoflop):
    fit = fit_parametric(isoflop["params"], isoflop["tokens"], isoflop["loss"])
    for key in PAPER_KEYS:
        assert getattr(fit, key) == pytest.approx(getattr(PAPER_FIT, key), rel=0.01), key
    assert fit.converged, fit.message
    np.testing.assert_array_equal(fit.start, init_grid()[fit.start_index])


# Coverage of approach 3's bootstrap intervals (10th-90th percentiles: nominal 80%) under 1%
# multiplicative noise. Per quantity, the number of seeds whose interval holds the truth is
# Binomial(20, p). On this design p ~ 0.83 (over 200 seeds of this very procedure, coverage per
# quantity was 0.825-0.85).
# Requiring >= 10 of 20 (50%): a sound fitter fails on a fresh set of seeds with probability
# 0.0006 per quantity at p = 0.8 and 0.004 at p = 0.75 (< 3% for all six together), while
# intervals a third of the right width (p ~ 0.3) pass with probability 0.05 and intervals that
# ignore the resampling (p ~ 0) never. The upper end is 100%: at p = 0.8-0.85 a sound interval
# covers in all 20 seeds with probability 1-4%, so a tighter upper limit would be flaky.
# Cost: starts=4 for the full fits (on these seeds the best of the top 4 grid starts is the best of
# the top 100) and one warm start per replicate (extra_starts=0).
COVERAGE_SEEDS, COVERAGE_K, COVERAGE_MIN = 20, 30, 10


def test_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate(isoflop):
    N, D, L0 = (isoflop[c].to_numpy() for c in ("params", "tokens", "loss"))
    keys = (*PAPER_KEYS, "a")
    covered = dict.fromkeys(keys, 0)
    for seed in range(COVERAGE_SEEDS):
        L = L0 * np.exp(0.01 * np.random.default_rng(seed).standard_normal(L0.size))
        fit = fit_parametric(N, D, L, starts=4)
        iv = bootstrap(N, D, L, k=COVERAGE_K, seed=1000 + seed, full_fit=fit, extra_starts=0)
        for key in keys:
            lo, hi = iv[key]
            covered[key] += bool(lo <= getattr(PAPER_FIT, key) <= hi)
    assert all(COVERAGE_MIN <= n <= COVERAGE_SEEDS for n in covered.values()), covered


@pytest.mark.parametrize("spacing", ["linear", "log"])
def test_approaches_1_and_2_recover_the_exponent_without_noise(isoflop, spacing):
    res2 = approach2(isoflop)
    assert res2["minima"]["inside"].all()
    assert res2["a"] == pytest.approx(PAPER_FIT.a, abs=0.02)
    res1 = approach1(isoflop_curves(isoflop, spacing))
    assert res1["a"] == pytest.approx(PAPER_FIT.a, abs=0.02)
    assert res1["b"] == pytest.approx(PAPER_FIT.b, abs=0.02)


def test_approach1_smoothing_follows_the_slope_to_the_curve_ends():
    # Approach 1's envelope is decided at the ends of runs, where curves still fall: the
    # smoothing must not pull the first points down or the last up.
    log_c = np.log(np.geomspace(1e18, 1e20, 12))
    np.testing.assert_allclose(_smooth(log_c, 3.0 - 0.05 * log_c, 5), 3.0 - 0.05 * log_c)
    noisy = 3.0 - 0.05 * log_c + 1e-3 * np.random.default_rng(0).standard_normal(12)
    assert np.std(_smooth(log_c, noisy, 5) - (3.0 - 0.05 * log_c)) < np.std(noisy - (3.0 - 0.05 * log_c))


# ---------------------------------------------------------------- allocate: the frontier from a law
#
# Chinchilla's text: at Gopher's budget (5.76e23 FLOPs) "approach 3 ... predicts 40B" parameters.
# That figure comes from the unrounded coefficients (PAPER_FIT); with the rounded exponents the
# paper prints (alpha = 0.34, beta = 0.28) the same closed form gives 32B, because N_opt =
# G (C/6)^a is steep in a: a falls from 0.4565 to 0.4516 and ln(C/6) = 53. Both are asserted so
# the reason stays on record. Table A3's approach-3 rows (FLOPs and tokens per model size) are
# not asserted: the paper's values cannot be read here, and rows recomputed from these
# coefficients would test the code only against itself.


@pytest.mark.parametrize("E, alpha, beta, billions", [(1.6934, 0.3392, 0.2849, 40), (1.69, 0.34, 0.28, 32)])
def test_allocate_gives_chinchillas_40b_at_gophers_budget(E, alpha, beta, billions, capsys):
    params = f"E={E},A=406.4,B=410.7,alpha={alpha},beta={beta}"
    assert main(["allocate", "--params", params, "--budgets", str(GOPHER_BUDGET)]) == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out["allocations"]
    assert round(row["N_opt"] / 1e9) == billions
    # The closed form, written out here rather than taken from the module.
    G = (alpha * 406.4 / (beta * 410.7)) ** (1 / (alpha + beta))
    assert row["N_opt"] == pytest.approx(G * (GOPHER_BUDGET / 6) ** (beta / (alpha + beta)), rel=1e-12)
    assert 6 * row["N_opt"] * row["D_opt"] == pytest.approx(GOPHER_BUDGET, rel=1e-12)
    assert row["loss"] == pytest.approx(E + 406.4 / row["N_opt"] ** alpha + 410.7 / row["D_opt"] ** beta)
    assert row["tokens_per_param"] == pytest.approx(row["D_opt"] / row["N_opt"])
    assert out["params"] == {"E": E, "A": 406.4, "B": 410.7, "alpha": alpha, "beta": beta}


def test_allocate_subprocess_json_forms():
    params = json.dumps({k: getattr(PAPER_FIT, k) for k in PAPER_KEYS})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis.chinchilla.fit",
            "allocate",
            "--params",
            params,
            "--budgets",
            "[1e21, 5.76e23]",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object
    assert [r["budget"] for r in out["allocations"]] == [1e21, 5.76e23]
    np.testing.assert_allclose([r["N_opt"] for r in out["allocations"]], frontier(PAPER_FIT, [1e21, 5.76e23])[0])
    assert out["a"] == pytest.approx(PAPER_FIT.a) and out["G"] == pytest.approx(PAPER_FIT.G)


GOOD_PARAMS = "E=1.69,A=406.4,B=410.7,alpha=0.34,beta=0.28"
BAD_ALLOCATE = {
    "missing_key": ("E=1.69,A=406.4,B=410.7,alpha=0.34", "1e21", "missing beta"),
    "non_number": ("E=1.69,A=lots,B=410.7,alpha=0.34,beta=0.28", "1e21", "--params A: expected a number"),
    "unknown_key": (GOOD_PARAMS + ",gamma=1", "1e21", "unknown gamma"),
    "not_key_value": ("E=1.69,A", "1e21", "KEY=VALUE"),
    "duplicate_key": (GOOD_PARAMS + ",E=2", "1e21", "E given twice"),
    "zero_exponent": ("E=1.69,A=406.4,B=410.7,alpha=0,beta=0.28", "1e21", "alpha: must be > 0"),
    "bad_json": ('{"E": 1.69,', "1e21", "not JSON"),
    "json_text_value": ('{"E": "x", "A": 1, "B": 1, "alpha": 1, "beta": 1}', "1e21", "--params E: expected a number"),
    "non_number_budget": (GOOD_PARAMS, "lots", "--budgets: expected a number"),
    "zero_budget": (GOOD_PARAMS, "0", "positive"),
    "negative_budget": (GOOD_PARAMS, "-5", "positive"),
    "infinite_budget": (GOOD_PARAMS, "inf", "finite"),
}


@pytest.mark.parametrize("case", sorted(BAD_ALLOCATE))
def test_allocate_bad_input_exits_2_with_one_line(case, capsys):
    params, budget, fragment = BAD_ALLOCATE[case]
    with pytest.raises(SystemExit) as exc:
        main(["allocate", "--params", params, "--budgets", "1e20", budget])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], captured.err


def test_both_interval_widths_come_from_the_same_replicates(synthetic_points):
    from analysis.chinchilla.fit import bootstrap

    N, D, L = synthetic_points
    iv = bootstrap(N, D, L, k=12, seed=1, extra_starts=0)
    for key in ("alpha", "beta", "a"):
        lo80, hi80 = iv[key]
        lo95, hi95 = iv["intervals_95"][key]
        assert lo95 <= lo80 <= hi80 <= hi95, key
        assert lo95 == pytest.approx(np.percentile(iv["samples"][key], 2.5))


def test_minimum_at_the_window_edge_is_flagged():
    """A sweep whose sizes all lie above the optimum: the smallest size wins at every budget,
    and the table and notes say so rather than report a bracketed minimum."""
    from analysis.chinchilla.approaches import edge_notes

    sweep = parabola_sweep(np.logspace(18, 21, 4), 5)
    shifted = sweep.copy()
    for _, g in shifted.groupby("budget"):  # the same budgets, every size 3-30x past the vertex
        n_star = 0.1 * g["budget"].iloc[0] ** 0.45
        n = n_star * np.logspace(0.5, 1.5, len(g))
        shifted.loc[g.index, "params"] = n
        shifted.loc[g.index, "tokens"] = g["budget"].iloc[0] / (6 * n)
        shifted.loc[g.index, "loss"] = 2.0 + 0.05 * np.log(n / n_star) ** 2
    res = approach2(shifted)
    assert (res["minima"]["edge"] == "smallest").all() and not res["minima"]["inside"].any()
    notes = edge_notes(None, res)["approach2"]
    assert "extrapolated" in notes and "lowest loss at the smallest sampled size" in notes
    assert (approach2(sweep)["minima"]["edge"] == "").all()
