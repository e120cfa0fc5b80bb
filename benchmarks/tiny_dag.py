"""Wall time of the whole tiny DAG (what `make run` does after setup), and each job's fixed cost.

Runs `snakemake --cores 2` in a fresh temporary directory once per mode, the reference first:
`cold` (warm_worker=false: every job is its plain `python -m ...` process) and `warm` (the default:
jobs fork from workflow.warm's pre-imported server). Each job appends its main()'s duration to a
timings file (SCALEDAG_TIMINGS, workflow.errors.main_guard); workflow.telemetry.job_times.fixed_costs
pairs it with the job's `benchmark:` TSV, so per rule: job seconds = main() + fixed cost (start-up,
module-level imports, teardown). Writes benchmarks/results/tiny_dag.json (wall times, per-rule job
times) and benchmarks/results/fixed_cost.json (the split). A measurement, not a test."""

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
from workflow.errors import TIMINGS_ENV  # noqa: E402
from workflow.telemetry.job_times import fixed_costs, rule_jobs  # noqa: E402

RULES_WITH_GOAL = ("pretrain", "evaluate_loss", "evaluate_zeroshot", "embed_bandgap", "export_hf", "benchmark_train")


def run_dag(mode: str, cores: int) -> dict:
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix=f"scaledag-bench-{mode}-") as work:
        env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        env[TIMINGS_ENV] = str(Path(work, "timings.jsonl"))
        command = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", work]
        command += ["--configfile", str(REPO / "config.yaml"), "--cores", str(cores), "--quiet"]
        command += ["--config", f"warm_worker={mode == 'warm'}"]
        print(f"[{mode}] {' '.join(command[1:])}", flush=True)
        t0 = time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=work)
        wall = time.perf_counter() - t0
        results = Path(work, "results", "tiny")
        split = fixed_costs(results / "benchmarks", Path(work, "logs", "tiny"), env[TIMINGS_ENV], results)
        per_rule = rule_jobs(results / "benchmarks")
    print(f"[{mode}] {wall:.0f} s", flush=True)
    return {"wall_seconds": round(wall, 1), "per_rule": per_rule, "split": split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=["cold", "warm"], default=["cold", "warm"])
    parser.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args()
    runs = {mode: run_dag(mode, args.cores) for mode in args.modes}
    machine = {
        "cores": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    date = time.strftime("%Y-%m-%d")
    walls = {mode: r["wall_seconds"] for mode, r in runs.items()}
    dag = {
        "what": f"whole tiny DAG, snakemake --cores {args.cores}, fresh directory per mode, run one after the other",
        "wall_seconds": walls,
        "goal_seconds": 480,
        "speedup_warm_over_cold": round(walls["cold"] / walls["warm"], 2) if len(walls) == 2 else None,
        "per_rule": {mode: r["per_rule"] for mode, r in runs.items()},
        "machine": machine,
        "date": date,
    }
    fixed = {
        "what": (
            "per rule, median job seconds (benchmark TSV) = median main() seconds (the job's own timing) + "
            "median fixed seconds (start-up, module-level imports, teardown), per mode; goal: fixed <= 3 s median. "
            "Work an entry point does lazily inside main() (e.g. an import there) counts as work, so the cold "
            "reference's fixed cost is a lower bound. pretrain also reports the issue's first measure, the time "
            "outside the training loop (set-up, W&B, final validation, checkpoint)."
        ),
        "goal_fixed_seconds": 3.0,
        "rules_with_goal": list(RULES_WITH_GOAL),
        "per_rule": {
            rule: {mode: {k: v for k, v in r["split"][rule].items() if k != "job_rows"} for mode, r in runs.items()}
            for rule in sorted({rule for r in runs.values() for rule in r["split"]})
            if all(rule in r["split"] for r in runs.values())
        },
        "machine": machine,
        "date": date,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tiny_dag.json").write_text(json.dumps(dag, indent=2) + "\n")
    (out / "fixed_cost.json").write_text(json.dumps(fixed, indent=2) + "\n")
    print(json.dumps({"wall_seconds": walls}))
    for rule in RULES_WITH_GOAL:
        row = fixed["per_rule"].get(rule, {})
        print(rule, {mode: (v["median_seconds"], v["median_fixed_seconds"]) for mode, v in row.items()})


if __name__ == "__main__":
    main()
