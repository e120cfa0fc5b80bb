"""Measure the efficiency study on this machine's GPU and keep the rows under benchmarks/results/.

Runs the `small`-scale block micro-benchmark (dense and 2:4 sparse side by side in the same
process, so the sparse speed-up is a same-run ratio) and the single-device training-throughput jobs
of each chosen workload (GPT-2 small/medium; GenSLM 25M/250M with `--workloads gpt2 genslm`, which
needs the scale's gene corpus, `corpora.genes`) through Snakemake in a scratch directory, then copies
the rows to `benchmarks/results/efficiency_{block,gpt2,genslm}_<device>.jsonl`. `efficiency_figures` draws every such
file beside the DAG's own rows (rules/common.smk: get_external_rows), so a CPU-only run of the tiny
DAG still shows the GPU rows. A measurement, not a test.

    python benchmarks/efficiency_gpu.py [--scale small] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", choices=["small", "paper"])
    parser.add_argument("--study", default="efficiency")
    parser.add_argument("--block-only", action="store_true", help="skip the training workloads (they need corpora)")
    parser.add_argument(
        "--workloads", nargs="+", default=["gpt2"], help="training workloads to time (gpt2, genslm; default gpt2)"
    )
    parser.add_argument("--keep", help="scratch directory to keep (default: a temporary one)")
    args = parser.parse_args()

    import torch

    from workflow.config import load_config
    from workflow.studies.benchmarks import block_sweep, train_jobs

    if not torch.cuda.is_available():
        sys.exit("efficiency_gpu: no CUDA/ROCm device visible; this script measures GPU rows")
    cfg = load_config(REPO / "config.yaml", {"scale": args.scale})
    root = f"results/{args.scale}/{args.study}"
    targets = [f"{root}/block/{a}.jsonl" for a in block_sweep(cfg, args.study)["archs"]]
    if not args.block_only:
        for w in args.workloads:
            targets += [f"{root}/{w}/{j}.jsonl" for j in train_jobs(cfg, args.study, w) if j.endswith(".dp1")]
    work = Path(args.keep or tempfile.mkdtemp(prefix="scaledag-eff-"))
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", WANDB_MODE="offline")
    subprocess.run(
        [
            str(bin_dir / "snakemake"),
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(work),
            "--configfile",
            str(REPO / "config.yaml"),
            "--cores",
            "all",
            "--resources",
            "gpu=1",
            "--config",
            f"scale={args.scale}",
            "--",
            *targets,
        ],
        check=True,
        env=env,
        cwd=work,
    )
    device = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name()).strip("-")
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in ("block", "gpt2", "genslm"):
        files = sorted((work / root / kind).glob("*.jsonl"))
        if files:
            rows = "".join(f.read_text() for f in files)
            (out_dir / f"efficiency_{kind}_{device}.jsonl").write_text(rows)
            print(f"{kind}: {len(rows.splitlines())} rows -> benchmarks/results/efficiency_{kind}_{device}.jsonl")
    sparse = [
        json.loads(x) for f in sorted((work / root / "block").glob("*.jsonl")) for x in f.read_text().splitlines()
    ]
    speedups = [r["speedup_fwd_bwd"] for r in sparse if r.get("mode") == "sparse24" and r.get("status") == "ok"]
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(),
                "sparse_points_ok": len(speedups),
                "sparse_speedup_fwd_bwd_median": sorted(speedups)[len(speedups) // 2] if speedups else None,
            }
        )
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
