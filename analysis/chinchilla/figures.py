"""The Chinchilla study's figures: IsoFLOP curves (paper Fig. 3) and the parametric fit's
contours with its efficient frontier (Fig. 4), from the tables `analysis.chinchilla.approaches fit` writes.

    python -m analysis.chinchilla.figures isoflop --points CSV --minima CSV --fit JSON --png P --pdf P
    python -m analysis.chinchilla.figures contour --points CSV --fit JSON --png P --pdf P
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.chinchilla.fit import ParametricFit, frontier
from workflow.errors import ScaleDAGError, main_guard
from workflow.io import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _parametric(summary: dict) -> ParametricFit | None:
    return ParametricFit.from_law(summary.get("approach3"))


def plot_isoflop(points: pd.DataFrame, minima: pd.DataFrame, summary: dict, png: str, pdf: str) -> None:
    """Left: final loss against N per budget, the fitted parabola in log N and its vertex (hollow
    when extrapolated outside the sampled sizes; "edge" under a lowest loss at the smallest or
    largest sampled size). Right: the minima's N_opt against C with
    approach 2's power law and approach 3's frontier."""
    plt = _plt()
    budgets = sorted(points["budget"].unique())
    colors = plt.cm.viridis(np.linspace(0.1, 0.9, len(budgets)))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    by_budget = minima.set_index("budget") if len(minima) else None
    for color, c in zip(colors, budgets):
        g = points[points["budget"] == c].sort_values("params")
        ax.plot(g["params"], g["loss"], "o", color=color, label=f"C = {c:.2g}")
        if by_budget is not None and c in by_budget.index and np.isfinite(by_budget.loc[c, "p2"]):
            m = by_budget.loc[c]
            x = np.linspace(np.log(g["params"].min()) - 0.3, np.log(g["params"].max()) + 0.3, 100)
            ax.plot(np.exp(x), m["p2"] * x * x + m["p1"] * x + m["p0"], "-", color=color, lw=1)
            if m["ok"]:
                ax.plot(m["N_opt"], m["loss_opt"], "D", ms=7, color=color, mfc=color if m["inside"] else "none")
            edge = m.get("edge") if isinstance(m.get("edge"), str) else ""
            if edge:  # the lowest loss sits at the window's edge: the optimum may lie beyond it
                at = g.iloc[0] if edge == "smallest" else g.iloc[-1]
                ax.annotate(
                    "edge",
                    (at["params"], at["loss"]),
                    xytext=(0, -12),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color=color,
                )
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final validation loss (nats)")
    ax.set_title("IsoFLOP profiles (approach 2)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    ok = minima[minima["ok"].astype(bool)] if len(minima) else minima
    c_line = np.geomspace(min(budgets) / 3, max(budgets) * 10, 50)
    if len(ok):
        ax2.plot(ok["budget"], ok["N_opt"], "D", color="C1", label="approach 2 minima")
    a2 = summary.get("approach2")
    if a2:
        ax2.plot(c_line, a2["N_coef"] * c_line ** a2["a"], "--", color="C1", label=f"approach 2: a = {a2['a']:.2f}")
    a1 = summary.get("approach1")
    if a1:
        ax2.plot(c_line, a1["N_coef"] * c_line ** a1["a"], ":", color="C2", label=f"approach 1: a = {a1['a']:.2f}")
    fit = _parametric(summary)
    if fit is not None:
        ax2.plot(c_line, frontier(fit, c_line)[0], "-", color="C0", label=f"approach 3: a = {fit.a:.2f}")
    for _, row in points.iterrows():
        ax2.plot(row["budget"], row["params"], ".", color="0.6", ms=4)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("training FLOPs C")
    ax2.set_ylabel("compute-optimal N")
    ax2.set_title("N_opt against compute (grey: sampled sizes)", fontsize=10)
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png, pdf)
    plt.close(fig)


def plot_contour(points: pd.DataFrame, summary: dict, png: str, pdf: str) -> None:
    """Predicted loss L(N, D = C / 6N) over (C, N) with the efficient frontier, the sweep's runs
    and the target budget's predicted optimum."""
    plt = _plt()
    fit = _parametric(summary)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    c_pts = 6.0 * points["params"] * points["tokens"]
    target = float(summary["target_budget"])
    c_lo, c_hi = min(c_pts.min(), target) / 3, max(c_pts.max(), target) * 3
    n_lo, n_hi = points["params"].min() / 10, points["params"].max() * 10
    if fit is not None:
        n_t, _ = frontier(fit, target)
        n_lo, n_hi = min(n_lo, n_t / 10), max(n_hi, n_t * 10)
        C, N = np.meshgrid(np.geomspace(c_lo, c_hi, 200), np.geomspace(n_lo, n_hi, 200))
        L = fit.predict(N, C / (6 * N))
        levels = np.unique(np.quantile(L, np.linspace(0.0, 0.9, 14)))  # the top 10% (tiny C, huge N) folded in
        cs = ax.contourf(C, N, L, levels=levels, cmap="viridis_r", alpha=0.75, extend="max")
        fig.colorbar(cs, ax=ax, label="predicted loss")
        c_line = np.geomspace(c_lo, c_hi, 100)
        ax.plot(c_line, frontier(fit, c_line)[0], "-", color="C3", lw=2, label=f"efficient frontier (a = {fit.a:.2f})")
        ax.plot(target, n_t, "*", color="C3", ms=14, mec="k", label=f"target C = {target:.2g}: N = {n_t:.3g}")
        ax.set_title(f"L = {fit.E:.2f} + {fit.A:.3g}/N^{fit.alpha:.2f} + {fit.B:.3g}/D^{fit.beta:.2f}", fontsize=10)
    else:
        ax.set_title("parametric fit failed: " + summary.get("notes", {}).get("approach3", "")[:60], fontsize=9)
    ax.scatter(c_pts, points["params"], c="w", edgecolors="k", s=25, zorder=3, label="sweep runs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C = 6ND")
    ax.set_ylabel("parameters N")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_figure(fig, png, pdf)
    plt.close(fig)


def _read(path: str, kind: str):
    try:
        return json.loads(Path(path).read_text()) if kind == "json" else pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ScaleDAGError(f"{path}: cannot read ({' '.join(str(exc).split())})") from None


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.chinchilla.figures", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("isoflop", "contour"):
        p = sub.add_parser(name)
        p.add_argument("--points", required=True)
        p.add_argument("--fit", required=True, help="scaling_fit.json")
        if name == "isoflop":
            p.add_argument("--minima", required=True)
        p.add_argument("--png", required=True)
        p.add_argument("--pdf", required=True)
    args = parser.parse_args(argv)
    points, summary = _read(args.points, "csv"), _read(args.fit, "json")
    if args.command == "isoflop":
        plot_isoflop(points, _read(args.minima, "csv"), summary, args.png, args.pdf)
    else:
        plot_contour(points, summary, args.png, args.pdf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
