"""Per-run metrics: a JSONL stream that survives resume, plus a throughput meter."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from workflow.errors import ScaleDAGError


class MetricsLog:
    """Appends one JSON object per line to `<final>.partial`; `finalize()` renames it to `final`.

    On resume the partial file is cut back to the rows at or before the checkpoint's step, so a
    resumed run's file equals an uninterrupted one (rows are re-emitted from there)."""

    def __init__(self, final: str | Path, resume_step: int | None = None, enabled: bool = True):
        self.final = Path(final)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.enabled = enabled
        self.kept_rows = []
        if not enabled:
            return
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        kept = []  # the earlier attempts' rows this one continues from (also parsed, in kept_rows)
        if resume_step is not None:
            if not self.partial.exists():
                # Resuming from a checkpoint whose log is gone would finish with the rows after it only.
                raise ScaleDAGError(
                    f"{self.partial}: the metrics log vanished while resuming from step {resume_step} "
                    "(another process removed or finalized it); rerun the job"
                )
            for line in self.partial.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything after it is unreliable
                if row.get("step", 0) <= resume_step:
                    kept.append(line)
                    self.kept_rows.append(row)
        self._fh = open(self.partial, "w", encoding="utf-8")
        for line in kept:
            self._fh.write(line + "\n")
        self._fh.flush()

    def log(self, **row) -> None:
        if not self.enabled:
            return
        self._fh.write(json.dumps(row, sort_keys=True) + "\n")
        self._fh.flush()

    def finalize(self) -> None:
        if not self.enabled:
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.partial, self.final)

    def close(self) -> None:
        if self.enabled and not self._fh.closed:
            self._fh.close()


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class Throughput:
    """Tokens/s over the time spent in training steps only (eval and checkpointing excluded)."""

    def __init__(self):
        self.tokens = 0
        self.seconds = 0.0
        self._t0 = None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, tokens: int) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.tokens += tokens

    def rate_and_reset(self) -> float:
        rate = self.tokens / self.seconds if self.seconds > 0 else float("nan")
        self.tokens, self.seconds = 0, 0.0
        return rate
