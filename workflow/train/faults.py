"""Fault injection for the tests of the training loop: what a kill, a signal, a NaN or an
out-of-memory error at a known step does to checkpoints and resume, without waiting for one.

Inert unless one of these environment variables names a 1-based step:
  SCALEDAG_FAULT_KILL_AT_STEP           SIGKILL right after the step (after its checkpoint, if any)
  SCALEDAG_FAULT_SIGNAL_AT_STEP         SIGUSR1 (Slurm's pre-walltime signal) right after the step
  SCALEDAG_FAULT_NONFINITE_AT_STEP      that step's loss is multiplied by NaN, so the weights really are poisoned
  SCALEDAG_FAULT_NONFINITE_GRAD_AT_STEP one gradient becomes NaN after the backward pass, the loss stays finite
  SCALEDAG_FAULT_OOM_AT_STEP            the step's last micro-batch raises torch.OutOfMemoryError (the GPU
                                        out-of-memory report, exercised on CPU)
  SCALEDAG_FAULT_PAUSE_AT_STEP          after the step (and its checkpoint) touch `<SCALEDAG_FAULT_PAUSE_UNTIL>.reached`
                                        and wait until SCALEDAG_FAULT_PAUSE_UNTIL exists: an attempt still
                                        finishing when its retry starts
It lives in the package, not under tests/, because the faults must fire inside the training
process that the tests start as a plain `python -m workflow.train.pretrain`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def fault_step(name: str) -> int | None:
    value = os.environ.get(f"SCALEDAG_FAULT_{name}_AT_STEP")
    return int(value) if value else None


def after_step(step: int) -> None:
    if fault_step("KILL") == step:
        os.kill(os.getpid(), signal.SIGKILL)
    if fault_step("SIGNAL") == step:
        os.kill(os.getpid(), signal.SIGUSR1)
    if fault_step("PAUSE") == step:
        until = Path(os.environ["SCALEDAG_FAULT_PAUSE_UNTIL"])
        Path(f"{until}.reached").touch()
        while not until.exists():
            time.sleep(0.05)
