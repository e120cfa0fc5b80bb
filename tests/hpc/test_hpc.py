"""workflow.hpc.resources: Frontier walltime bins, partition choice, launcher and per-rule resources."""

import copy

import pytest

from workflow.config import load_config
from workflow.errors import ScaleDAGError
from workflow.hpc.resources import (
    FRONTIER,
    LOCAL,
    account_problem,
    choose_partition,
    launch_prefix,
    rule_resources,
    rule_retries,
)


@pytest.fixture(scope="module")
def base():
    return load_config("config.yaml")


def at(config, scale, **resources):
    c = copy.deepcopy(config)
    c["scale"] = scale
    if resources:
        c["scales"][scale]["resources"] = resources
    return c


@pytest.mark.parametrize("nodes,limit", [(1, 120), (91, 120), (92, 360), (183, 360), (184, 720), (9408, 720)])
def test_batch_bins_follow_the_node_count(nodes, limit):
    assert choose_partition(FRONTIER, nodes, 10**6) == ("batch", limit)


def test_long_small_jobs_go_to_extended_and_big_ones_are_cut_to_their_bin():
    assert choose_partition(FRONTIER, 16, 100) == ("batch", 100)
    assert choose_partition(FRONTIER, 16, 600) == ("extended", 600)
    assert choose_partition(FRONTIER, 16, 5000) == ("batch", 120)  # resumes in the next job
    assert choose_partition(FRONTIER, 100, 600) == ("batch", 360)  # too many nodes for extended
    assert choose_partition(FRONTIER, 4, None) == ("batch", 120)
    assert choose_partition(LOCAL, 4, 5000) == (None, 5000)


def test_launcher_is_srun_with_frontier_binding_unless_parsl_gives_a_prefix():
    prefix = launch_prefix(FRONTIER, 2, 8, 7, 1)
    assert "${PARSL_MPI_PREFIX:-srun -N 2 -n 16 -c 7 --gpus-per-task=1 --gpu-bind=closest}" in prefix
    assert "NCCL_SOCKET_IFNAME=hsn0" in prefix and "MIOPEN_USER_DB_PATH=/tmp/" in prefix
    assert launch_prefix(LOCAL, 1, 2, 1, 0) == "${PARSL_MPI_PREFIX:-srun -N 1 -n 2 -c 1}"


def test_paper_pretrain_is_a_multi_node_srun_job_with_a_pre_walltime_signal(base):
    res = rule_resources(at(base, "paper"), "pretrain", threads=7)
    assert res["nodes"] == 16 and res["tasks"] == 128 and res["cpus_per_task"] == 7
    assert res["slurm_partition"] == "batch" and res["runtime"] == 120
    assert res["mpi"].endswith("srun -N 16 -n 128 -c 7 --gpus-per-task=1 --gpu-bind=closest}")
    assert res["slurm_extra"] == "--signal=USR1@600"
    assert rule_retries(at(base, "paper"), "pretrain") >= 1
    assert rule_resources(at(base, "paper"), "prepare_corpus")["constraint"] == "nvme"


def test_tiny_jobs_are_single_task_without_launcher(base):
    res = rule_resources(at(base, "tiny"), "pretrain")
    assert res == {"nodes": 1, "tasks": 1, "mpi": ""}
    assert rule_retries(at(base, "tiny"), "pretrain") is None


def test_a_job_wider_than_a_frontier_node_is_refused(base):
    c = at(base, "paper", pretrain={"nodes": 2, "tasks_per_node": 8, "cpus_per_task": 8})
    with pytest.raises(ScaleDAGError, match=r"resources.pretrain: 8 tasks x 8 cores exceed the 56 cores"):
        rule_resources(c, "pretrain")
    c = at(base, "paper", pretrain={"tasks_per_node": 4, "gpus_per_task": 4})
    with pytest.raises(ScaleDAGError, match="exceed the 8 GPUs"):
        rule_resources(c, "pretrain")


def test_schema_rejects_unknown_resource_keys(base):
    scales = copy.deepcopy(base["scales"])
    scales["paper"]["resources"] = {"pretrain": {"gpus": 1}}
    with pytest.raises(ScaleDAGError, match=r"resources.pretrain: unknown key 'gpus'"):
        load_config("config.yaml", {"scales": scales})


def test_account_is_required_only_for_frontier_on_slurm(base):
    paper, tiny = at(base, "paper"), at(base, "tiny")
    assert "SBATCH_ACCOUNT" in account_problem(paper, "slurm", {})
    assert "SBATCH_ACCOUNT" in account_problem(paper, None, {})  # dry run: warned
    assert account_problem(paper, "slurm", {"SBATCH_ACCOUNT": "abc123"}) is None
    assert account_problem(paper, "local", {}) is None
    assert account_problem(tiny, "slurm", {}) is None
