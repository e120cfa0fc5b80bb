"""Architecture design by proxy (MatGPT, arXiv 2402.00691): rank candidate shapes by short runs, check
the ranking against full runs. The runs themselves come from workflow/studies/proxy.py. Subcommands:

  rank     rank candidate shapes from their proxy runs -> ranking.json
  report   Spearman(proxy ranking, full-run losses), proxy cost fraction, table and figure

e.g. `python -m analysis.arch_proxy rank --settings '{...}' --metrics a.jsonl --summaries a.json --out r.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from workflow.errors import json_option, main_guard
from workflow.io import atomic_write_json, save_figure, write_csv
from workflow.studies import proxy


def proxy_figure(report: dict, png: str, pdf: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    x = [r["predicted_loss"] for r in rows]
    y = [r["actual_loss"] for r in rows]
    sizes = [20 + 60 * (r["tokens_per_s"] or 0) / max(1e-9, max((q["tokens_per_s"] or 0) for q in rows)) for r in rows]
    ax.scatter(x, y, s=sizes, alpha=0.7)
    for i, r in enumerate(sorted(rows, key=lambda q: (q["predicted_loss"], q["actual_loss"]))):
        ax.annotate(
            f"{r['shape']} (#{r['predicted_rank']})",
            (r["predicted_loss"], r["actual_loss"]),
            fontsize=7,
            xytext=(4, 4 - 12 * (i % 2)),
            textcoords="offset points",
        )  # alternate: neighbours overlap
    rho = report["spearman"]
    ax.set_xlabel("proxy validation loss (predicted, equal compute)")
    ax.set_ylabel("full-run validation loss (actual)")
    ax.set_title(
        f"Architecture by proxy: Spearman rho = {'n/a' if rho is None else f'{rho:.2f}'}, "
        f"proxy cost {report['proxy_flops_fraction']:.0%} of full FLOPs\n(marker size: throughput)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    for path in (png, pdf):
        save_figure(fig, path)
    plt.close(fig)


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rank")
    r.add_argument("--settings", required=True, help="JSON of workflow.studies.proxy.proxy_settings")
    r.add_argument("--metrics", nargs="+", required=True)
    r.add_argument("--summaries", nargs="+", required=True)
    r.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--ranking", required=True)
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--summaries", nargs="+", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)
    args = parser.parse_args(argv)

    if args.command == "rank":
        ranking = proxy.rank_candidates(args.metrics, args.summaries, json_option("--settings", args.settings))
        atomic_write_json(args.out, ranking)
        for row in ranking["candidates"]:
            print(
                f"#{row['predicted_rank']} {row['shape']}: proxy loss {row['predicted_loss']:.4f}, "
                f"{row['tokens_per_s'] or float('nan'):,.0f} tok/s"
            )
        print("full runs:", ", ".join(ranking["full"]))
    else:
        ranking = json.loads(Path(args.ranking).read_text())
        report = proxy.proxy_report(ranking, args.metrics, args.summaries)
        atomic_write_json(args.report, report)
        write_csv(pd.DataFrame(report["rows"]), args.table)
        proxy_figure(report, args.png, args.pdf)
        print(
            f"spearman {report['spearman']}, proxy FLOPs fraction {report['proxy_flops_fraction']:.3f}, "
            f"proxy seconds fraction {report['proxy_seconds_fraction']}"
        )


if __name__ == "__main__":
    main()
