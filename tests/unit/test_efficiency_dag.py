"""DAG shape of the efficiency studies at each scale (dry runs; nothing executes)."""

from __future__ import annotations

import pytest

from conftest import REPO, job_counts, snakemake
from workflow.config import load_config
from workflow.studies import benchmarks as eff
from workflow.studies import proxy


def _counts(scale):
    proc = snakemake("-n", "--forceall", "--config", f"scale={scale}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, job_counts(proc.stdout)


@pytest.mark.parametrize("scale", ["tiny", "small", "paper"])
def test_every_declared_point_has_a_job(scale):
    cfg = load_config(REPO / "config.yaml", {"scale": scale})
    out, counts = _counts(scale)
    assert counts["benchmark_block"] == len(eff.block_sweep(cfg, "efficiency")["archs"])
    assert counts["benchmark_train"] == sum(len(eff.train_jobs(cfg, "efficiency", w)) for w in eff.TRAIN_WORKLOADS)
    assert f"results/{scale}/efficiency/genslm/genslm-25m" in out  # GenSLM's points run at every scale
    assert counts["efficiency_figures"] == 1 and counts["proxy_rank"] == 1 and counts["proxy_report"] == 1
    n = len(proxy.enumerate_candidates(proxy.proxy_settings(cfg, "arch_proxy"), cfg["scales"][scale]["parallel"]["tp"]))
    proxy_jobs = sum(
        1 for line in out.splitlines() if line.startswith("    output: ") and "/arch_proxy/runs/proxy_" in line
    )
    full_jobs = sum(
        1 for line in out.splitlines() if line.startswith("    output: ") and "/arch_proxy/runs/full_" in line
    )
    assert proxy_jobs == n
    # tiny runs every candidate in full (known before the ranking); elsewhere the checkpoint decides later
    assert full_jobs == (n if scale == "tiny" else 0)
    assert f"results/{scale}/efficiency/figures/gpt2_scaling.png" in out
    assert "efficiency/figures/loss_curves" not in out and "arch_proxy/figures/loss_curves" not in out


def test_multi_node_points_launch_with_srun_at_paper_scale():
    proc = snakemake(
        "-n", "--forceall", "-p", "results/paper/efficiency/gpt2/gpt2-small.dp64.jsonl", "--config", "scale=paper"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "srun -N 8 -n 64" in proc.stdout and "-m workflow.bench.train" in proc.stdout
    resources = [line for line in proc.stdout.splitlines() if "nodes=8" in line]
    assert len(resources) == 1 and "tasks=64" in resources[0] and "gpu=64" in resources[0]
