"""Wall time of the efficiency studies' share of the tiny DAG (goal: <= 3 min on 2 cores).

In a fresh temporary directory, builds the tiny corpus first (untimed: other stages own it), then
times `snakemake --cores 2` on the efficiency and arch_proxy targets and reads each job's
`benchmark:` TSV. Records the load average too: on a shared machine the wall time is only as good
as the cores it got. Writes benchmarks/results/efficiency_tiny_share.json. A measurement, not a test.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        WANDB_MODE="offline",
        TOKENIZERS_PARALLELISM="false",
    )
    data = [f"results/tiny/data/synthetic/tokens/{s}.{e}" for s in ("train", "valid") for e in ("bin", "idx")]
    mine = ["results/tiny/efficiency/tables/block.csv", "results/tiny/arch_proxy/tables/proxy.csv"]
    with tempfile.TemporaryDirectory(prefix="scaledag-eff-") as work:
        base = [
            str(bin_dir / "snakemake"),
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            work,
            "--configfile",
            str(REPO / "config.yaml"),
            "--cores",
            "2",
            "--quiet",
            "all",
            "--",
        ]
        subprocess.run(base + data, check=True, env=env, cwd=work)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        subprocess.run(base + mine, check=True, env=env, cwd=work)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        jobs = {}
        for tsv in Path(work, "results", "tiny", "benchmarks").rglob("*.tsv"):
            rel = tsv.relative_to(Path(work, "results", "tiny", "benchmarks"))
            if rel.parts[0] in ("prepare_corpus", "train_tokenizer", "tokenize_shard", "tokenize_corpus"):
                continue
            with open(tsv) as fh:
                row = next(csv.DictReader(fh, delimiter="\t"))
            jobs[str(rel.with_suffix(""))] = round(float(row["s"]), 2)
        report = json.loads(Path(work, "results/tiny/arch_proxy/proxy/report.json").read_text())
    result = {
        "what": "efficiency + arch_proxy targets of the tiny DAG, snakemake --cores 2, corpus prebuilt",
        "wall_seconds": round(wall, 1),
        "goal_seconds": 180,
        "jobs": len(jobs),
        "sum_job_seconds": round(sum(jobs.values()), 1),
        "per_job_seconds": dict(sorted(jobs.items())),
        "load_average_before_after": [round(load0[0], 2), round(load1[0], 2)],
        "cores": os.cpu_count(),
        "proxy": {
            k: report[k]
            for k in (
                "spearman",
                "n_full",
                "proxy_flops_fraction",
                "proxy_seconds_fraction",
                "best_predicted",
                "best_actual",
            )
        },
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = REPO / "benchmarks" / "results" / "efficiency_tiny_share.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("wall_seconds", "jobs", "sum_job_seconds", "load_average_before_after")}))


if __name__ == "__main__":
    main()
