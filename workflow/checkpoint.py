"""Resumable checkpoints with Megatron dist_checkpointing; a partial checkpoint is never picked up.

Each checkpoint is written to `iter_NNNNNNN.tmp/`, renamed to `iter_NNNNNNN/` once every rank has
finished, and only then is `latest_checkpointed_iteration.txt` (written atomically) pointed at it.
A crash at any moment leaves either the previous pointer or the new one, both complete."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import torch

from workflow.io import atomic_write_text

LATEST = "latest_checkpointed_iteration.txt"


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere).

    dist_checkpointing's torch_dist writer starts a spawned multiprocessing Manager; if the trainer
    is killed with SIGKILL that server would otherwise live on as an orphan. Spawned children
    import the entry module as `__mp_main__`, which calls this."""
    import ctypes
    import signal as _signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, _signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def iteration_dir(root: str | Path, iteration: int) -> Path:
    return Path(root) / f"iter_{iteration:07d}"


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _sharded_state(model, optimizer, is_loading: bool) -> dict:
    model_sd = model.sharded_state_dict()
    return {"model": model_sd, "optimizer": optimizer.sharded_state_dict(model_sd, is_loading=is_loading)}


def save_checkpoint(root: str | Path, iteration: int, model, optimizer, scheduler, progress: dict) -> Path:
    """Save model, optimizer, scheduler, data position (`progress`) and RNG states."""
    from megatron.core import dist_checkpointing

    root = Path(root)
    final = iteration_dir(root, iteration)
    tmp = final.with_name(final.name + ".tmp")
    if _rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    state = _sharded_state(model, optimizer, is_loading=False)
    state.update(scheduler=scheduler.state_dict(), progress=dict(progress, iteration=iteration), rng=_rng_state())
    dist_checkpointing.save(state, str(tmp))
    _barrier()
    if _rank() == 0:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        atomic_write_text(root / LATEST, f"{iteration}\n")
    _barrier()
    return final


def latest_iteration(root: str | Path) -> int | None:
    """The iteration of the newest complete checkpoint, or None."""
    pointer = Path(root) / LATEST
    if not pointer.exists():
        return None
    iteration = int(pointer.read_text().strip())
    return iteration if iteration_dir(root, iteration).is_dir() else None


def load_checkpoint(root: str | Path, iteration: int, model, optimizer, scheduler) -> dict:
    """Restore every state saved by `save_checkpoint`; returns the saved `progress`."""
    from megatron.core import dist_checkpointing

    path = iteration_dir(root, iteration)
    state = _sharded_state(model, optimizer, is_loading=True)
    state.update(scheduler=None, progress=None, rng=None)
    loaded = dist_checkpointing.load(state, str(path))
    model.load_state_dict(loaded["model"])
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    _set_rng_state(loaded["rng"])
    return loaded["progress"]


def prune_checkpoints(root: str | Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (and any stale .tmp directories)."""
    if _rank() != 0:
        return
    root = Path(root)
    latest = latest_iteration(root)
    done = sorted(p for p in root.glob("iter_*") if p.is_dir() and not p.name.endswith(".tmp"))
    for p in done[:-keep] if keep > 0 else []:
        if latest is None or p != iteration_dir(root, latest):
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob("iter_*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
