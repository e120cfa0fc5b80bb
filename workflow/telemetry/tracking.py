"""Weights & Biases tracking that can never stop training.

`Tracker` wraps `wandb.init/log/summary/finish`. Any exception from wandb (or its absence) is
caught, reported once as a warning line on the `workflow.telemetry.tracking` logger, and the tracker
disables itself; every later call is a no-op. Only global rank 0 tracks.

Defaults avoid the network and a busy 2-core box: mode is `$WANDB_MODE` or "offline" (the run
lands in `<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb`, to be pushed later with
`wandb sync`), WANDB_SILENT is set, console capture is off (our logs stay ours), and system
stats sampling is off unless a GPU is present. (The tests read such a folder back with
tests/wandb_offline.py.)
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "scaledag"
_ID_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_run_id(run_id: str, max_len: int = 64) -> str:
    """A W&B run id from our run id: characters outside [A-Za-z0-9._-] become '-'; long ids are
    cut and suffixed with a short hash so they stay unique and stable (resume needs stable ids)."""
    clean = _ID_BAD.sub("-", str(run_id)).strip("-") or "run"
    if len(clean) > max_len:
        import hashlib

        digest = hashlib.sha1(str(run_id).encode()).hexdigest()[:8]
        clean = clean[: max_len - 9] + "-" + digest
    return clean


def _global_rank() -> int:
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            return int(torch.distributed.get_rank())
    except Exception:  # noqa: BLE001
        pass
    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


def _has_gpu() -> bool:
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def flatten_scalars(values: dict, prefix: str = "") -> dict:
    """{"energy": {"joules": 3.0}} -> {"energy/joules": 3.0}; only int/float/str/bool/None leaves."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_scalars(value, name + "/"))
        elif value is None or isinstance(value, (int, float, str, bool)):
            flat[name] = value
    return flat


def wandb_metrics(row: dict) -> dict | None:
    """What one metrics.jsonl row sends to W&B: train rows under `train/`, evaluations after step 0
    as `valid/loss` (the step-0 evaluation is in the metrics log only)."""
    if row.get("kind") == "train":
        return {"train/" + k: v for k, v in row.items() if k not in ("kind", "step") and v is not None}
    if row.get("kind") == "valid" and row.get("step", 0) > 0:
        return {"valid/loss": row["loss"]}
    return None


class Tracker:
    """One W&B run per training run; safe to call on every rank and after any failure.

    Args: `run_id` (`<scale>.<study>.<run>`: the W&B name; the sanitised form is the W&B id, so a
    resumed job continues the same run), `group` (the study), `config` (logged as run config),
    `dir` (W&B writes `<dir>/wandb/`; put it inside the run's results folder), `enabled`,
    `mode` ("offline", "online", "disabled"; default `$WANDB_MODE` or "offline"), `project`
    (default `$WANDB_PROJECT` or "scaledag"), `rank` (default: torch.distributed or $RANK),
    `system_stats` (W&B's CPU/GPU sampler; default on only when CUDA is available).
    """

    def __init__(
        self,
        run_id: str,
        group: str | None,
        config: dict | None,
        dir: str | os.PathLike,
        enabled: bool = True,
        mode: str | None = None,
        project: str | None = None,
        rank: int | None = None,
        system_stats: bool | None = None,
    ):
        self.run_id = str(run_id)
        self.wandb_id = sanitize_run_id(self.run_id)
        self.group = group
        self.dir = Path(dir)
        self.mode = mode or os.environ.get("WANDB_MODE") or "offline"
        self.project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self.rank = _global_rank() if rank is None else int(rank)
        self.enabled = bool(enabled) and self.rank == 0 and self.mode != "disabled"
        self.disabled_reason: str | None = None if self.enabled else "not enabled on this rank/mode"
        self.run = None
        if not self.enabled:
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        stats = _has_gpu() if system_stats is None else bool(system_stats)
        try:
            import wandb
        except ImportError as exc:
            self._disable("import", exc)
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            settings = wandb.Settings(
                silent=True,
                console="off",  # do not wrap stdout/stderr: rule logs stay plain
                x_disable_stats=not stats,
                save_code=False,
                disable_code=True,
                disable_job_creation=True,
            )
            self.run = wandb.init(
                project=self.project,
                name=self.run_id,
                id=self.wandb_id,
                group=group,
                dir=str(self.dir),
                mode=self.mode,
                config=dict(config or {}),
                resume="allow",
                settings=settings,
            )
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - tracking must never stop training
            self._disable("init", exc)

    # -- public API ---------------------------------------------------------------------------------
    def log(self, metrics: dict, step: int | None = None) -> None:
        """Log a dict of scalars at `step` (W&B drops steps lower than one already logged)."""
        if not self.enabled:
            return
        try:
            self.run.log(dict(metrics), step=step)
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            self._disable("log", exc)

    def continue_from(self, rows: list[dict]) -> None:
        """Make a resumed attempt's offline run the whole run: log the earlier attempts' rows
        (those up to the checkpoint, from metrics.jsonl) again, then delete the earlier attempts'
        offline folders of this id. `wandb sync` then uploads one complete run per training run,
        not one partial run per attempt. Online runs resume on the server and need neither."""
        if not self.enabled or self.mode != "offline":
            return
        for row in rows:
            metrics = wandb_metrics(row)
            if metrics:
                self.log(metrics, step=row["step"])
        self._remove_earlier_attempts()

    def _remove_earlier_attempts(self) -> None:
        """Delete the other offline folders of this run id (run again at finish, in case a killed
        attempt's W&B service was still flushing when this attempt started)."""
        import shutil

        own = self.run_dir
        if self.mode != "offline" or own is None:
            return
        for folder in (self.dir / "wandb").glob(f"offline-run-*-{self.wandb_id}"):
            if folder.resolve() != own.resolve():
                shutil.rmtree(folder, ignore_errors=True)

    def summary(self, values: dict) -> None:
        """Set run summary values (final loss, tokens/s, MFU, joules/token...).

        Nested dicts are flattened to `a/b` keys (`energy/joules_per_token`, which the W&B report's
        energy panel plots); values other than numbers, strings and booleans are left out."""
        if not self.enabled:
            return
        try:
            self.run.summary.update(flatten_scalars(values))
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            self._disable("summary", exc)

    def finish(self, exit_code: int | None = None) -> None:
        """Close the run (flushes the offline file). Idempotent."""
        if not self.enabled:
            return
        if not exit_code:
            self._remove_earlier_attempts()
        try:
            self.run.finish(exit_code=exit_code)
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            self._disable("finish", exc, close=False)
            return
        self.enabled = False
        self.disabled_reason = "finished"
        self._wait_for_service()

    @property
    def run_dir(self) -> Path | None:
        """The run's local folder (`<dir>/wandb/offline-run-...`), once initialised."""
        try:
            return Path(self.run.dir).parent if self.run is not None else None
        except Exception:  # noqa: BLE001
            return None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)

    # -- internals ----------------------------------------------------------------------------------
    def _wait_for_service(self) -> None:
        """Return only once W&B's service process has closed this run's `.wandb` file.

        `run.finish()` waits for the exit record's answer, then only *tells* the service the run is
        over (`ServiceConnection.inform_finish`, a one-way message); the service closes the run's
        stream, and its file, afterwards on its own time. `wandb.teardown()` waits for the service
        to exit, so whoever reads the offline folder next (`wandb sync`, a test) reads a whole file.
        It costs ~0.5 s, paid at process exit anyway; skipped while another run of this process is
        open, which teardown would end."""
        try:
            import wandb

            if wandb.run is None:
                wandb.teardown()
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            msg = " ".join(f"{type(exc).__name__}: {exc}".split())
            log.warning("wandb.teardown failed for %s (its offline file may be incomplete): %s", self.run_id, msg)

    def _disable(self, op: str, exc: BaseException, close: bool = True) -> None:
        self.enabled = False
        what = "import wandb" if op == "import" else f"wandb.{op}"
        self.disabled_reason = f"{what} failed: {type(exc).__name__}: {exc}"
        msg = " ".join(f"{self.disabled_reason}".split())  # one line
        log.warning("tracking disabled for %s (training continues): %s", self.run_id, msg)
        if close and self.run is not None:
            try:
                self.run.finish(exit_code=1, quiet=True)
            except BaseException:  # noqa: BLE001
                pass
