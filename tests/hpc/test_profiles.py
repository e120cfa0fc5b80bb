"""Profiles: the paper DAG under --profile frontier without Slurm (dry run), its job counts,
nodes and walltimes inside Frontier's bins, dot renderings, and the account rule."""

import os
import re

import pytest

from conftest import REPO, job_counts
from test_parsl_executor import run_snakemake
from workflow.config import load_config, study_runs

# Frontier's `batch` bins and `extended` limit as the OLCF user guide states them (independent of
# workflow/hpc/resources.py on purpose): (max nodes, max minutes).
BINS = {"batch": [(91, 120), (183, 360), (10**9, 720)], "extended": [(64, 1440)]}


def frontier(*args, env=None, timeout=180):
    """Snakemake with the Frontier profile at paper scale, without SBATCH_ACCOUNT unless given."""
    full = {k: v for k, v in os.environ.items() if k != "SBATCH_ACCOUNT"}
    full.update(env or {})
    return run_snakemake(
        ["--profile", "profiles/frontier", "--config", "scale=paper", *args],
        cwd=REPO,
        env=full,
        timeout=timeout,
        inherit=False,
    )


@pytest.fixture(scope="module")
def paper_dry_run():
    proc = frontier("-n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def jobs_of(output: str) -> list[dict]:
    """One dict per job of a dry run: rule, wildcards and resources."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", output):
        m = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not m:
            continue
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        jobs.append(
            {
                "rule": m.group(1),
                "wildcards": wc.group(1) if wc else "",
                "resources": dict(kv.split("=", 1) for kv in re.split(r", (?=\w+=)", res.group(1))) if res else {},
            }
        )
    return jobs


def test_dry_run_warns_about_the_account_and_needs_no_slurm(paper_dry_run):
    assert "SBATCH_ACCOUNT is not set" in paper_dry_run.stderr
    assert "a real run will stop" in paper_dry_run.stderr


def test_paper_dag_job_counts(paper_dry_run):
    counts = job_counts(paper_dry_run.stdout)
    config = load_config(REPO / "config.yaml", {"scale": "paper"})
    matgpt = study_runs(config, "matgpt")
    assert len(matgpt) == 4  # {gpt-neox, llama} x {1.7B, 6.7B}
    assert counts["pretrain"] >= len(matgpt)  # other studies add their runs
    assert counts["evaluate_loss"] >= len(matgpt)
    assert counts["prepare_corpus"] >= 1 and counts["train_tokenizer"] >= 1 and counts["tokenize_corpus"] >= 1
    assert counts["loss_curves"] >= 1


def test_every_job_lists_nodes_and_runtime_inside_its_frontier_bin(paper_dry_run):
    jobs = [j for j in jobs_of(paper_dry_run.stdout) if j["rule"] != "all"]
    assert jobs
    for job in jobs:
        res = job["resources"]
        assert "nodes" in res and "runtime" in res, job
        nodes, minutes, partition = int(res["nodes"]), int(res["runtime"]), res.get("slurm_partition")
        assert partition in BINS, job
        limit = next(m for n, m in BINS[partition] if nodes <= n)
        assert minutes <= limit, (
            f"{job['rule']} {job['wildcards']}: {minutes} min on {nodes} nodes > {limit} ({partition})"
        )


def test_matgpt_pretrain_launches_multi_node_with_srun_and_the_pre_walltime_signal(paper_dry_run):
    pre = [j for j in jobs_of(paper_dry_run.stdout) if j["rule"] == "pretrain" and "study=matgpt" in j["wildcards"]]
    assert len(pre) == 4
    for job in pre:
        res = job["resources"]
        assert int(res["nodes"]) > 1 and int(res["tasks"]) == 8 * int(res["nodes"])
        assert f"srun -N {res['nodes']} -n {res['tasks']} -c 7 --gpus-per-task=1 --gpu-bind=closest" in res["mpi"]
        assert res["slurm_extra"] == "--signal=USR1@600"
    assert re.search(
        r"Shell command: env NCCL_SOCKET_IFNAME=hsn0 .*srun -N 16 .* python -m workflow.warm -m workflow.train.pretrain",
        paper_dry_run.stdout,
    )


def test_data_heavy_rules_ask_for_node_local_nvme(paper_dry_run):
    jobs = jobs_of(paper_dry_run.stdout)
    for rule in ("prepare_corpus", "tokenize_corpus"):
        assert all(j["resources"].get("constraint") == "nvme" for j in jobs if j["rule"] == rule), rule


@pytest.mark.parametrize("flag", ["--dag", "--rulegraph"])
def test_dag_and_rulegraph_render_as_dot(flag):
    proc = frontier(flag)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dot = proc.stdout[proc.stdout.index("digraph") :]
    assert dot.rstrip().endswith("}") and "pretrain" in dot and "->" in dot


def test_a_real_frontier_run_without_account_stops_before_submitting(tmp_path):
    proc = frontier(
        "-d",
        str(tmp_path),
        "--configfile",
        str(REPO / "config.yaml"),
        "-s",
        str(REPO / "Snakefile"),
        env={"SLURM_CONF": str(tmp_path / "no-slurm.conf")},
    )
    assert proc.returncode != 0
    assert "ScaleDAG SBATCH_ACCOUNT is not set" in proc.stderr
    assert "submitted" not in proc.stdout + proc.stderr
