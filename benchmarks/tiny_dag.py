"""Wall time of the whole tiny DAG (what `make run` does after setup) and per-rule times.

Runs `snakemake --cores 2` in a fresh temporary directory, then reads each rule's `benchmark:`
TSV. Writes benchmarks/results/tiny_dag.json. A measurement, not a test: nothing asserts on it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from workflow.telemetry.job_times import rule_jobs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "tiny_dag.json"))
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with tempfile.TemporaryDirectory(prefix="scaledag-bench-") as work:
        t0 = time.perf_counter()
        subprocess.run(
            [
                str(bin_dir / "snakemake"),
                "-s",
                str(REPO / "Snakefile"),
                "-d",
                work,
                "--configfile",
                str(REPO / "config.yaml"),
                "--cores",
                str(args.cores),
                "--quiet",
            ],
            check=True,
            env=env,
            cwd=work,
        )
        wall = time.perf_counter() - t0
        per_rule = rule_jobs(Path(work, "results", "tiny", "benchmarks"))
    result = {
        "what": f"whole tiny DAG, snakemake --cores {args.cores}, fresh directory",
        "wall_seconds": round(wall, 1),
        "goal_seconds": 900,
        "per_rule": per_rule,
        "machine": {
            "cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {"wall_seconds": result["wall_seconds"], **{k: [j["seconds"] for j in v] for k, v in per_rule.items()}}
        )
    )


if __name__ == "__main__":
    main()
