"""Can a study's design measure its quantity? Checked at config load on scales with `evidence: true`.

A design that cannot measure what it reports wastes the run and misleads its reader: an IsoFLOP
sweep whose sizes all lie on one side of the optimum fits a parabola to a slope and extrapolates
its vertex; three budgets 3x apart give an exponent whose interval spans 0.3-0.7. So a scale meant
to produce evidence (mini, and any scale that sets `evidence: true`) stops at load with one line
naming what its design lacks. Tiny, the smoke run, is not checked: its verdicts may be inconclusive.

IsoFLOP sweep (Chinchilla), each rule from the simulations behind issue 17 and the paper's Figure 3:
- >= 4 budgets spanning >= 15x: the exponent a is the slope of log N_opt over log C, and its
  standard error falls with the log-span of C (at 1% loss noise a 16x span gives +-0.1 at ~90%).
- >= 5 sizes per budget spanning >= 16x in N: a parabola in log N needs points on both flanks.
- the prior optimum N* = sqrt(C / 120) (Chinchilla's ~20 tokens per parameter, C = 6 N D) lies
  between a budget's second-smallest and second-largest size, so at least one size flanks it on
  each side even when the true optimum sits a grid step away from the prior.
- embeddings are at most half of every run's N: otherwise N measures the vocabulary, not the model.

Architecture design by proxy (MatGPT):
- >= 8 candidate shapes: with 5 (the tiny design) one swapped pair moves Spearman's rho from 1.0 to
  0.9 and its bootstrap interval spans most of [-1, 1].
- proxies <= 10% of a full run's tokens (compute, at equal compute per candidate): a method whose
  proxies cost more saves too little to be worth choosing a shape by.
- >= 6 candidates trained in full (`full: all`, or top + bottom >= 6): rho over fewer full runs
  has too few pairs to tell a ranking from chance.
"""

from __future__ import annotations

import math

from workflow.errors import ScaleDAGError

MIN_BUDGETS, MIN_BUDGET_SPAN = 4, 15.0
MIN_SIZES, MIN_SIZE_SPAN = 5, 16.0
PRIOR_TOKENS_PER_PARAM = 20.0  # Chinchilla's compute-optimal ratio (Table 3: 1.4T tokens / 70B)
MAX_EMBEDDING_SHARE = 0.5
MIN_CANDIDATES, MAX_PROXY_FRACTION, MIN_FULL_RUNS = 8, 0.10, 6


def prior_optimum(budget: float) -> float:
    """N* with D = 20 N and C = 6 N D: sqrt(C / 120)."""
    return math.sqrt(budget / (6 * PRIOR_TOKENS_PER_PARAM))


def check_isoflop(plan: list[dict], where: str, params_key: str) -> None:
    """Raise one ScaleDAGError naming the first rule the sweep's plan (isoflop_plan) breaks."""
    budgets = sorted({p["budget"] for p in plan})
    if len(budgets) < MIN_BUDGETS or budgets[-1] / budgets[0] < MIN_BUDGET_SPAN:
        raise ScaleDAGError(
            f"{where}.budgets: {len(budgets)} budgets spanning {budgets[-1] / budgets[0]:.3g}x cannot measure the "
            f"exponent; an evidence scale needs >= {MIN_BUDGETS} spanning >= {MIN_BUDGET_SPAN:g}x"
        )
    for budget in budgets:
        runs = [p for p in plan if p["budget"] == budget]
        sizes = sorted(p[params_key] for p in runs)
        if len(sizes) < MIN_SIZES or sizes[-1] / sizes[0] < MIN_SIZE_SPAN:
            raise ScaleDAGError(
                f"{where}.sizes: {len(sizes)} sizes spanning {sizes[-1] / sizes[0]:.3g}x in N at budget {budget:.3g} "
                f"cannot locate a minimum; an evidence scale needs >= {MIN_SIZES} spanning >= {MIN_SIZE_SPAN:g}x"
            )
        star = prior_optimum(budget)
        if not sizes[1] <= star <= sizes[-2]:
            raise ScaleDAGError(
                f"{where}.sizes: IsoFLOP sizes do not bracket the predicted optimum at budget {budget:.3g} "
                f"(N* = {star:.3g} at {PRIOR_TOKENS_PER_PARAM:g} tokens/parameter; sizes {sizes[0]:.3g}..{sizes[-1]:.3g}, "
                "needs one size beyond it on each side)"
            )
        for p in runs:
            share = p["vocab_size"] * p["shape"]["hidden"] / p[params_key]
            if share > MAX_EMBEDDING_SHARE:
                raise ScaleDAGError(
                    f"{where}: run {p['run']}'s embeddings are {share:.0%} of its N; N would measure the vocabulary "
                    f"(<= {MAX_EMBEDDING_SHARE:.0%} needed: a smaller vocabulary, tied embeddings or larger sizes)"
                )


def check_proxy(candidates: list[dict], settings: dict, where: str) -> None:
    """Raise one ScaleDAGError naming the first rule a proxy study's design breaks."""
    if len(candidates) < MIN_CANDIDATES:
        raise ScaleDAGError(
            f"{where}: {len(candidates)} candidate shapes cannot measure a ranking; an evidence scale needs "
            f">= {MIN_CANDIDATES} (raise max_candidates, widen tolerance, head_dims or max_hidden)"
        )
    if settings["fraction"] > MAX_PROXY_FRACTION:
        raise ScaleDAGError(
            f"{where}.fraction: proxies of {settings['fraction']:.0%} of a full run save too little; "
            f"an evidence scale needs <= {MAX_PROXY_FRACTION:.0%}"
        )
    full = settings["full"]  # filled by the schema: all, or {top, bottom}
    n_full = len(candidates) if full == "all" else min(len(candidates), int(full["top"]) + int(full["bottom"]))
    if n_full < MIN_FULL_RUNS:
        raise ScaleDAGError(
            f"{where}.full: {n_full} full runs cannot test the proxy ranking; an evidence scale needs >= {MIN_FULL_RUNS}"
        )
