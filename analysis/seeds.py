"""Seed statistics of a `runs` study: each variant's mean and 95% interval over its seeds, and its
difference from another variant with an interval, from the per-run table a study writes.

A study with `seeds.<scale>` trains every variant x size under each seed (init and data order); its
per-run table (analysis/bloom_ablations.py, analysis/matgpt.py) has one row per run with `variant`,
`size`, `seed` and the metrics. Two noises stand between a run's number and the variant's truth:

  seed noise      another init and data order moves the loss; measured by the spread over seeds,
                  a Student-t interval (n - 1 degrees of freedom) on the mean
  item noise      the evaluation items or documents are a sample. Zero-shot: the binomial SE of one
                  run's average (workflow.evaluate.downstream.average_se); the same items for every
                  seed, so it does not shrink with seeds and is added in quadrature. Held-out loss:
                  hundreds of thousands of tokens, far below the seed noise, left out

A difference of two variants is Welch's interval (unequal variances, Welch-Satterthwaite degrees of
freedom) on the seed means, widened in quadrature by both variants' item noise for zero-shot (the
items are shared, so this is conservative). With one seed a side there is no seed interval: the
interval then holds item noise only and `seeds` says 1, which the evidence report refuses to read
as a verdict.

e.g. `python -m analysis.seeds --table downstream.csv --baseline rotary --out variants.csv`.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
from scipy import stats

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import write_csv

LEVEL = 0.95
Z = stats.norm.ppf(0.5 + LEVEL / 2)  # 1.96
# metric -> the column holding one run's item standard error (None: item noise left out, see above)
METRICS = {
    "valid_loss": None,
    "valid_bpb": None,
    "bpb_en": None,
    "zeroshot_avg": "zeroshot_avg_se",
    "bandgap_mae": None,  # Matbench's fold spread is in tables/bandgap.csv (mae_std)
}


def t_interval(values) -> tuple[float, float, float]:
    """Mean and its 95% Student-t interval over seeds; (mean, nan, nan) for one value."""
    x = np.asarray([v for v in values if finite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + LEVEL / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def welch_interval(a, b) -> tuple[float, float, float]:
    """mean(a) - mean(b) and Welch's 95% interval; (difference, nan, nan) with fewer than 2 a side.

    e.g. a = [1.00, 1.02, 1.04], b = [1.10, 1.12, 1.14]: difference -0.10, each variance 4e-4/3,
    SE 0.0163, Welch df 4, t 2.776: [-0.145, -0.055]."""
    a = np.asarray([v for v in a if finite(v)], dtype=float)
    b = np.asarray([v for v in b if finite(v)], dtype=float)
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return d, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + LEVEL / 2, df) * se
    return d, d - half, d + half


def finite(*xs) -> bool:
    """Every value a real, finite number (None, NaN, inf and strings are not)."""
    return all(x is not None and isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(x) for x in xs)


def _column(rows: pd.DataFrame, col: str | None) -> list[float]:
    if col is None or col not in rows.columns:
        return []
    return [float(v) for v in rows[col] if finite(v)]


def variant_stats(rows: pd.DataFrame, metric: str) -> dict:
    """n, mean and 95% interval of `metric` over a variant's seed rows (item noise added for zero-shot)."""
    values = _column(rows, metric)
    mean, lo, hi = t_interval(values)
    item = _column(rows, METRICS.get(metric))
    if item and finite(mean):  # the shared items' noise: it does not average out over seeds
        seed_half = (hi - mean) if finite(hi) else 0.0
        half = math.hypot(seed_half, Z * float(np.mean(item)))
        lo, hi = mean - half, mean + half
    return {"n": len(values), "mean": mean, "lo": lo, "hi": hi}


def difference(rows: pd.DataFrame, other: pd.DataFrame, metric: str) -> dict:
    """rows' mean minus other's, its 95% interval and what the interval covers."""
    a, b = _column(rows, metric), _column(other, metric)
    d, lo, hi = welch_interval(a, b)
    n = min(len(a), len(b))
    covers = "seeds (Welch)" if n >= 2 else "none (one seed a side)"
    item_a, item_b = _column(rows, METRICS.get(metric)), _column(other, METRICS.get(metric))
    if item_a and item_b and finite(d):
        item_half = Z * math.hypot(float(np.mean(item_a)), float(np.mean(item_b)))
        seed_half = (hi - d) if finite(hi) else 0.0
        half = math.hypot(seed_half, item_half)
        lo, hi = d - half, d + half
        covers = "seeds (Welch) + items" if n >= 2 else "items only (one seed a side)"
    return {"n": n, "diff": d, "lo": lo, "hi": hi, "covers": covers}


def baseline_variant(table: pd.DataFrame, baseline: str | None) -> str:
    """The variant every other is compared with: the one named, else the table's `baseline` axis."""
    runs = table[table["variant"].notna()]
    if baseline:
        if baseline not in set(runs["variant"]):
            raise ScaleDAGError(
                f"--baseline: variant {baseline!r} is not in the table ({sorted(set(runs['variant']))})"
            )
        return baseline
    if "axis" in runs.columns and (runs["axis"] == "baseline").any():
        return str(runs.loc[runs["axis"] == "baseline", "variant"].iloc[0])
    return str(runs["variant"].iloc[0])


def variant_table(table: pd.DataFrame, baseline: str | None = None, comparable: dict | None = None) -> pd.DataFrame:
    """One row per variant x size: seeds, each metric's mean [lo, hi], and its difference from the
    baseline at that size [lo, hi]. `comparable[variant]` lists metrics whose difference is
    meaningless for that variant (its held-out text is another corpus's) and left empty."""
    runs = table[table["variant"].notna()]
    base = baseline_variant(table, baseline)
    metrics = [m for m in METRICS if m in runs.columns and runs[m].notna().any()]
    out = []
    for (size, variant), rows in runs.groupby(["size", "variant"], sort=False):
        row = {"variant": variant, "size": size, "seeds": len(rows)}
        if "axis" in rows.columns:
            row["axis"] = rows["axis"].iloc[0]
        base_rows = runs[(runs["size"] == size) & (runs["variant"] == base)]
        for m in metrics:
            s = variant_stats(rows, m)
            row.update({m: s["mean"], f"{m}_lo": s["lo"], f"{m}_hi": s["hi"]})
            if variant != base and m not in (comparable or {}).get(variant, ()):
                d = difference(rows, base_rows, m)
                row.update({f"delta_{m}": d["diff"], f"delta_{m}_lo": d["lo"], f"delta_{m}_hi": d["hi"]})
        row["baseline"] = base
        out.append(row)
    return pd.DataFrame(out)


@main_guard
def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description="each variant's mean and 95% interval over seeds, and its difference from the baseline"
    )
    p.add_argument("--table", required=True, help="a study's per-run table (variant, size, seed, metrics)")
    p.add_argument("--baseline", help="the variant compared against (default: the `baseline` axis, else the first)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    df = variant_table(pd.read_csv(args.table), args.baseline)
    write_csv(df, args.out, float_format="%.5f")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
