"""Chinchilla's three approaches to compute-optimal scaling (Hoffmann et al. 2022, arXiv 2203.15556).

Why here: the DAG's scaling study and anyone with a CSV of (N, D, loss) points need the same
fits, so they live in one importable module that is also a CLI:

    python -m analysis.scaling fit CSV [--bootstrap K] [--seed S] [--drop-outliers] [--starts K]

Conventions: N = parameters, D = training tokens, C = training FLOPs = 6 N D. A compute-optimal
allocation is N_opt ∝ C^a, D_opt ∝ C^b. Note the two meanings of "a"/"b" in the paper: in the
frontier they are these exponents (that is what `a`, `b` mean in every output here); inside the
Approach 3 optimisation the paper also writes a = log A, b = log B — this code calls those
`log_A`, `log_B`.

- Approach 1 (`approach1`): envelope of the smoothed training curves over FLOPs.
- Approach 2 (`approach2`): IsoFLOP profiles; a parabola in log N per budget.
- Approach 3 (`fit_parametric`, `bootstrap`, `frontier`): fit L(N, D) = E + A/N^α + B/D^β.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path

__all__ = [
    "ParametricFit",
    "approach1",
    "approach2",
    "bootstrap",
    "drop_outliers",
    "fit_parametric",
    "frontier",
    "huber_objective",
    "init_grid",
    "load_points",
    "optimal_allocation_table",
    "powerlaw_fit",
    "table_exponents",
    "write_table",
]

# Percentiles reported for intervals: the paper's Table 2 gives 10th and 90th percentiles.
DEFAULT_PERCENTILES = (10.0, 90.0)


# --------------------------------------------------------------------------------------------
# Shared: power-law fit in log-log space
# --------------------------------------------------------------------------------------------


def powerlaw_fit(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = k log x + log c; returns (k, c) for y = c x^k."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ScaleDAGError(f"power-law fit needs at least 2 distinct x values, got {lx.size}")
    k, log_c = np.polyfit(lx, ly, 1)
    return float(k), float(np.exp(log_c))


def _exponents(C, N, D) -> dict:
    a, n_coef = powerlaw_fit(C, N)
    b, d_coef = powerlaw_fit(C, D)
    return {"a": a, "b": b, "N_coef": n_coef, "D_coef": d_coef}


def _regression_intervals(C, N, D, k: int, seed: int, percentiles) -> dict:
    """Bootstrap (resampling the regression points) percentile intervals for a and b."""
    rng = np.random.default_rng(seed)
    C, N, D = (np.asarray(v, float) for v in (C, N, D))
    a_s, b_s = [], []
    for _ in range(k):
        idx = rng.integers(0, C.size, C.size)
        if np.ptp(np.log(C[idx])) == 0:
            continue
        a_s.append(powerlaw_fit(C[idx], N[idx])[0])
        b_s.append(powerlaw_fit(C[idx], D[idx])[0])
    return {
        "a": tuple(float(v) for v in np.percentile(a_s, percentiles)),
        "b": tuple(float(v) for v in np.percentile(b_s, percentiles)),
    }


def _require_columns(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ScaleDAGError(f"{what}: missing column(s) {missing}; expected {list(columns)}")


# --------------------------------------------------------------------------------------------
# Approach 1: minimum over training curves
# --------------------------------------------------------------------------------------------


def _smooth(loss: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling mean (window points, shrinking at the ends): removes eval noise so the
    envelope is not set by a single lucky evaluation."""
    if window <= 1 or loss.size < 3:
        return loss
    return pd.Series(loss).rolling(window, center=True, min_periods=1).mean().to_numpy()


def approach1(
    runs: pd.DataFrame,
    n_grid: int = 1500,
    smooth_window: int = 5,
    drop_edge_runs: bool = True,
    bootstrap_k: int = 0,
    seed: int = 0,
    percentiles=DEFAULT_PERCENTILES,
    min_span: float = 2.0,
) -> dict:
    """Approach 1: for each FLOP value, which run reaches the lowest loss?

    `runs` holds every intermediate evaluation: columns params, tokens, flops, loss, run.
    Each run's loss curve is smoothed (`_smooth`, in evaluation order) and linearly interpolated
    in log FLOPs. On `n_grid` log-spaced FLOP values (the paper used 1500) the envelope is the
    minimum interpolated loss over the runs whose FLOP range covers that value; the winning
    run gives N_opt(C) and its interpolated token count D_opt(C). Then log N_opt and log D_opt
    are regressed on log C.

    `drop_edge_runs`: envelope points won by the smallest or largest model are left out of the
    regression, because there the true optimum may lie outside the sampled model sizes (the
    envelope is then pinned to the edge). The points used must span at least `min_span` x in
    FLOPs, else the exponents would be a fit to noise and a ScaleDAGError says so. Intervals (with `bootstrap_k`) resample envelope
    points, so they reflect regression scatter only.

    Returns {"a", "b", "N_coef", "D_coef", "envelope": DataFrame(flops, loss, run, params,
    tokens, used), "intervals" (if bootstrap_k)}.
    """
    _require_columns(runs, ["params", "tokens", "flops", "loss", "run"], "approach1 runs")
    curves = []
    for name, g in runs.groupby("run", sort=False):
        g = g.sort_values("flops")
        log_c = np.log(g["flops"].to_numpy(float))
        if log_c.size < 2:
            continue
        curves.append(
            (
                name,
                float(g["params"].iloc[0]),
                log_c,
                _smooth(g["loss"].to_numpy(float), smooth_window),
                np.log(g["tokens"].to_numpy(float)),
            )
        )
    if len(curves) < 2:
        raise ScaleDAGError("approach1: need at least 2 runs with >= 2 evaluations each")
    lo = min(c[2][0] for c in curves)
    hi = max(c[2][-1] for c in curves)
    grid = np.linspace(lo, hi, n_grid)
    losses = np.full((len(curves), n_grid), np.inf)
    log_tokens = np.full((len(curves), n_grid), np.nan)
    for i, (_, _, log_c, loss, log_d) in enumerate(curves):
        inside = (grid >= log_c[0]) & (grid <= log_c[-1])
        losses[i, inside] = np.interp(grid[inside], log_c, loss)
        log_tokens[i, inside] = np.interp(grid[inside], log_c, log_d)
    best = np.argmin(losses, axis=0)
    cols = np.arange(n_grid)
    params = np.array([c[1] for c in curves])
    env = pd.DataFrame(
        {
            "flops": np.exp(grid),
            "loss": losses[best, cols],
            "run": [curves[i][0] for i in best],
            "params": params[best],
            "tokens": np.exp(log_tokens[best, cols]),
        }
    )
    used = np.ones(n_grid, bool)
    if drop_edge_runs:
        used &= (env["params"] > params.min()).to_numpy() & (env["params"] < params.max()).to_numpy()
    env["used"] = used
    fit_rows = env[env["used"]]
    if fit_rows["params"].nunique() < 2:
        raise ScaleDAGError(
            "approach1: the envelope has fewer than 2 distinct interior model sizes; "
            "add runs or pass drop_edge_runs=False"
        )
    span = float(fit_rows["flops"].max() / fit_rows["flops"].min())
    if span < min_span:
        raise ScaleDAGError(
            f"approach1: interior model sizes win the envelope only over a {span:.3g}x range of FLOPs "
            f"(need >= {min_span:g}x for a power law); the runs do not bracket the optimum along their curves"
        )
    result = _power_law_fit(fit_rows["flops"], fit_rows["params"], fit_rows["tokens"], bootstrap_k, seed, percentiles)
    result["envelope"] = env
    return result


def _power_law_fit(C, N, D, bootstrap_k, seed, percentiles) -> dict:
    """N_opt ∝ C^a and D_opt ∝ C^b from optimal points, with bootstrap intervals when asked."""
    result = _exponents(C, N, D)
    if bootstrap_k:
        result["intervals"] = _regression_intervals(C, N, D, bootstrap_k, seed, percentiles)
    return result


# --------------------------------------------------------------------------------------------
# Approach 2: IsoFLOP profiles
# --------------------------------------------------------------------------------------------


def approach2(
    final: pd.DataFrame,
    bootstrap_k: int = 0,
    seed: int = 0,
    percentiles=DEFAULT_PERCENTILES,
) -> dict:
    """Approach 2: per FLOP budget, fit loss = p2 (log N)^2 + p1 log N + p0 to the final losses.

    The vertex gives N_opt(C) = exp(-p1 / (2 p2)); D_opt is read off the budget's own points
    (log D fitted linearly in log N, evaluated at N_opt), which is C / (6 N_opt) when the
    budget was split by C = 6 N D and stays right when D was set by another FLOP count
    (Chinchilla's appendix F). A budget needs >= 3 distinct model sizes and an upward
    parabola (p2 > 0); others are kept in the table with ok=False and not used. `inside`
    says whether the vertex lies within the sampled sizes (else it is an extrapolation, still
    used as the paper does, but worth flagging). Then N_opt, D_opt are regressed on C in log-log.

    `final` columns: budget (C), params, tokens, loss. Returns {"a", "b", "N_coef", "D_coef",
    "minima": DataFrame(budget, N_opt, D_opt, loss_opt, n_points, ok, inside, p2, p1, p0),
    "intervals" (if bootstrap_k; resampling the budgets' minima)}.
    """
    _require_columns(final, ["budget", "params", "tokens", "loss"], "approach2 final")
    rows = []
    for budget, g in final.groupby("budget"):
        x = np.log(g["params"].to_numpy(float))
        y = g["loss"].to_numpy(float)
        row = {"budget": float(budget), "N_opt": np.nan, "D_opt": np.nan, "loss_opt": np.nan,
               "n_points": int(x.size), "ok": False, "inside": False, "p2": np.nan, "p1": np.nan, "p0": np.nan}
        if np.unique(x).size >= 3:
            p2, p1, p0 = np.polyfit(x, y, 2)
            row.update(p2=float(p2), p1=float(p1), p0=float(p0))
            if p2 > 0:
                x_opt = -p1 / (2 * p2)
                k, c = np.polyfit(x, np.log(g["tokens"].to_numpy(float)), 1)
                row.update(N_opt=float(np.exp(x_opt)), D_opt=float(np.exp(k * x_opt + c)),
                           loss_opt=float(p0 - p1 * p1 / (4 * p2)), ok=True,
                           inside=bool(x.min() <= x_opt <= x.max()))
        rows.append(row)
    minima = pd.DataFrame(rows)
    ok = minima[minima["ok"]]
    if len(ok) < 2:
        raise ScaleDAGError(
            f"approach2: need >= 2 budgets with >= 3 model sizes and a convex profile, got {len(ok)}"
        )
    result = _power_law_fit(ok["budget"], ok["N_opt"], ok["D_opt"], bootstrap_k, seed, percentiles)
    result["minima"] = minima
    return result


# --------------------------------------------------------------------------------------------
# Approach 3: parametric fit L(N, D) = E + A / N^alpha + B / D^beta
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParametricFit:
    """A fitted L(N, D) = E + A / N^alpha + B / D^beta, with its efficient frontier."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float = float("nan")  # summed Huber loss at the optimum
    n_points: int = 0

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a: beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ∝ C^b: alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """G = (alpha A / (beta B))^(1 / (alpha + beta)), so N_opt = G (C/6)^a.

        NaN when an exponent is 0: then loss does not fall with N (or D) and no finite optimum exists."""
        if not (self.alpha > 0 and self.beta > 0):
            return float("nan")
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def predict(self, params, tokens):
        """Predicted loss at (N, D)."""
        N, D = np.asarray(params, float), np.asarray(tokens, float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def to_dict(self) -> dict:
        """Plain floats for JSON: E, A, B, alpha, beta, frontier a, b, G, objective, n_points."""
        out = asdict(self)
        out.update(a=self.a, b=self.b, G=self.G)
        return {k: (int(v) if k == "n_points" else float(v)) for k, v in out.items()}


def init_grid() -> np.ndarray:
    """The paper's initialisation grid as rows (log_A, log_B, log_E, alpha, beta):
    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}: 4500."""
    log_ab = np.arange(0.0, 25.1, 5.0)
    e = np.arange(-1.0, 1.01, 0.5)
    ex = np.arange(0.0, 2.01, 0.5)
    mesh = np.meshgrid(log_ab, log_ab, e, ex, ex, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def huber_objective(theta: np.ndarray, log_n, log_d, log_l, delta: float = 1e-3):
    """Summed Huber_delta(LSE(log_A - alpha log N, log_B - beta log D, log_E) - log L) and its
    gradient w.r.t. theta = (log_A, log_B, log_E, alpha, beta).

    Vectorised: theta may be (5,) or (S, 5) for S starts at once (then returns (S,) and (S, 5)).
    """
    theta = np.asarray(theta, float)
    single = theta.ndim == 1
    th = theta[None, :] if single else theta
    log_a, log_b, log_e, alpha, beta = (th[:, i : i + 1] for i in range(5))
    t1 = log_a - alpha * log_n  # (S, n)
    t2 = log_b - beta * log_d
    t3 = np.broadcast_to(log_e, t1.shape)
    m = np.maximum(np.maximum(t1, t2), t3)
    w1, w2, w3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
    z = w1 + w2 + w3
    r = m + np.log(z) - log_l
    abs_r = np.abs(r)
    quad = abs_r <= delta
    loss = np.where(quad, 0.5 * r * r, delta * (abs_r - 0.5 * delta)).sum(axis=1)
    dr = np.clip(r, -delta, delta) / z  # dHuber/dr times 1/z (softmax normaliser)
    grad = np.stack(
        [
            (dr * w1).sum(axis=1),
            (dr * w2).sum(axis=1),
            (dr * w3).sum(axis=1),
            -(dr * w1 * log_n).sum(axis=1),
            -(dr * w2 * log_d).sum(axis=1),
        ],
        axis=1,
    )
    return (loss[0], grad[0]) if single else (loss, grad)


def _check_points(params, tokens, loss):
    N, D, L = (np.asarray(v, float).ravel() for v in (params, tokens, loss))
    if not (N.size == D.size == L.size):
        raise ScaleDAGError(f"params, tokens, loss must have equal length, got {N.size}, {D.size}, {L.size}")
    if N.size < 5:
        raise ScaleDAGError(f"the parametric fit needs at least 5 points, got {N.size}")
    for name, v in (("params", N), ("tokens", D), ("loss", L)):
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ScaleDAGError(f"{name}: every value must be finite and positive")
    return N, D, L


def _objective_single(theta, log_n, log_d, log_l, delta, scale):
    """`huber_objective` for one theta, lean (it is the L-BFGS inner loop), times `scale`."""
    log_a, log_b, log_e, alpha, beta = theta
    t1 = log_a - alpha * log_n
    t2 = log_b - beta * log_d
    m = np.maximum(np.maximum(t1, t2), log_e)
    w1, w2, w3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(log_e - m)
    z = w1 + w2 + w3
    r = m + np.log(z) - log_l
    c = np.clip(r, -delta, delta)
    loss = float(np.dot(c, r - 0.5 * c))  # = 0.5 r^2 where |r| <= delta, else delta (|r| - delta/2)
    dr = c / z
    g1, g2 = dr * w1, dr * w2
    grad = np.array([g1.sum(), g2.sum(), np.dot(dr, w3), -np.dot(g1, log_n), -np.dot(g2, log_d)])
    return loss * scale, grad * scale


# Box bounds (L-BFGS-B) that only bite on degenerate data: alpha, beta >= 0, since a negative
# exponent (loss growing with N or D) has no frontier; and |log A|, |log B|, |log E| bounded so a
# sweep that does not pin E (or bracket its optimum) cannot wander to E = exp(-700) or A = 1e300
# (overflow, and 1000-iteration runs). Well-posed fits (the paper's, synthetic truths) sit far inside.
_BOUNDS = [(-30.0, 100.0), (-30.0, 100.0), (-30.0, 10.0), (0.0, 10.0), (0.0, 10.0)]


def _lbfgs(theta0, log_n, log_d, log_l, delta):
    """One L-BFGS-B run; returns (theta, unscaled objective).

    The objective is multiplied by 1 / (delta^2 n) so it is O(1) near the optimum: scipy's
    relative tolerance compares changes with max(|f|, 1), so an unscaled objective of ~1e-3
    would stop early (the failure Besiroglu et al. 2024 found in the original fit).
    """
    scale = 1.0 / (delta * delta * log_n.size)
    res = minimize(
        _objective_single,
        theta0,
        args=(log_n, log_d, log_l, delta, scale),
        jac=True,
        method="L-BFGS-B",
        bounds=_BOUNDS,
        options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8},
    )
    return res.x, float(res.fun) / scale


def fit_parametric(
    params,
    tokens,
    loss,
    delta: float = 1e-3,
    starts: int | None = 100,
    inits: np.ndarray | None = None,
) -> ParametricFit:
    """Approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta as in the paper.

    Minimises sum_i Huber_delta(LSE(log_A - alpha log N_i, log_B - beta log D_i, log_E) - log L_i)
    with L-BFGS-B (analytic gradient) from the paper's 4500-point `init_grid()` (or `inits`),
    keeping the best optimum.

    Speed: the objective of every start is evaluated at once (vectorised); L-BFGS is then run
    only from the `starts` best-scoring initialisations (default 100; None = all 4500, the
    paper's procedure, ~30 s on 245 points). Checked on the Chinchilla points and on
    synthetic data: the best of the top 100 equals the best of all 4500. On Epoch AI's
    extraction of the Chinchilla points, dropping the 5 highest losses as Besiroglu et al. 2024
    did gives E=1.817, A=478, B=2143, alpha=0.347, beta=0.367, close to their published fit.
    """
    N, D, L = _check_points(params, tokens, loss)
    log_n, log_d, log_l = np.log(N), np.log(D), np.log(L)
    grid = init_grid() if inits is None else np.atleast_2d(np.asarray(inits, float))
    if starts is not None and starts < len(grid):
        init_loss, _ = huber_objective(grid, log_n, log_d, log_l, delta)
        grid = grid[np.argsort(init_loss, kind="stable")[:starts]]
    best_theta, best_loss = None, np.inf
    for theta0 in grid:
        theta, value = _lbfgs(theta0, log_n, log_d, log_l, delta)
        if np.all(np.isfinite(theta)) and value < best_loss:
            best_theta, best_loss = theta, value
    if best_theta is None:
        raise ScaleDAGError("parametric fit: no start converged to a finite optimum")
    log_a, log_b, log_e, alpha, beta = best_theta
    return ParametricFit(
        E=float(np.exp(log_e)), A=float(np.exp(log_a)), B=float(np.exp(log_b)),
        alpha=float(alpha), beta=float(beta), objective=best_loss, n_points=int(N.size),
    )


def _theta(fit: ParametricFit) -> np.ndarray:
    return np.array([np.log(fit.A), np.log(fit.B), np.log(fit.E), fit.alpha, fit.beta])


def bootstrap(
    params,
    tokens,
    loss,
    k: int,
    seed: int = 0,
    delta: float = 1e-3,
    percentiles=DEFAULT_PERCENTILES,
    full_fit: ParametricFit | None = None,
    extra_starts: int = 4,
) -> dict:
    """Percentile intervals for E, A, B, alpha, beta and the frontier a, b.

    Each of the `k` replicates resamples the points with replacement and refits. For speed a
    replicate starts L-BFGS from the full-data optimum (`full_fit`, fitted here if not given)
    plus the `extra_starts` best grid initialisations for that replicate, instead of all 4500.
    Returns {"E": (lo, hi), ..., "samples": DataFrame of the k fits}.
    """
    if k < 2:
        raise ScaleDAGError(f"bootstrap: k must be >= 2, got {k}")
    N, D, L = _check_points(params, tokens, loss)
    full_fit = full_fit or fit_parametric(N, D, L, delta=delta)
    rng = np.random.default_rng(seed)
    grid = init_grid()
    rows = []
    for _ in range(k):
        idx = rng.integers(0, N.size, N.size)
        log_n, log_d, log_l = np.log(N[idx]), np.log(D[idx]), np.log(L[idx])
        init_loss, _ = huber_objective(grid, log_n, log_d, log_l, delta)
        inits = np.vstack([_theta(full_fit), grid[np.argsort(init_loss, kind="stable")[:extra_starts]]])
        fit = fit_parametric(N[idx], D[idx], L[idx], delta=delta, starts=None, inits=inits)
        rows.append(fit.to_dict())
    samples = pd.DataFrame(rows)
    intervals = {
        key: tuple(float(v) for v in np.percentile(samples[key], percentiles))
        for key in ("E", "A", "B", "alpha", "beta", "a", "b")
    }
    intervals["samples"] = samples
    return intervals


def drop_outliers(params, tokens, loss, fit: ParametricFit, k: float = 3.0) -> np.ndarray:
    """Boolean mask of points to KEEP: residual r = log L - log L_hat within k robust sigmas.

    Rule: with MAD = median |r - median r|, drop points with |r - median r| > k * 1.4826 * MAD
    (1.4826 MAD estimates the standard deviation for Gaussian residuals; k = 3 by default).
    """
    r = np.log(np.asarray(loss, float)) - np.log(fit.predict(params, tokens))
    dev = np.abs(r - np.median(r))
    mad = np.median(dev)
    if mad == 0:
        return np.ones(r.size, bool)
    return dev <= k * 1.4826 * mad


def frontier(fit: ParametricFit, C):
    """Compute-optimal (N_opt, D_opt) for budget(s) C under C = 6 N D:
    N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b."""
    c6 = np.asarray(C, float) / 6.0
    return fit.G * c6**fit.a, c6**fit.b / fit.G


def optimal_allocation_table(fit: ParametricFit, budgets) -> pd.DataFrame:
    """Table (budget, N_opt, D_opt, predicted loss) along the efficient frontier."""
    budgets = np.asarray(budgets, float).ravel()
    n_opt, d_opt = frontier(fit, budgets)
    return pd.DataFrame({"budget": budgets, "N_opt": n_opt, "D_opt": d_opt, "loss": fit.predict(n_opt, d_opt)})


def table_exponents(results: dict[str, dict | ParametricFit]) -> pd.DataFrame:
    """The paper's Table 2: a and b (with intervals where known) per approach.

    `results` maps an approach name to an approach1/approach2 result dict (optionally with
    "intervals"), or to a ParametricFit, or to {"fit": ParametricFit, "intervals": bootstrap(...)}.
    Columns: approach, a, a_lo, a_hi, b, b_lo, b_hi (NaN where no interval).
    """
    rows = []
    for name, res in results.items():
        if isinstance(res, ParametricFit):
            res = {"fit": res}
        if "fit" in res:
            a, b = res["fit"].a, res["fit"].b
        else:
            a, b = res["a"], res["b"]
        iv = res.get("intervals") or {}
        a_lo, a_hi = iv.get("a", (np.nan, np.nan))
        b_lo, b_hi = iv.get("b", (np.nan, np.nan))
        rows.append({"approach": name, "a": a, "a_lo": a_lo, "a_hi": a_hi, "b": b, "b_lo": b_lo, "b_hi": b_hi})
    return pd.DataFrame(rows, columns=["approach", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi"])


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a result table as CSV atomically (a killed job leaves no half-written table)."""
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


# Column aliases accepted by `load_points`, so Epoch AI's extraction of Chinchilla Fig. 4
# (../shared/data/chinchilla_epoch/svg_extracted_data.csv) can be fitted as is.
COLUMN_ALIASES = {"Model Size": "params", "Training FLOP": "flops", "Training Tokens": "tokens"}


def load_points(path: str | Path) -> pd.DataFrame:
    """Read a CSV of (params, tokens, loss) — or (params, flops, loss), tokens = flops / (6 params).

    Columns named as in `COLUMN_ALIASES` are renamed first (unless the canonical name exists).

    Raises ScaleDAGError naming the file for: unreadable file, missing columns, non-numeric,
    non-finite or non-positive values, fewer than 5 rows.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise ScaleDAGError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise ScaleDAGError(f"{path}: cannot read CSV ({msg})") from None
    df.columns = [str(c).strip() for c in df.columns]
    df = df.rename(columns={k: v for k, v in COLUMN_ALIASES.items() if v not in df.columns})
    if "tokens" not in df.columns and "flops" in df.columns:
        needed = ["params", "flops", "loss"]
    else:
        needed = ["params", "tokens", "loss"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ScaleDAGError(
            f"{path}: missing column(s) {missing}; expected params,tokens,loss or params,flops,loss"
        )
    out = pd.DataFrame()
    for col in needed:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ScaleDAGError(
                f"{path}: column {col!r} line {row + 2}: expected a positive number, got {df[col].iloc[row]!r}"
            )
        out[col] = values.astype(float)
    if "flops" in out:
        out["tokens"] = out.pop("flops") / (6.0 * out["params"])
    if len(out) < 5:
        raise ScaleDAGError(f"{path}: need at least 5 rows for the parametric fit, got {len(out)}")
    return out[["params", "tokens", "loss"]]


def _cmd_fit(args) -> dict:
    pts = load_points(args.csv)
    N, D, L = (pts[c].to_numpy() for c in ("params", "tokens", "loss"))
    starts = None if args.starts == 0 else args.starts
    fit = fit_parametric(N, D, L, delta=args.delta, starts=starts)
    n_dropped = 0
    if args.drop_outliers:
        keep = drop_outliers(N, D, L, fit)
        n_dropped = int((~keep).sum())
        if n_dropped:
            N, D, L = N[keep], D[keep], L[keep]
            fit = fit_parametric(N, D, L, delta=args.delta, starts=starts)
    out = fit.to_dict()
    out["n_dropped"] = n_dropped
    if args.bootstrap:
        iv = bootstrap(N, D, L, k=args.bootstrap, seed=args.seed, delta=args.delta, full_fit=fit)
        iv.pop("samples")
        out["intervals"] = {key: list(v) for key, v in iv.items()}
        out["interval_percentiles"] = list(DEFAULT_PERCENTILES)
    return out


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.scaling", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="Approach 3 parametric fit of a CSV; prints one JSON object")
    p.add_argument("csv", help="CSV with columns params,tokens,loss (or params,flops,loss)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="K", help="bootstrap replicates for intervals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drop-outliers", action="store_true",
                   help="refit without points whose log-loss residual exceeds 3 x 1.4826 MAD")
    p.add_argument("--delta", type=float, default=1e-3, help="Huber delta (paper: 1e-3)")
    p.add_argument("--starts", type=int, default=100,
                   help="L-BFGS runs from the best K of the 4500 grid inits (0 = all)")
    args = parser.parse_args(argv)
    if args.bootstrap and args.bootstrap < 2:
        raise ScaleDAGError(f"--bootstrap: expected K >= 2, got {args.bootstrap}")
    result = _cmd_fit(args)
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
