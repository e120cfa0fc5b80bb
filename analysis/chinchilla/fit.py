"""Chinchilla's three approaches to compute-optimal scaling (Hoffmann et al. 2022, arXiv 2203.15556).

Why here: the DAG's scaling study and anyone with a CSV of (N, D, loss) points need the same
fits, so they live in one importable module that is also a CLI:

    python -m analysis.chinchilla.fit fit CSV [--bootstrap K] [--seed S] [--drop-outliers] [--starts K]
    python -m analysis.chinchilla.fit allocate --params E=..,A=..,B=..,alpha=..,beta=.. --budgets C [C ...]

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
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.io import write_csv

__all__ = [
    "ParametricFit",
    "approach1",
    "approach2",
    "bootstrap",
    "drop_highest_losses",
    "drop_outliers",
    "fit_parametric",
    "frontier",
    "huber_objective",
    "init_grid",
    "load_points",
    "optimal_allocation_table",
    "parse_params",
    "powerlaw_fit",
    "table_exponents",
    "write_table",
]

# Percentiles reported for intervals: the paper's Table 2 gives 10th and 90th percentiles; the
# 2.5th-97.5th (a 95 % interval) stand beside them, from the same bootstrap replicates.
DEFAULT_PERCENTILES = (10.0, 90.0)
WIDE_PERCENTILES = (2.5, 97.5)


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


def _smooth(log_c: np.ndarray, loss: np.ndarray, window: int) -> np.ndarray:
    """Local linear smoothing in log FLOPs: each point is replaced by the value at its log C of a
    least-squares line through the `window` evaluations centred on it (one-sided at the curve's
    ends). Removes eval noise so the envelope is not set by a single lucky evaluation.

    Why a line rather than a moving average: the envelope is decided where the end of one run
    meets the start of a larger one, and a curve is still falling at both. A moving average whose
    window shrinks at the ends pulls the first points down and the last up by about a step's
    worth of slope, which hands the envelope to larger models and biases a low (by up to 0.09 on
    noise-free IsoFLOP sweeps with 10-50 evaluations per run); a line through the window follows
    the slope, leaving only a second-order curvature bias (within 0.01 on the same sweeps).
    """
    n = loss.size
    if window <= 1 or n < 3:
        return loss
    w = min(window, n)
    xs, ys = sliding_window_view(log_c, w), sliding_window_view(loss, w)
    x_mean, y_mean = xs.mean(axis=1), ys.mean(axis=1)
    dx = xs - x_mean[:, None]
    sxx = (dx * dx).sum(axis=1)
    slope = np.divide((dx * (ys - y_mean[:, None])).sum(axis=1), sxx, out=np.zeros_like(sxx), where=sxx > 0)
    first = np.clip(np.arange(n) - w // 2, 0, n - w)  # each point's window
    return y_mean[first] + slope[first] * (log_c - x_mean[first])


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
    Each run's loss curve is smoothed (`_smooth`: a local line in log FLOPs through
    `smooth_window` evaluations) and linearly interpolated in log FLOPs. On `n_grid` log-spaced
    FLOP values (the paper used 1500) the envelope is the minimum interpolated loss over the
    runs whose FLOP range covers that value; the winning run gives N_opt(C) and its
    interpolated token count D_opt(C). Then log N_opt and log D_opt are regressed on log C.

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
                _smooth(log_c, g["loss"].to_numpy(float), smooth_window),
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
    if bootstrap_k:  # the same seed: both intervals come from the same replicates
        result["intervals"] = _regression_intervals(C, N, D, bootstrap_k, seed, percentiles)
        result["intervals_95"] = _regression_intervals(C, N, D, bootstrap_k, seed, WIDE_PERCENTILES)
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
    used as the paper does, but worth flagging); `edge` names the sampled size ("smallest",
    "largest") that reached the lowest loss when it is at the window's edge, where the true minimum
    may lie outside the sizes. Then N_opt, D_opt are regressed on C in log-log.

    `final` columns: budget (C), params, tokens, loss. Returns {"a", "b", "N_coef", "D_coef",
    "minima": DataFrame(budget, N_opt, D_opt, loss_opt, n_points, ok, inside, edge, p2, p1, p0),
    "intervals" (if bootstrap_k; resampling the budgets' minima)}.
    """
    _require_columns(final, ["budget", "params", "tokens", "loss"], "approach2 final")
    rows = []
    for budget, g in final.groupby("budget"):
        x = np.log(g["params"].to_numpy(float))
        y = g["loss"].to_numpy(float)
        lowest = x[int(np.argmin(y))]
        row = {
            "budget": float(budget),
            "N_opt": np.nan,
            "D_opt": np.nan,
            "loss_opt": np.nan,
            "n_points": int(x.size),
            "ok": False,
            "inside": False,
            # the lowest sampled loss at the smallest or largest size: the optimum may lie beyond
            "edge": "smallest" if lowest == x.min() else "largest" if lowest == x.max() else "",
            "p2": np.nan,
            "p1": np.nan,
            "p0": np.nan,
        }
        if np.unique(x).size >= 3:
            p2, p1, p0 = np.polyfit(x, y, 2)
            row.update(p2=float(p2), p1=float(p1), p0=float(p0))
            if p2 > 0:
                x_opt = -p1 / (2 * p2)
                k, c = np.polyfit(x, np.log(g["tokens"].to_numpy(float)), 1)
                row.update(
                    N_opt=float(np.exp(x_opt)),
                    D_opt=float(np.exp(k * x_opt + c)),
                    loss_opt=float(p0 - p1 * p1 / (4 * p2)),
                    ok=True,
                    inside=bool(x.min() <= x_opt <= x.max()),
                )
        rows.append(row)
    minima = pd.DataFrame(rows)
    ok = minima[minima["ok"]]
    if len(ok) < 2:
        raise ScaleDAGError(f"approach2: need >= 2 budgets with >= 3 model sizes and a convex profile, got {len(ok)}")
    result = _power_law_fit(ok["budget"], ok["N_opt"], ok["D_opt"], bootstrap_k, seed, percentiles)
    result["minima"] = minima
    return result


# --------------------------------------------------------------------------------------------
# Approach 3: parametric fit L(N, D) = E + A / N^alpha + B / D^beta
# --------------------------------------------------------------------------------------------


# The fit follows Chinchilla's App. D.2 (Hoffmann et al. 2022, arXiv 2203.15556):
#
#   min over (a, b, e, alpha, beta) of  sum_i Huber_delta( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i ),
#   delta = 1e-3, A = exp(a), B = exp(b), E = exp(e),
#
# minimised with L-BFGS from a grid of initialisations alpha, beta in {0, 0.5, ..., 2},
# e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25} (`init_grid`), keeping the best local minimum.
# Why this form: LSE(.) = log(A/N^alpha + B/D^beta + E) is the log of the predicted loss, so the
# residual is a relative error and A, B, E stay positive without constraints; the Huber loss with
# delta = 1e-3 on log loss is quadratic only for residuals under 0.1%, i.e. nearly an L1 fit, so
# a few badly tuned runs pull the fit little. (Reimplementations write the e grid as
# np.arange(-1, 1.5, 0.5): 1.5 is the exclusive end there, not a grid value.)
# Where this code departs from the paper, each for a stated reason: L-BFGS-B with box bounds
# (`_BOUNDS`), an objective scaled so scipy's stopping rule does not fire early (`_lbfgs`), and by
# default L-BFGS only from the best-scoring 100 grid points (`fit_parametric`). The fit records
# which start won and whether L-BFGS reported convergence, so a fit that stopped on its iteration
# cap or a failed line search is visible in every output.

HUBER_DELTA = 1e-3  # App. D.2's delta, on the residual in log loss


@dataclass(frozen=True)
class ParametricFit:
    """A fitted L(N, D) = E + A / N^alpha + B / D^beta, with its efficient frontier.

    The optimiser's record (defaults describe a fit written down by hand, e.g. a paper's): which
    start won (`start_index`: its row in the initialisations, by default `init_grid()`; `start`:
    that row as (log_A, log_B, log_E, alpha, beta)), whether L-BFGS-B reported convergence from it
    (`converged`, with scipy's `message` and the iterations `n_iter`), and `n_starts` tried.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float = float("nan")  # summed Huber loss at the optimum
    n_points: int = 0
    converged: bool = False
    message: str = ""
    n_iter: int = 0
    start_index: int = -1
    start: tuple = ()
    n_starts: int = 0

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
        """Plain JSON values: E, A, B, alpha, beta, frontier a, b, G, objective, n_points and the
        optimiser's record (converged, message, n_iter, start_index, start as a list, n_starts)."""
        out = {k: _JSON_TYPE.get(k, float)(v) for k, v in asdict(self).items() if k != "start"}
        out.update(a=float(self.a), b=float(self.b), G=float(self.G), start=[float(v) for v in self.start])
        return out

    @classmethod
    def from_law(cls, values: dict | None) -> ParametricFit | None:
        """The law of a `to_dict()` (or any dict with E, A, B, alpha, beta); None for None."""
        return None if values is None else cls(**{k: float(values[k]) for k in PARAM_KEYS})


# JSON types of the non-float fields (a numpy scalar would not serialise); the rest are floats.
_JSON_TYPE = {"converged": bool, "message": str, "n_iter": int, "start_index": int, "n_starts": int, "n_points": int}


def init_grid() -> np.ndarray:
    """The paper's initialisation grid as rows (log_A, log_B, log_E, alpha, beta):
    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}: 4500."""
    log_ab = np.arange(0.0, 25.1, 5.0)
    e = np.arange(-1.0, 1.01, 0.5)
    ex = np.arange(0.0, 2.01, 0.5)
    mesh = np.meshgrid(log_ab, log_ab, e, ex, ex, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def huber_objective(theta: np.ndarray, log_n, log_d, log_l, delta: float = HUBER_DELTA):
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


def _one_blas_thread():
    """A context in which BLAS uses one thread.

    L-BFGS-B's own linear algebra is on 5 x 5 matrices, where a multi-threaded BLAS spends far
    longer waking its threads than computing: measured 8x slower per iteration on a 2-core
    machine, worse when other jobs share the cores.
    """
    return threadpool_limits(limits=1, user_api="blas")


def _lbfgs(theta0, log_n, log_d, log_l, delta, maxiter: int = 1000):
    """One L-BFGS-B run; returns (scipy's OptimizeResult, unscaled objective).

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
        options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-8},
    )
    return res, float(res.fun) / scale


def _best_start(runs, rtol: float = 1e-9) -> int | None:
    """Index of the run with the lowest objective among those ending at a finite point.

    Several starts usually reach the same optimum; among runs within `rtol` of the lowest
    objective, one that L-BFGS-B reports as converged is preferred, so a run whose final line
    search merely failed to improve an optimum the others also found does not make the fit
    read as unconverged.
    """
    finite = [i for i, (res, value) in enumerate(runs) if np.all(np.isfinite(res.x)) and np.isfinite(value)]
    if not finite:
        return None
    best = min(finite, key=lambda i: runs[i][1])
    tied = [i for i in finite if runs[i][1] <= runs[best][1] * (1 + rtol) and runs[i][0].success]
    return min(tied, key=lambda i: runs[i][1]) if tied else best


def fit_parametric(
    params,
    tokens,
    loss,
    delta: float = HUBER_DELTA,
    starts: int | None = 100,
    inits: np.ndarray | None = None,
    maxiter: int = 1000,
) -> ParametricFit:
    """Approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta as in the paper (App. D.2, see above).

    Minimises sum_i Huber_delta(LSE(log_A - alpha log N_i, log_B - beta log D_i, log_E) - log L_i)
    with L-BFGS-B (analytic gradient, at most `maxiter` iterations per start) from the paper's
    4500-point `init_grid()` (or `inits`), keeping the best optimum and recording which start
    won and whether L-BFGS-B converged from it.

    Speed: the objective of every start is evaluated at once (vectorised); L-BFGS is then run
    only from the `starts` best-scoring initialisations (default 100; None = all 4500, the
    paper's procedure). Checked on the Chinchilla points and on synthetic data: the best of the
    top 100 equals the best of all 4500. On Epoch AI's extraction of the Chinchilla points,
    dropping the 5 highest losses as Besiroglu et al. 2024 did gives E=1.817, A=478, B=2143,
    alpha=0.347, beta=0.367, close to their published fit.
    """
    N, D, L = _check_points(params, tokens, loss)
    log_n, log_d, log_l = np.log(N), np.log(D), np.log(L)
    grid = init_grid() if inits is None else np.atleast_2d(np.asarray(inits, float))
    order = np.arange(len(grid))
    if starts is not None and starts < len(grid):
        init_loss, _ = huber_objective(grid, log_n, log_d, log_l, delta)
        order = np.argsort(init_loss, kind="stable")[:starts]
    with _one_blas_thread():
        runs = [_lbfgs(grid[i], log_n, log_d, log_l, delta, maxiter) for i in order]
    best = _best_start(runs)
    if best is None:
        raise ScaleDAGError("parametric fit: no start converged to a finite optimum")
    res, value = runs[best]
    log_a, log_b, log_e, alpha, beta = res.x
    return ParametricFit(
        E=float(np.exp(log_e)),
        A=float(np.exp(log_a)),
        B=float(np.exp(log_b)),
        alpha=float(alpha),
        beta=float(beta),
        objective=value,
        n_points=int(N.size),
        converged=bool(res.success),
        message=str(res.message),
        n_iter=int(res.nit),
        start_index=int(order[best]),
        start=tuple(float(v) for v in grid[order[best]]),
        n_starts=int(order.size),
    )


def _theta(fit: ParametricFit) -> np.ndarray:
    return np.array([np.log(fit.A), np.log(fit.B), np.log(fit.E), fit.alpha, fit.beta])


def _replicate_inits(full_fit, grid, N, D, L, delta, extra_starts) -> np.ndarray:
    """The full-data optimum, then the `extra_starts` grid points scoring best on this replicate."""
    warm = _theta(full_fit)[None, :]
    if not extra_starts:
        return warm
    init_loss, _ = huber_objective(grid, np.log(N), np.log(D), np.log(L), delta)
    return np.vstack([warm, grid[np.argsort(init_loss, kind="stable")[:extra_starts]]])


def bootstrap(
    params,
    tokens,
    loss,
    k: int,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    percentiles=DEFAULT_PERCENTILES,
    full_fit: ParametricFit | None = None,
    extra_starts: int = 4,
) -> dict:
    """Percentile intervals for E, A, B, alpha, beta and the frontier a, b.

    Each of the `k` replicates resamples the points with replacement and refits. For speed a
    replicate starts L-BFGS from the full-data optimum (`full_fit`, fitted here if not given)
    plus the `extra_starts` best grid initialisations for that replicate, instead of all 4500.
    Returns {"E": (lo, hi), ..., "intervals_95": {"E": (lo, hi), ...} (2.5th-97.5th),
    "samples": DataFrame of the k fits, each with its optimiser record (`converged`, `start_index`: 0 is the warm start from `full_fit`, ...)}.
    """
    if k < 2:
        raise ScaleDAGError(f"bootstrap: k must be >= 2, got {k}")
    N, D, L = _check_points(params, tokens, loss)
    full_fit = full_fit or fit_parametric(N, D, L, delta=delta)
    rng = np.random.default_rng(seed)
    grid = init_grid() if extra_starts else None
    rows = []
    with _one_blas_thread():
        for _ in range(k):
            idx = rng.integers(0, N.size, N.size)
            inits = _replicate_inits(full_fit, grid, N[idx], D[idx], L[idx], delta, extra_starts)
            fit = fit_parametric(N[idx], D[idx], L[idx], delta=delta, starts=None, inits=inits)
            rows.append(fit.to_dict())
    samples = pd.DataFrame(rows)
    keys = ("E", "A", "B", "alpha", "beta", "a", "b")
    intervals = {key: tuple(float(v) for v in np.percentile(samples[key], percentiles)) for key in keys}
    intervals["intervals_95"] = {
        key: tuple(float(v) for v in np.percentile(samples[key], WIDE_PERCENTILES)) for key in keys
    }
    intervals["samples"] = samples
    return intervals


def drop_highest_losses(loss, n: int = 5) -> np.ndarray:
    """Boolean mask of points to KEEP: all but the `n` highest losses. Epoch AI's rule in their
    replication of approach 3 (Besiroglu et al. 2024) for the smallest, least converged runs of
    Chinchilla's Figure 4; on their extracted points it gives a = 0.514 where the MAD rule gives 0.528."""
    loss = np.asarray(loss, float)
    keep = np.ones(loss.size, bool)
    keep[np.argsort(loss)[::-1][:n]] = False
    return keep


# `--drop-outliers RULE`: MAD is ours (residuals of a first fit), epoch5 is Epoch AI's by name.
DROP_RULES = ("mad", "epoch5")


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
    Columns: approach, a, a_lo, a_hi, b, b_lo, b_hi (10th-90th percentiles), a_lo95, a_hi95,
    b_lo95, b_hi95 (2.5th-97.5th, from "intervals_95"); NaN where no interval.
    """
    rows = []
    for name, res in results.items():
        if isinstance(res, ParametricFit):
            res = {"fit": res}
        if "fit" in res:
            a, b = res["fit"].a, res["fit"].b
        else:
            a, b = res["a"], res["b"]
        row = {"approach": name, "a": a, "b": b}
        for key, suffix in (("intervals", ""), ("intervals_95", "95")):
            iv = res.get(key) or {}
            for q in ("a", "b"):
                row[f"{q}_lo{suffix}"], row[f"{q}_hi{suffix}"] = iv.get(q, (np.nan, np.nan))
        rows.append(row)
    return pd.DataFrame(
        rows, columns=["approach", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi", "a_lo95", "a_hi95", "b_lo95", "b_hi95"]
    )


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a result table as CSV atomically (a killed job leaves no half-written table)."""
    write_csv(df, path, float_format="%.6g")


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
        raise ScaleDAGError(f"{path}: missing column(s) {missing}; expected params,tokens,loss or params,flops,loss")
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
        keep = drop_outliers(N, D, L, fit) if args.drop_outliers == "mad" else drop_highest_losses(L, 5)
        n_dropped = int((~keep).sum())
        if n_dropped:
            N, D, L = N[keep], D[keep], L[keep]
            fit = fit_parametric(N, D, L, delta=args.delta, starts=starts)
    out = fit.to_dict()
    out["n_dropped"] = n_dropped
    out["drop_rule"] = args.drop_outliers or "none"
    if args.bootstrap:
        iv = bootstrap(N, D, L, k=args.bootstrap, seed=args.seed, delta=args.delta, full_fit=fit)
        samples = iv.pop("samples")
        wide = iv.pop("intervals_95")
        out["intervals"] = {key: list(v) for key, v in iv.items()}
        out["interval_percentiles"] = list(DEFAULT_PERCENTILES)
        out["intervals_95"] = {key: list(v) for key, v in wide.items()}
        out["interval_95_percentiles"] = list(WIDE_PERCENTILES)
        # Replicates whose best start stopped without L-BFGS-B reporting convergence.
        out["bootstrap_not_converged"] = int((~samples["converged"]).sum())
    return out


PARAM_KEYS = ("E", "A", "B", "alpha", "beta")


def _number(what: str, value) -> float:
    """A finite float from a command-line string or a JSON number, or a one-line error naming `what`."""
    if isinstance(value, bool):
        raise ScaleDAGError(f"{what}: expected a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ScaleDAGError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ScaleDAGError(f"{what}: expected a finite number, got {value!r}")
    return x


def _key_values(text: str) -> dict:
    """`E=1.69,A=406.4,...` as {key: string}; a JSON object (what a rule passes) as itself."""
    if text.lstrip().startswith("{"):
        raw = json_option("--params", text)
        if not isinstance(raw, dict):
            raise ScaleDAGError(f"--params: expected a JSON object, got {type(raw).__name__}")
        return raw
    raw = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise ScaleDAGError(f"--params: expected KEY=VALUE pairs separated by commas, got {item.strip()!r}")
        if key in raw:
            raise ScaleDAGError(f"--params: {key} given twice")
        raw[key] = value
    return raw


def parse_params(text: str) -> ParametricFit:
    """The law L(N, D) = E + A/N^alpha + B/D^beta from `E=..,A=..,B=..,alpha=..,beta=..` (or a
    JSON object with those keys). A, B, alpha, beta must be > 0 (else there is no finite
    optimum) and E >= 0; anything else is a one-line ScaleDAGError naming the key."""
    raw = _key_values(text)
    missing = [k for k in PARAM_KEYS if k not in raw]
    unknown = sorted(set(raw) - set(PARAM_KEYS))
    if missing or unknown:
        what = "; ".join(
            filter(None, [missing and f"missing {', '.join(missing)}", unknown and f"unknown {', '.join(unknown)}"])
        )
        raise ScaleDAGError(f"--params: {what} (expected {','.join(PARAM_KEYS)})")
    values = {k: _number(f"--params {k}", raw[k]) for k in PARAM_KEYS}
    for key in ("A", "B", "alpha", "beta"):
        if values[key] <= 0:
            raise ScaleDAGError(f"--params {key}: must be > 0 for a compute-optimal frontier, got {raw[key]!r}")
    if values["E"] < 0:
        raise ScaleDAGError(f"--params E: must be >= 0, got {raw['E']!r}")
    return ParametricFit(**values)


def _budgets(values: list[str]) -> list[float]:
    """--budgets C1 C2 ... (or one JSON list); each a positive FLOP count."""
    if len(values) == 1 and values[0].lstrip().startswith("["):
        values = json_option("--budgets", values[0])
        if not isinstance(values, list) or not values:
            raise ScaleDAGError("--budgets: expected a non-empty JSON list of FLOP counts")
    budgets = [_number("--budgets", v) for v in values]
    bad = [v for v, c in zip(values, budgets) if c <= 0]
    if bad:
        raise ScaleDAGError(f"--budgets: expected positive FLOP counts, got {bad[0]!r}")
    return budgets


def _cmd_allocate(args) -> dict:
    """The closed-form frontier under C = 6 N D: N_opt = G (C/6)^a, D_opt = (C/6) / N_opt."""
    fit = parse_params(args.params)
    table = optimal_allocation_table(fit, _budgets(args.budgets))
    table["tokens_per_param"] = table["D_opt"] / table["N_opt"]
    return {
        "params": {k: getattr(fit, k) for k in PARAM_KEYS},
        "a": fit.a,
        "b": fit.b,
        "G": fit.G,
        "allocations": [{k: float(v) for k, v in row.items()} for row in table.to_dict("records")],
    }


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.chinchilla.fit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", help="Approach 3 parametric fit of a CSV; prints one JSON object")
    p.add_argument("csv", help="CSV with columns params,tokens,loss (or params,flops,loss)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="K", help="bootstrap replicates for intervals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--drop-outliers",
        nargs="?",
        const="mad",
        choices=DROP_RULES,
        default=None,
        help="refit without outliers: mad (default; log-loss residual over 3 x 1.4826 MAD of a first fit) "
        "or epoch5 (Epoch AI's: the 5 highest losses)",
    )
    p.add_argument("--delta", type=float, default=HUBER_DELTA, help="Huber delta (paper: 1e-3)")
    p.add_argument(
        "--starts", type=int, default=100, help="L-BFGS runs from the best K of the 4500 grid inits (0 = all)"
    )
    q = sub.add_parser("allocate", help="compute-optimal N, D and loss per budget from a law; prints one JSON object")
    q.add_argument(
        "--params",
        required=True,
        metavar="E=..,A=..,B=..,alpha=..,beta=..",
        help="the law L = E + A/N^alpha + B/D^beta (or a JSON object with those keys)",
    )
    q.add_argument("--budgets", nargs="+", required=True, metavar="C", help="training FLOPs (C = 6 N D)")
    args = parser.parse_args(argv)
    if args.command == "allocate":
        result = _cmd_allocate(args)
    else:
        if args.bootstrap and args.bootstrap < 2:
            raise ScaleDAGError(f"--bootstrap: expected K >= 2, got {args.bootstrap}")
        result = _cmd_fit(args)
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
