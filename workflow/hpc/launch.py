"""One launch path for `python`, `torchrun` and `srun`: ranks come from whichever launcher ran us."""

from __future__ import annotations

import dataclasses
import os
import re
import socket

import torch


@dataclasses.dataclass(frozen=True)
class LaunchInfo:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    launcher: str  # "python" | "torchrun" | "srun"


def first_host(nodelist: str) -> str:
    """First hostname of a Slurm nodelist ('frontier[00012-00015,00020]' -> 'frontier00012')."""
    m = re.match(r"^([^\[,]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        return nodelist
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for a single-node rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_info(env: dict | None = None) -> LaunchInfo:
    env = dict(os.environ if env is None else env)
    if "RANK" in env and "WORLD_SIZE" in env:  # torchrun (or anything exporting the torch variables)
        return LaunchInfo(
            int(env["RANK"]),
            int(env["WORLD_SIZE"]),
            int(env.get("LOCAL_RANK", 0)),
            env.get("MASTER_ADDR", "127.0.0.1"),
            int(env.get("MASTER_PORT", 29500)),
            "torchrun",
        )
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:  # srun with several tasks
        return LaunchInfo(
            int(env["SLURM_PROCID"]),
            int(env["SLURM_NTASKS"]),
            int(env.get("SLURM_LOCALID", 0)),
            env.get("MASTER_ADDR")
            or first_host(env.get("SLURM_STEP_NODELIST", env.get("SLURM_NODELIST", "127.0.0.1"))),
            int(env.get("MASTER_PORT", 29500)),
            "srun",
        )
    return LaunchInfo(0, 1, 0, "127.0.0.1", int(env.get("MASTER_PORT", 0)) or free_port(), "python")


def init_distributed(tp: int = 1, pp: int = 1) -> LaunchInfo:
    """Initialise torch.distributed (NCCL/RCCL on GPU, gloo on CPU) and Megatron's parallel state."""
    from megatron.core import parallel_state

    info = launch_info()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(info.local_rank)
        torch.distributed.init_process_group(
            backend=backend,
            init_method=f"tcp://{info.master_addr}:{info.master_port}",
            rank=info.rank,
            world_size=info.world_size,
        )
    if info.world_size % (tp * pp):
        raise ValueError(f"world size {info.world_size} is not divisible by tp*pp = {tp * pp}")
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    return info


def shutdown() -> None:
    from megatron.core import parallel_state

    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
