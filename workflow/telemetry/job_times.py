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


def _median(values: list[float | None]) -> float | None:
    """statistics.median of the measured values (None: not measured); None when there are none."""
    import statistics

    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def fixed_costs(bench_root: str | Path, logs_root: str | Path, timings: str | Path, results_root: str | Path) -> dict:
    """Per rule, each job's wall time split into its main() (the work) and the rest (interpreter
    start, module-level imports, teardown): the `benchmark:` TSV's `s` minus the main_seconds the job
    appended to `timings` (workflow.errors.main_guard under SCALEDAG_TIMINGS), paired through the
    job's log path (<logs_root>/<rule>/<job>.log <-> <bench_root>/<rule>/<job>.tsv).

    Pretrain jobs also get the issue's first measure, the job's time outside its training loop
    (tokens / train_tokens_per_s of <results_root>/<study>/runs/<run>/summary.json): that counts
    model set-up, W&B, the final validation and the checkpoint as overhead too."""
    import json

    logs_root = Path(logs_root).resolve()
    main_seconds: dict[tuple[str, str], float] = {}
    if Path(timings).exists():
        for line in Path(timings).read_text().splitlines():
            rec = json.loads(line)
            try:
                rel = Path(rec["log"]).resolve().relative_to(logs_root)
            except (TypeError, ValueError):
                continue  # stderr was not a rule's log
            main_seconds[(rel.parts[0], str(Path(*rel.parts[1:]).with_suffix("")))] = rec["main_seconds"]
    out = {}
    for rule, jobs in sorted(rule_jobs(bench_root).items()):
        rows = []
        for job in jobs:
            work = main_seconds.get((rule, job["job"]))
            row = {"job": job["job"], "seconds": job["seconds"], "main_seconds": work}
            row["fixed_seconds"] = round(job["seconds"] - work, 3) if work is not None and job["seconds"] else None
            if rule == "pretrain":
                summary = Path(
                    results_root, *Path(job["job"]).parts[:-1], "runs", Path(job["job"]).name, "summary.json"
                )
                if summary.exists():
                    s = json.loads(summary.read_text())
                    if s.get("train_tokens_per_s"):
                        row["outside_loop_seconds"] = round(job["seconds"] - s["tokens"] / s["train_tokens_per_s"], 3)
            rows.append(row)
        out[rule] = {
            "jobs": len(rows),
            "timed_jobs": sum(r["fixed_seconds"] is not None for r in rows),
            "median_seconds": _median([r["seconds"] for r in rows]),
            "median_main_seconds": _median([r["main_seconds"] for r in rows]),
            "median_fixed_seconds": _median([r["fixed_seconds"] for r in rows]),
            **(
                {"median_outside_loop_seconds": _median([r.get("outside_loop_seconds") for r in rows])}
                if rule == "pretrain"
                else {}
            ),
            "job_rows": rows,
        }
    return out
