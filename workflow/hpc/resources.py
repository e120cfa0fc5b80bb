"""Cluster resources of a rule at the selected scale: Slurm nodes, tasks, walltime, partition, launcher.

A scale names the `machine` it runs on (`local` or `frontier`) and, per rule, the resources a job
needs (`scales.<scale>.resources.<rule>`). This module turns those into Snakemake resources the
slurm executor plugin and the Parsl plugin understand, respecting the machine's limits: on Frontier
a job's walltime never exceeds the bin of its node count (a longer run continues in the next job
from its checkpoint), and multi-task jobs launch with `srun` (or Parsl's MPI prefix) through
`{resources.mpi}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from workflow.errors import ScaleDAGError
from workflow.schema import defaults

# Slurm sends SIGUSR1 this many seconds before the walltime: time for a checkpoint of a 6.7B model.
SIGNAL_SECONDS = 600


@dataclass(frozen=True)
class Partition:
    name: str
    bins: tuple[tuple[float, int], ...]  # (max nodes, max walltime in minutes), ascending by nodes

    def limit(self, nodes: int) -> int | None:
        """Walltime limit (minutes) for a job of `nodes` nodes, None if the partition refuses it."""
        for max_nodes, minutes in self.bins:
            if nodes <= max_nodes:
                return minutes
        return None


@dataclass(frozen=True)
class Machine:
    name: str
    partitions: tuple[Partition, ...] = ()
    cores_per_node: int | None = None
    gpus_per_node: int = 0
    srun_flags: str = ""  # extra flags of the multi-task launcher
    env: dict = field(default_factory=dict)  # set for every rank
    modules: tuple[str, ...] = ()  # `module load`ed by Snakemake's env-modules deployment
    nvme_constraint: str | None = None


# OLCF Frontier (Frontier user guide): 8 MI250X GCDs and 56 usable cores per node (7 per GCD with
# the default `-S 8`); `batch` walltime bins by node count, `extended` 24 h for <= 64 nodes;
# node-local NVMe with `-C nvme` at /mnt/bb/$USER.
FRONTIER = Machine(
    name="frontier",
    partitions=(
        Partition("batch", ((91, 120), (183, 360), (math.inf, 720))),
        Partition("extended", ((64, 1440),)),
    ),
    cores_per_node=56,
    gpus_per_node=8,
    srun_flags="--gpus-per-task=1 --gpu-bind=closest",
    env={
        "NCCL_SOCKET_IFNAME": "hsn0",
        # MIOpen's kernel database must live on node-local disk, not the shared filesystem.
        "MIOPEN_USER_DB_PATH": "/tmp/miopen-${USER}-${SLURM_JOB_ID}",
        "MIOPEN_CUSTOM_CACHE_DIR": "/tmp/miopen-${USER}-${SLURM_JOB_ID}",
    },
    modules=("PrgEnv-gnu", "rocm", "craype-accel-amd-gfx90a"),
    nvme_constraint="nvme",
)
LOCAL = Machine(name="local")
MACHINES = {m.name: m for m in (LOCAL, FRONTIER)}


def machine(config: dict) -> Machine:
    return MACHINES[config["scales"][config["scale"]]["machine"]]


def choose_partition(mach: Machine, nodes: int, runtime: int | None) -> tuple[str | None, int | None]:
    """(partition, runtime) for a job: the first partition whose bin holds `runtime`; otherwise the
    first that takes the node count, with the runtime cut to its bin (the job resumes in the next)."""
    if not mach.partitions:
        return None, runtime
    fitting = [(p.name, p.limit(nodes)) for p in mach.partitions if p.limit(nodes) is not None]
    if not fitting:
        raise ScaleDAGError(f"{mach.name}: no partition takes a job of {nodes} nodes")
    if runtime is None:
        return fitting[0]
    for name, limit in fitting:
        if runtime <= limit:
            return name, runtime
    name, limit = fitting[0]
    return name, limit


def launch_prefix(mach: Machine, nodes: int, tasks_per_node: int, cpus_per_task: int, gpus_per_task: int) -> str:
    """`{resources.mpi}` of a multi-task job: Parsl's MPI prefix when Parsl set one, else srun."""
    flags = f"-N {nodes} -n {nodes * tasks_per_node} -c {cpus_per_task}"
    if gpus_per_task:
        flags += f" {mach.srun_flags or f'--gpus-per-task={gpus_per_task}'}"
    env = " ".join(f"{k}={v}" for k, v in mach.env.items())
    srun = f"srun {flags}"
    return (f"env {env} " if env else "") + "${PARSL_MPI_PREFIX:-" + srun + "}"


def rule_resource_spec(config: dict, rule: str, scale: str | None = None) -> dict:
    """`scales.<scale>.resources.<rule>` over the schema's defaults (all of them for a rule not listed;
    a listed entry from config.yaml already has them, one set in code may not)."""
    return {**defaults("rule_resources"), **config["scales"][scale or config["scale"]]["resources"].get(rule, {})}


def rule_resources(config: dict, rule: str, threads: int = 1) -> dict:
    """Snakemake resources of `rule` at the selected scale (see the module docstring)."""
    spec = rule_resource_spec(config, rule)
    mach = machine(config)
    nodes, tasks_per_node, gpus_per_task = spec["nodes"], spec["tasks_per_node"], spec["gpus_per_task"]
    cpus = spec.get("cpus_per_task")
    tasks = nodes * tasks_per_node
    if mach.cores_per_node and tasks_per_node * (cpus or threads) > mach.cores_per_node:
        raise ScaleDAGError(
            f"config: scales.{config['scale']}.resources.{rule}: {tasks_per_node} tasks x {cpus or threads} cores exceed "
            f"the {mach.cores_per_node} cores of a {mach.name} node"
        )
    if mach.gpus_per_node and tasks_per_node * gpus_per_task > mach.gpus_per_node:
        raise ScaleDAGError(
            f"config: scales.{config['scale']}.resources.{rule}: {tasks_per_node} tasks x {gpus_per_task} GPUs exceed "
            f"the {mach.gpus_per_node} GPUs of a {mach.name} node"
        )
    partition, runtime = choose_partition(mach, nodes, spec.get("runtime"))
    res = {
        "nodes": nodes,
        "tasks": tasks,
        "mpi": launch_prefix(mach, nodes, tasks_per_node, cpus or threads, gpus_per_task) if tasks > 1 else "",
    }
    if cpus:
        res["cpus_per_task"] = cpus
    if runtime is not None:
        res["runtime"] = runtime
    if partition:
        res["slurm_partition"] = partition
    if "mem_mb" in spec:
        res["mem_mb"] = spec["mem_mb"]
    if gpus_per_task:
        res["gpu"] = tasks * gpus_per_task
        res["tasks_per_gpu"] = 1
    if spec.get("nvme") and mach.nvme_constraint:
        res["constraint"] = mach.nvme_constraint
    if tasks > 1:
        # Pre-walltime signal to the job steps (the srun-launched ranks): they checkpoint and exit 75.
        res["slurm_extra"] = f"--signal=USR1@{SIGNAL_SECONDS}"
    return res


def rule_retries(config: dict, rule: str) -> int | None:
    """Follow-on jobs a walltime-bounded rule may use (None: Snakemake's --retries applies)."""
    return rule_resource_spec(config, rule).get("resubmits")


def account_problem(config: dict, executor: str | None, env: dict) -> str | None:
    """Frontier charges every job to an account (-A): say so when SBATCH_ACCOUNT is missing."""
    if machine(config).name != "frontier" or env.get("SBATCH_ACCOUNT"):
        return None
    if executor not in (None, "slurm", "parsl"):
        return None
    return (
        "SBATCH_ACCOUNT is not set: Frontier jobs need a project account (export SBATCH_ACCOUNT=<project>, e.g. abc123)"
    )
