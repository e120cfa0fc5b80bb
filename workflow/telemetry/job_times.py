"""Per-rule job times from Snakemake's `benchmark:` TSVs: what a slow or timed-out DAG run reports,
and what the DAG benchmarks summarise."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):  # Snakemake writes "NA" or "-" for what it could not measure
        return None


def rule_jobs(bench_root: str | Path) -> dict[str, list[dict]]:
    """{rule: [{job, seconds, max_rss_mb}]} for every job that finished (its TSV is written at the end)."""
    bench_root = Path(bench_root)
    per_rule: dict[str, list[dict]] = defaultdict(list)
    for tsv in sorted(bench_root.rglob("*.tsv")):
        rule = tsv.relative_to(bench_root).parts[0]
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"), None)
        if row is None:
            continue
        per_rule[rule].append(
            {
                "job": str(tsv.relative_to(bench_root / rule).with_suffix("")),
                "seconds": _number(row.get("s")),
                "max_rss_mb": _number(row.get("max_rss")),
            }
        )
    return dict(per_rule)


def stage_table(bench_root: str | Path) -> str:
    """A few lines a person reads: jobs finished and job seconds per rule, slowest rule first."""
    per_rule = rule_jobs(bench_root)
    rows = sorted(
        ((sum(j["seconds"] or 0 for j in jobs), rule, len(jobs)) for rule, jobs in per_rule.items()), reverse=True
    )
    lines = [f"{'rule':<24}{'jobs':>6}{'job s':>10}{'mean s':>9}"]
    lines += [f"{rule:<24}{n:>6}{total:>10.1f}{total / n:>9.1f}" for total, rule, n in rows]
    lines.append(f"{'total':<24}{sum(r[2] for r in rows):>6}{sum(r[0] for r in rows):>10.1f}")
    return "\n".join(lines)
