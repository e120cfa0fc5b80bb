"""Study figures and tables from run outputs: loss-vs-tokens curves (PNG + PDF) and a CSV table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from workflow.config import seed_group
from workflow.errors import ScaleDAGError, main_guard
from workflow.io import save_figure, write_csv
from workflow.train.metrics import read_metrics


def _run_name(path: str) -> str:
    return Path(path).parent.name


def loss_table(metrics: list[str], summaries: list[str], evals: list[str]) -> pd.DataFrame:
    """One row per run: architecture, size, parameters, tokens, final train/valid loss, throughput."""
    rows = []
    by_run = {_run_name(p): p for p in evals}
    for summary_path in summaries:
        s = json.loads(Path(summary_path).read_text())
        run = _run_name(summary_path)
        if run not in by_run:
            raise ScaleDAGError(f"{summary_path}: no eval_loss.json given for run {run!r}")
        ev = json.loads(Path(by_run[run]).read_text())
        rows.append(
            {
                "run": run,
                "arch": s["arch"],
                "shape": f"{s['model']['layers']}x{s['model']['hidden']}x{s['model']['heads']}",
                "parameters": s["parameters"],
                "tokens": s["tokens"],
                "final_train_loss": round(s["final_train_loss"], 4),
                "valid_loss": round(ev["loss"], 4),
                "valid_perplexity": round(ev["perplexity"], 3),
                "train_tokens_per_s": round(s["train_tokens_per_s"] or float("nan"), 1),
                "device": s["device"],
            }
        )
    return pd.DataFrame(rows).sort_values("run").reset_index(drop=True)


def plot_loss_curves(metrics: list[str], title: str, png: str, pdf: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {}  # one colour per variant x size: its seeds share it and one legend entry
    for path in sorted(metrics):
        rows = read_metrics(path)
        train = [(r["tokens"], r["loss"]) for r in rows if r["kind"] == "train"]
        valid = [(r["tokens"], r["loss"]) for r in rows if r["kind"] == "valid"]
        if not train:
            raise ScaleDAGError(f"{path}: no training rows")
        group = seed_group(_run_name(path))
        first = group not in colors
        color = colors.setdefault(group, f"C{len(colors) % 10}")
        n = sum(seed_group(_run_name(p)) == group for p in metrics)
        label = f"{group} ({n} seeds)" if n > 1 else group
        ax.plot(*zip(*train), color=color, lw=1.0, alpha=0.8, label=f"{label} (train)" if first else None)
        if valid:
            ax.plot(*zip(*valid), "o--", color=color, ms=3, lw=0.6, label=f"{label} (valid)" if first else None)
    ax.set_xlabel("tokens")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, png, pdf)
    plt.close(fig)


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lc = sub.add_parser("loss-curves")
    lc.add_argument("--title", default="")
    lc.add_argument("--metrics", nargs="+", required=True)
    lc.add_argument("--summaries", nargs="+", required=True)
    lc.add_argument("--evals", nargs="+", required=True)
    lc.add_argument("--png", required=True)
    lc.add_argument("--pdf", required=True)
    lc.add_argument("--table", required=True)
    args = parser.parse_args(argv)
    table = loss_table(args.metrics, args.summaries, args.evals)
    write_csv(table, args.table)
    plot_loss_curves(args.metrics, args.title, args.png, args.pdf)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
