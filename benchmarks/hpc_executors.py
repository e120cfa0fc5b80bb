"""Wall time of the HPC test subset (data stages + two tiny pretrain runs) under the local, slurm and
parsl executors, side by side in one invocation, and of `snakemake -n` on the paper-scale DAG with
the Frontier profile (goal <= 5 s). Needs root for the one-node Slurm cluster (tests/slurm/start.sh).

    .venv/bin/python benchmarks/hpc_executors.py [--repeats-dry-run 3]   -> benchmarks/results/hpc_executors.json
"""

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SUBSET = REPO / "tests" / "slurm" / "subset.yaml"
TARGETS = [f"results/tiny/matgpt/runs/{run}/summary.json" for run in ("gpt-neox_tiny-1m", "llama_tiny-1m")]

EXECUTORS = {
    "local": ["--cores", "2", "--max-threads", "1"],
    "slurm": [
        "--profile",
        str(REPO / "profiles/slurm"),
        *(REPO / "tests" / "slurm" / "status_args").read_text().split(),  # squeue, 2-s checks: the test cluster
        "--jobs",
        "4",
        "--default-resources",
        "mem_mb=500",
        "runtime=30",
        "nodes=1",
    ],
    "parsl": [
        "--executor",
        "parsl",
        "--parsl-config",
        str(REPO / "profiles/parsl/slurm.py"),
        "--jobs",
        "4",
        "--max-threads",
        "1",
        "--parsl-max-idletime",
        "5",
    ],
}


def timed(cmd, env, cwd, timeout=1200, cpu=False):
    """Wall seconds (and, with cpu=True, the child's user+sys CPU seconds: robust to a loaded machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:6]))} failed:\n{proc.stderr[-3000:]}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (elapsed, used) if cpu else elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats-dry-run", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/hpc_executors.json")
    ap.add_argument("--dry-run-only", action="store_true", help="only time the paper dry run (keeps the subset times)")
    args = ap.parse_args()

    start = subprocess.run(["bash", str(REPO / "tests/slurm/start.sh")], capture_output=True, text=True, timeout=600)
    if start.returncode != 0:
        raise SystemExit(f"tests/slurm/start.sh failed (needs root):\n{start.stderr}")
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        WANDB_MODE="offline",
        TOKENIZERS_PARALLELISM="false",
        SCALEDAG_PARSL_CORES="1",
        SCALEDAG_PARSL_MAX_BLOCKS="2",
        SCALEDAG_PARSL_MEM_GB="1",
        SLURM_CONF=re.search(r"SLURM_CONF=(\S+)", start.stdout).group(1),
    )
    env.pop("SBATCH_ACCOUNT", None)

    previous = json.loads(args.out.read_text()) if args.dry_run_only and args.out.exists() else {}
    subset = previous.get("subset_wall_s", {})
    for name, extra in ({} if args.dry_run_only else EXECUTORS).items():
        with tempfile.TemporaryDirectory(prefix=f"hpc-bench-{name}-") as work:
            cmd = [
                str(BIN / "snakemake"),
                *TARGETS,
                "-s",
                str(REPO / "Snakefile"),
                "-d",
                work,
                "--configfile",
                str(REPO / "config.yaml"),
                str(SUBSET),
                *extra,
            ]
            subset[name] = round(timed(cmd, env, work), 2)
            print(f"subset via {name}: {subset[name]} s", flush=True)

    runs = [
        timed(
            [str(BIN / "snakemake"), "-n", "--profile", "profiles/frontier", "--config", "scale=paper"],
            env,
            REPO,
            cpu=True,
        )
        for _ in range(args.repeats_dry_run)
    ]
    dry, dry_cpu = [r[0] for r in runs], [r[1] for r in runs]
    result = {
        "what": "tiny subset (prepare_corpus, train_tokenizer, tokenize, 2 pretrain of 12 steps) per executor, "
        "same machine, same run; paper-scale dry run with --profile frontier",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1min_at_end": os.getloadavg()[0],
            "note": "shared 2-core machine: wall times stretch with the load; compare ratios and CPU seconds",
        },
        "subset_wall_s": subset,
        "subset_ratio_to_local": {k: round(v / subset["local"], 2) for k, v in subset.items()} if subset else {},
        "paper_dry_run_s": {
            "median": round(statistics.median(dry), 2),
            "runs": [round(d, 2) for d in dry],
            "cpu_s_median": round(statistics.median(dry_cpu), 2),
            "goal": 5.0,
            "meets_goal": statistics.median(dry) <= 5.0,
            "meets_goal_in_cpu_s": statistics.median(dry_cpu) <= 5.0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
