"""Which Parsl executor a Snakemake job runs on, from its resources and each executor's workers.

Kept apart from the plugin so it is testable without starting Parsl."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from snakemake_interface_common.exceptions import WorkflowError


@dataclass(frozen=True)
class Needs:
    cpus_per_task: int
    mem_mb: int | None
    gpus: int
    nodes: int
    tasks: int

    @property
    def multi(self) -> bool:
        return self.nodes > 1 or self.tasks > 1

    def __str__(self):
        return (
            f"cpus_per_task={self.cpus_per_task}, mem_mb={self.mem_mb}, gpus={self.gpus}, "
            f"nodes={self.nodes}, tasks={self.tasks}"
        )


@dataclass(frozen=True)
class Slot:
    """What one worker of a Parsl executor offers (a whole block for an MPI executor)."""

    label: str
    cores: float
    mem_mb: float | None
    gpus: int
    nodes: int
    mpi: bool

    @classmethod
    def from_executor(cls, ex) -> Slot:
        provider = getattr(ex, "provider", None)
        nodes = getattr(provider, "nodes_per_block", 1) or 1
        mpi = bool(getattr(ex, "enable_mpi_mode", False))
        mem = getattr(ex, "mem_per_worker", None)
        accels = len(getattr(ex, "available_accelerators", []) or [])
        cores = getattr(ex, "cores_per_worker", float("inf"))  # e.g. a ThreadPoolExecutor: no limit known
        if mpi:  # a worker launches ranks across the whole block: the provider's node shape counts
            cores = getattr(provider, "cores_per_node", None) or float("inf")
            mem = getattr(provider, "mem_per_node", None)
            accels = getattr(provider, "gpus_per_node", None) or 0
        return cls(ex.label, float(cores), mem * 1024 if mem else None, 1 if accels and not mpi else accels, nodes, mpi)

    def fits(self, needs: Needs) -> bool:
        if needs.multi != self.mpi:
            return False
        if needs.nodes > self.nodes:
            return False
        per_node_tasks = max(1, needs.tasks // needs.nodes)
        if per_node_tasks * needs.cpus_per_task > self.cores:
            return False
        if needs.mem_mb and self.mem_mb is not None and needs.mem_mb > self.mem_mb:
            return False
        gpus_per_node = needs.gpus // needs.nodes if needs.multi else needs.gpus
        return gpus_per_node <= self.gpus

    def describe(self) -> str:
        mem = f"{self.mem_mb:.0f} MB" if self.mem_mb else "any memory"
        kind = f"MPI over {self.nodes} node(s)" if self.mpi else "1 worker"
        return f"{self.label}: {kind}, {self.cores:g} cores, {mem}, {self.gpus} GPU(s)"


def job_needs(job) -> Needs:
    res = job.resources
    gpus = res.get("gpus") or res.get("gpu") or 0
    return Needs(
        cpus_per_task=int(res.get("cpus_per_task") or job.threads or 1),
        mem_mb=int(res["mem_mb"]) if isinstance(res.get("mem_mb"), (int, float)) else None,
        gpus=int(gpus),
        nodes=int(res.get("nodes") or 1),
        tasks=int(res.get("tasks") or 1),
    )


def choose_slot(slots: list[Slot], needs: Needs) -> Slot | None:
    """The smallest executor that fits (fewest cores, then memory), so big workers stay free."""
    fitting = [s for s in slots if s.fits(needs)]
    return min(fitting, key=lambda s: (s.nodes, s.gpus, s.cores, s.mem_mb or float("inf")), default=None)


def load_parsl_config(path: Path | None, run_dir: Path):
    """`config` from a Parsl config file, or one local HighThroughputExecutor when none is given."""
    if path is None:
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor
        from parsl.providers import LocalProvider

        config = Config(
            executors=[
                HighThroughputExecutor(label="local", provider=LocalProvider(), max_workers_per_node=os.cpu_count())
            ]
        )
    else:
        path = Path(path)
        if not path.is_file():
            raise WorkflowError(f"--parsl-config: {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"parsl_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise WorkflowError(f"--parsl-config: {path}: {type(exc).__name__}: {exc}") from None
        config = getattr(module, "config", None)
        from parsl.config import Config

        if not isinstance(config, Config):
            raise WorkflowError(f"--parsl-config: {path} must define `config`, a parsl.config.Config")
    config.run_dir = str(run_dir)
    return config
