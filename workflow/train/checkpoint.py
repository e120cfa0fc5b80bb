"""Resumable checkpoints with Megatron dist_checkpointing that are verified before any use.

Writing: each checkpoint goes to `iter_NNNNNNN.tmp/`; once every rank has finished, rank 0 writes
`manifest.json` (size and sha256 of every file, and whether the weights were finite), renames the
folder to `iter_NNNNNNN/` and points `latest_checkpointed_iteration.txt` at it. A checkpoint without
a manifest is not complete.

Reading: every loader verifies the manifest first, and `.metadata` (a pickle that torch's DCP reader
would otherwise `pickle.load`) is read by an unpickler that only builds DCP's own metadata classes,
so a checkpoint folder someone else can write cannot run code here. Resume takes the newest
checkpoint that verifies and loads (the pointer is only a hint: one missing, garbage or naming a
missing folder is reported and ignored); a checkpoint that fails is renamed `iter_NNNNNNN.rejected`
(kept for inspection, never loaded) and the next older one is tried. Evaluation and export load the
final checkpoint or refuse with one line: they never fall back to an older model."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import pickle
import random
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from workflow.errors import EXIT_IO, ScaleDAGError
from workflow.hpc.launch import init_distributed
from workflow.io import atomic_write_json, atomic_write_text
from workflow.model import megatron_cpu
from workflow.model.gpt import build_gpt_model

LATEST = "latest_checkpointed_iteration.txt"
MANIFEST = "manifest.json"
_ITER_DIR = re.compile(r"^iter_(\d{7})$")


class CheckpointError(ScaleDAGError):
    """A checkpoint that is missing, incomplete, corrupt or tampered with; names the file."""


class CheckpointWriteError(ScaleDAGError):
    """Saving failed (full disk, I/O error); the previous checkpoints are left as they were."""

    exit_code = EXIT_IO


def _in_process_write_queue() -> None:
    """Give dist_checkpointing's writer a plain queue instead of its spawned Manager.

    A synchronous save (all this project does) collects the write results in this same process,
    but megatron's FileSystemWriterAsync asks for a `spawn` multiprocessing Manager on the first
    save: a fresh interpreter that re-imports the entry module (torch, megatron: ~3 s of the ~4 s
    a tiny save took) and lives on as an orphan if the trainer is SIGKILLed. An in-process queue
    holds the same results for the same `get()`; the forked writer processes are unchanged."""
    import queue

    from megatron.core.dist_checkpointing.strategies import filesystem_async

    if filesystem_async._results_queue is None:
        filesystem_async._results_queue = queue.Queue()


def iteration_dir(root: str | Path, iteration: int) -> Path:
    return Path(root) / f"iter_{iteration:07d}"


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def max_over_ranks(value: float) -> float:
    """The largest `value` of any rank (the same answer everywhere), on the device NCCL needs."""
    if not torch.distributed.is_initialized():
        return value
    t = torch.tensor([float(value)], device="cuda" if torch.cuda.is_available() else "cpu")
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t.item())


# -- manifest: size and sha256 of every file -----------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            digest.update(block)  # hashlib releases the GIL on large blocks: the pool below runs in parallel
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _hash_all(folder: Path, names: list[str]) -> list[str]:
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(names)))) as pool:
        return list(pool.map(lambda name: _sha256(folder / name), names))


def write_manifest(folder: Path, iteration: int, finite: bool, optimizer: bool = True) -> None:
    names = _files(folder)
    files = {
        name: {"size": (folder / name).stat().st_size, "sha256": digest}
        for name, digest in zip(names, _hash_all(folder, names))
    }
    manifest = {"iteration": iteration, "finite": finite, "optimizer": optimizer, "files": files}
    atomic_write_json(folder / MANIFEST, manifest)


def _manifest(folder: Path) -> dict:
    """The manifest as saved, or {} when unreadable (`verify_checkpoint` then says why)."""
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def verify_checkpoint(folder: str | Path) -> dict:
    """The manifest of a checkpoint whose every file is present and unchanged; else CheckpointError."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except FileNotFoundError:
        raise CheckpointError(f"{manifest_path}: missing (checkpoint incomplete or unverifiable)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not manifest.get("finite", False):
        raise CheckpointError(f"{folder}: saved from non-finite weights")
    present = _files(folder)
    extra = sorted(set(present) - set(files))
    if extra:
        raise CheckpointError(f"{folder / extra[0]}: not in the checkpoint's manifest")
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        if path.stat().st_size != entry["size"]:
            raise CheckpointError(
                f"{path}: {path.stat().st_size} bytes, the manifest says {entry['size']} (truncated or replaced)"
            )
    for name, digest in zip(files, _hash_all(folder, list(files))):
        if digest != files[name]["sha256"]:
            raise CheckpointError(f"{folder / name}: sha256 differs from the manifest (corrupt or tampered with)")
    return manifest


# -- .metadata without executing code --------------------------------------------------------------

_DCP_MODULES = (
    "torch.distributed.checkpoint.metadata",
    "torch.distributed.checkpoint.planner",
    "torch.distributed.checkpoint.filesystem",
)


class _MetadataUnpickler(pickle.Unpickler):
    """Builds only what DCP's `.metadata` holds: its dataclasses and enums, torch.Size, dtypes,
    layouts. Anything else (os.system, builtins.eval, ...) is refused before it is called."""

    def find_class(self, module: str, name: str):
        import torch.serialization

        if module == "torch" and name == "Size":
            return torch.Size
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) == ("torch.serialization", "_get_layout"):
            return torch.serialization._get_layout
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        if module in _DCP_MODULES:
            import importlib

            obj = getattr(importlib.import_module(module), name, None)
            if isinstance(obj, type) and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum)):
                return obj
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


class _SafePickle:
    """Stands in for the `pickle` module inside torch's DCP filesystem reader; remembers a refusal,
    since DCP and Megatron re-wrap the exception into a multi-line assertion."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.refused: str | None = None

    def load(self, fh):
        try:
            return _MetadataUnpickler(fh).load()
        except pickle.UnpicklingError as exc:
            self.refused = f"{self.folder}/.metadata: {exc} (not a checkpoint's metadata)"
        except Exception as exc:  # noqa: BLE001 - a cut or garbled pickle fails in many ways
            self.refused = f"{self.folder}/.metadata: unreadable ({type(exc).__name__}: {exc})"
        raise CheckpointError(self.refused)

    def __getattr__(self, name):
        return getattr(pickle, name)


@contextlib.contextmanager
def safe_metadata(folder: Path):
    from torch.distributed.checkpoint import filesystem

    saved = filesystem.pickle
    filesystem.pickle = reader = _SafePickle(folder)
    try:
        yield reader
    finally:
        filesystem.pickle = saved


def _load_verified(folder: Path, state: dict) -> dict:
    """dist_checkpointing.load of a checkpoint that rank 0 verified; one-line CheckpointError otherwise."""
    from megatron.core import dist_checkpointing

    problem = ""
    if _rank() == 0:
        try:
            verify_checkpoint(folder)
            with open(folder / ".metadata", "rb") as fh:  # refused here, before DCP logs its own traceback
                _SafePickle(folder).load(fh)
        except CheckpointError as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"{folder / '.metadata'}: {exc.strerror}"
    if max_over_ranks(1.0 if problem else 0.0):
        raise CheckpointError(problem or f"{folder}: failed verification on rank 0")
    with safe_metadata(folder) as reader:
        try:
            return dist_checkpointing.load(state, str(folder))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - DCP's CheckpointException derives from BaseException
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise CheckpointError(
                reader.refused or f"{folder}: could not be loaded ({type(exc).__name__}: {first})"
            ) from None


# -- saving ---------------------------------------------------------------------------------------


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
    if optimizer is None:  # a weights-only checkpoint (train.checkpoint_optimizer: false)
        return {"model": model_sd}
    return {"model": model_sd, "optimizer": optimizer.sharded_state_dict(model_sd, is_loading=is_loading)}


def weights_finite(model) -> bool:
    """Every parameter (and gradient, where one is held) finite on every rank."""
    bad = 0.0
    with torch.no_grad():
        for p in model.parameters():
            grad = getattr(p, "main_grad", None)
            if not torch.isfinite(p).all() or (grad is not None and not torch.isfinite(grad).all()):
                bad = 1.0
                break
    return max_over_ranks(bad) == 0.0


def _io_failure(exc: BaseException) -> str | None:
    """The OS error behind DCP's wrappers, as text: CheckpointException holds each rank's
    exception, and its writer threads pass failures on as strings ("[Errno 28] No space ...")."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
        found = re.search(r"\[Errno \d+\] [^\n]+", str(exc))
        if found:
            return found.group(0)
        failures = getattr(exc, "failures", None)
        if isinstance(failures, dict) and failures:
            inner = next(iter(failures.values()))
            exc = inner[0] if isinstance(inner, tuple) else inner
        else:
            exc = exc.__cause__ or exc.__context__
    return None


def _disk_full(root: Path) -> str | None:
    """ "No space left" when the disk cannot hold another checkpoint the size of the newest one:
    torch's zip writer reports a full disk as "unexpected pos", with no errno to recognise."""
    newest = checkpoint_dirs(root)
    needed = sum(p.stat().st_size for p in newest[0][1].rglob("*") if p.is_file()) if newest else 1 << 20
    free = shutil.disk_usage(root).free
    return (
        f"No space left on device ({free >> 10} KiB free, a checkpoint takes {needed >> 10} KiB)"
        if free < needed
        else None
    )


def save_checkpoint(
    root: str | Path, iteration: int, model, optimizer, scheduler, progress: dict, finite: bool | None = None
) -> Path:
    """Save model, optimizer, scheduler, data position (`progress`) and RNG states, then publish.
    `finite` is what the manifest records; checked here (every parameter, all ranks) unless the
    caller already did. `optimizer=None` saves the weights without the optimizer state: evaluation
    and export can read such a checkpoint, a resume cannot (the manifest says which it is).

    A failed write (full disk, I/O error) removes the half-written folder and raises one
    CheckpointWriteError line; every earlier checkpoint stays as it was."""
    from megatron.core import dist_checkpointing

    root = Path(root)
    final = iteration_dir(root, iteration)
    tmp = final.with_name(final.name + ".tmp")
    finite = weights_finite(model) if finite is None else finite
    try:
        if _rank() == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        _barrier()
        state = _sharded_state(model, optimizer, is_loading=False)
        state.update(scheduler=scheduler.state_dict(), progress=dict(progress, iteration=iteration), rng=_rng_state())
        _in_process_write_queue()
        dist_checkpointing.save(state, str(tmp))
        _barrier()
        if _rank() == 0:
            write_manifest(tmp, iteration, finite, optimizer=optimizer is not None)
            _publish(root, tmp, final, iteration)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - DCP's CheckpointException derives from BaseException
        if _rank() == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        failure = _io_failure(exc) or _disk_full(root)
        if failure:
            raise CheckpointWriteError(
                f"saving checkpoint {final.name} failed at {tmp}: {failure}; earlier checkpoints in {root} are intact"
            ) from None
        raise
    _barrier()
    return final


def _publish(root: Path, tmp: Path, final: Path, iteration: int) -> None:
    """Rename the finished folder into place, then the pointer. A folder of the same iteration (a
    run started over) is moved aside first and removed only once the new one is in place."""
    old = final.with_name(final.name + ".replaced")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    atomic_write_text(root / LATEST, f"{iteration}\n")
    shutil.rmtree(old, ignore_errors=True)


# -- finding and loading --------------------------------------------------------------------------


def checkpoint_dirs(root: str | Path) -> list[tuple[int, Path]]:
    """Published checkpoint folders (those with a manifest), newest first; nothing is hashed here."""
    root = Path(root)
    found = []
    for p in root.iterdir() if root.is_dir() else []:
        m = _ITER_DIR.match(p.name)
        if m and p.is_dir() and (p / MANIFEST).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def latest_iteration(root: str | Path) -> int | None:
    """The iteration of the newest published checkpoint (manifest present, not yet hashed), or None."""
    dirs = checkpoint_dirs(root)
    return dirs[0][0] if dirs else None


def latest_verified(root: str | Path) -> int | None:
    """The newest checkpoint whose files all match their manifest and whose weights were finite."""
    for iteration, folder in checkpoint_dirs(root):
        try:
            verify_checkpoint(folder)
            return iteration
        except CheckpointError:
            continue
    return None


def pointer_problem(root: str | Path) -> str | None:
    """What is wrong with `latest_checkpointed_iteration.txt`, if anything (it is only a hint)."""
    pointer = Path(root) / LATEST
    if not pointer.exists():
        return f"{pointer} is missing"
    text = pointer.read_text(errors="replace").strip()
    if not text.isdigit():
        return f"{pointer} holds {text[:40]!r}, not an iteration"
    if not (iteration_dir(root, int(text)) / MANIFEST).is_file():
        return f"{pointer} names iteration {int(text)}, which has no complete checkpoint"
    return None


def reject(folder: Path, reason: str) -> Path:
    """Rename a checkpoint that failed so it is never tried again, yet kept for inspection."""
    target = folder.with_name(folder.name + ".rejected")
    if _rank() == 0:
        shutil.rmtree(target, ignore_errors=True)
        folder.rename(target)
        atomic_write_text(target / "REJECTED.txt", reason + "\n")
    _barrier()
    return target


def load_checkpoint(root: str | Path, iteration: int, model, optimizer, scheduler) -> dict:
    """Verify, then restore every state saved by `save_checkpoint`; returns the saved `progress`."""
    path = iteration_dir(root, iteration)
    if _manifest(path).get("optimizer") is False:  # no key: a checkpoint with its optimizer
        raise CheckpointError(
            f"{path}: saved without optimizer state (train.checkpoint_optimizer: false), so training cannot resume from it"
        )
    state = _sharded_state(model, optimizer, is_loading=True)
    state.update(scheduler=None, progress=None, rng=None)
    loaded = _load_verified(path, state)
    model.load_state_dict(loaded["model"])
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    _set_rng_state(loaded["rng"])
    return loaded["progress"]


def resume_latest(root: str | Path, model, optimizer, scheduler, warn) -> int:
    """Load the newest checkpoint that verifies and loads; 0 when none does. Each one skipped is
    renamed `.rejected` and named in one `warn` line, with the reason."""
    root = Path(root)
    problem = pointer_problem(root) if root.is_dir() and _rank() == 0 else None
    dirs = checkpoint_dirs(root)
    if problem and dirs:
        warn(f"warning: {problem}; looking for the newest checkpoint that verifies")
    for iteration, folder in dirs:
        try:
            load_checkpoint(root, iteration, model, optimizer, scheduler)
            return iteration
        except CheckpointError as exc:
            target = reject(folder, str(exc))
            warn(f"warning: skipped checkpoint {folder.name}: {exc}; kept as {target.name}")
    return 0


def final_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint a finished run's summary names, else the newest published one."""
    run_dir = Path(run_dir)
    try:
        named = json.loads((run_dir / "summary.json").read_text()).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        named = None
    if named:
        return run_dir / named
    newest = checkpoint_dirs(run_dir / "checkpoints")
    if not newest:
        raise CheckpointError(f"{run_dir / 'checkpoints'}: no complete checkpoint")
    return newest[0][1]


def load_final_model(run_dir: str | Path, mspec, iteration: int | None = None):
    """The run's model at TP=PP=1 with the weights of its final (or the given) checkpoint, verified.
    Used by evaluation, zero-shot, band gap and export alike; returns (model, iteration)."""
    folder = (
        iteration_dir(Path(run_dir) / "checkpoints", iteration) if iteration is not None else final_checkpoint(run_dir)
    )
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint")
    megatron_cpu.activate()
    init_distributed(1, 1)
    megatron_cpu.initialize_rng(0)
    model = build_gpt_model(mspec)
    state = _load_verified(folder, {"model": model.sharded_state_dict()})
    model.load_state_dict(state["model"])
    model.eval()
    return model, int(folder.name.split("_")[1])


def prune_checkpoints(root: str | Path, keep: int) -> None:
    """Keep the newest `keep` published checkpoints (at least one); delete older ones and stale .tmp
    folders. Called right after a save, so the newest is the verified one just written."""
    if _rank() != 0:
        return
    root = Path(root)
    for _, folder in checkpoint_dirs(root)[max(1, keep) :]:
        shutil.rmtree(folder, ignore_errors=True)
    for p in root.glob("iter_*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
