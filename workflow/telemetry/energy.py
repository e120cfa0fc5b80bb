"""Energy meters: joules spent between `start()` and `stop()`, measured or honestly absent.

A run reports joules per token only from a hardware energy counter; when no counter can be
read the result says so (`joules` None) and `reason` explains why each backend was unavailable.
Nothing here estimates energy from power limits, TDPs or utilisation.

Backends, tried in this order by `detect_meter`:

- ``nvml``: NVIDIA, `pynvml` (package nvidia-ml-py), `nvmlDeviceGetTotalEnergyConsumption`
  (mJ since the driver was loaded; Volta or newer). GPU board energy only, no host.
- ``amdsmi``: AMD, `amdsmi.amdsmi_get_energy_count` (accumulator x counter_resolution uJ).
  On MI250X the counter belongs to the OAM package (both GCDs); the secondary GCD may read 0.
- ``rapl``: Intel (and recent AMD) CPUs, `/sys/class/powercap/intel-rapl:N/energy_uj`, the
  package domains only (no psys, which overlaps them). Since CVE-2020-8694 these files are
  usually root-only; a PermissionError becomes the reason.

Device indices: `device_index` is the backend's own index (NVML ignores CUDA_VISIBLE_DEVICES).
In multi-process runs each rank meters its own GPU; RAPL covers whole CPU sockets, so only one
process per node should report it. Summing across ranks is the caller's job.

Result dict (`EnergyMeter.stop()`): {"backend", "joules" (None if not measured),
"reason" (None if measured), "seconds", "domains" (what was measured)}.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
import time
from pathlib import Path

_RAPL_ZONE = re.compile(r"^intel-rapl:(\d+)$")


class MeterUnavailable(Exception):
    """A backend cannot be used here; the message is the reason (one line)."""


def _result(backend: str, joules: float | None, reason: str | None, seconds: float, domains: list[str]) -> dict:
    return {"backend": backend, "joules": joules, "reason": reason, "seconds": seconds, "domains": domains}


def joules_per_token(result: dict, tokens: float) -> float | None:
    """Energy per token from a meter result; None when energy was not measured or tokens <= 0."""
    joules = result.get("joules") if result else None
    if joules is None or not tokens or tokens <= 0:
        return None
    return float(joules) / float(tokens)


class EnergyMeter:
    """Base class: `start()`, then `stop()` -> result dict. Subclasses provide counters.

    A subclass implements `_read()` returning one cumulative counter per domain in joules and
    sets `self._ranges` (one wrap range in joules per domain, None for counters that do not
    wrap) and `self.domains`. `sample()` folds the counters into the running total; it must run
    at least once per wrap period, so with `poll_interval_s` a daemon thread calls it.
    """

    backend = "none"

    def __init__(self, poll_interval_s: float | None = None):
        self.poll_interval_s = poll_interval_s
        self.domains: list[str] = []
        self._ranges: list[float | None] = []
        self._lock = threading.Lock()
        self._last: list[float] | None = None
        self._total = 0.0
        self._t0: float | None = None
        self._error: str | None = None
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _delta(self, prev: float, cur: float, span: float | None) -> float:
        if cur >= prev:
            return cur - prev
        if span:  # wrapped once (several wraps between samples cannot be seen: poll often enough)
            return span - prev + cur
        return 0.0  # counter reset without a known range (driver reload): count nothing for it

    def start(self) -> None:
        with self._lock:
            self._t0 = time.perf_counter()
            self._total = 0.0
            self._error = None
            try:
                self._last = self._read()
            except Exception as exc:  # noqa: BLE001 - a counter that fails is reported, never raised
                self._last, self._error = None, f"read failed at start: {exc}"
        if self.poll_interval_s and self._error is None:
            self._stop_event.clear()
            self._thread = threading.Thread(target=self._poll, name=f"energy-{self.backend}", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop_event.wait(self.poll_interval_s):
            self.sample()

    def sample(self) -> None:
        """Fold the counters read now into the total (handles one wraparound per domain)."""
        with self._lock:
            if self._last is None or self._error is not None:
                return
            try:
                cur = self._read()
            except Exception as exc:  # noqa: BLE001
                self._error = f"read failed: {exc}"
                return
            self._total += sum(self._delta(p, c, s) for p, c, s in zip(self._last, cur, self._ranges))
            self._last = cur

    def stop(self) -> dict:
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._thread = None
        if self._t0 is None:
            raise RuntimeError("EnergyMeter.stop() called before start()")
        self.sample()
        seconds = time.perf_counter() - self._t0
        if self._error is not None:
            return _result(self.backend, None, self._error, seconds, list(self.domains))
        return _result(self.backend, self._total, None, seconds, list(self.domains))

    def close(self) -> None:
        """Release backend resources (NVML/AMD SMI handles)."""


class NullMeter(EnergyMeter):
    """No counter available: results carry wall time, `joules` None and the reason."""

    backend = "none"

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason

    def _read(self) -> list[float]:
        return []

    def stop(self) -> dict:
        seconds = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        return _result(self.backend, None, self.reason, seconds, [])


def _import_optional(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MeterUnavailable(f"{name} not installed") from None


class NvmlMeter(EnergyMeter):
    backend = "nvml"

    def __init__(self, device_index: int = 0, poll_interval_s: float | None = None):
        super().__init__(poll_interval_s)
        pynvml = _import_optional("pynvml")
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise MeterUnavailable(f"nvmlInit failed: {exc}") from None
        self._nvml = pynvml
        try:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception as exc:  # noqa: BLE001 - index out of range, NotSupported (pre-Volta)
            self.close()
            raise MeterUnavailable(f"device {device_index}: total energy counter unreadable: {exc}") from None
        self.domains = [f"gpu{device_index}"]
        self._ranges = [None]  # 64-bit mJ counter: no wraparound in practice

    def _read(self) -> list[float]:
        return [self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3]

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


class AmdSmiMeter(EnergyMeter):
    backend = "amdsmi"

    def __init__(self, device_index: int = 0, poll_interval_s: float | None = None):
        super().__init__(poll_interval_s)
        amdsmi = _import_optional("amdsmi")
        try:
            amdsmi.amdsmi_init()
        except Exception as exc:  # noqa: BLE001
            raise MeterUnavailable(f"amdsmi_init failed: {exc}") from None
        self._amdsmi = amdsmi
        try:
            handles = amdsmi.amdsmi_get_processor_handles()
            if device_index >= len(handles):
                raise MeterUnavailable(f"device {device_index}: only {len(handles)} processors")
            self._handle = handles[device_index]
            self._read()
        except MeterUnavailable:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - NOT_SUPPORTED on VM guests, ...
            self.close()
            raise MeterUnavailable(f"device {device_index}: energy counter unreadable: {exc}") from None
        self.domains = [f"gpu{device_index}"]
        self._ranges = [None]  # 64-bit accumulator

    def _read(self) -> list[float]:
        info = self._amdsmi.amdsmi_get_energy_count(self._handle)
        # ROCm >= 6.1 names the accumulator "energy_accumulator"; 6.0 called it "power".
        acc = info.get("energy_accumulator", info.get("power"))
        if acc is None or "counter_resolution" not in info:
            raise MeterUnavailable(f"unexpected amdsmi_get_energy_count result keys {sorted(info)}")
        return [float(acc) * float(info["counter_resolution"]) / 1e6]  # resolution in uJ

    def close(self) -> None:
        try:
            self._amdsmi.amdsmi_shut_down()
        except Exception:  # noqa: BLE001
            pass


class RaplMeter(EnergyMeter):
    """Sum of the package domains `<root>/intel-rapl:N` (energy_uj, wrap at max_energy_range_uj).

    Strict: if any package domain's energy_uj (or its max_energy_range_uj) cannot be read, the
    meter is unavailable and the reason names the file; a partial sum over some sockets is never
    reported as the node's energy.
    """

    backend = "rapl"

    def __init__(self, root: str | os.PathLike = "/sys/class/powercap", poll_interval_s: float | None = 60.0):
        super().__init__(poll_interval_s)
        root = Path(root)
        if not root.is_dir():
            raise MeterUnavailable(f"{root} does not exist")
        zones = sorted(
            (p for p in root.iterdir() if _RAPL_ZONE.match(p.name)),
            key=lambda p: int(_RAPL_ZONE.match(p.name).group(1)),
        )
        self._files: list[Path] = []
        for zone in zones:
            try:
                name = (zone / "name").read_text().strip()
            except OSError:
                name = zone.name
            if not name.startswith("package"):
                continue  # psys / dram at top level: psys overlaps the packages
            try:
                span = int((zone / "max_energy_range_uj").read_text()) / 1e6
                int((zone / "energy_uj").read_text())
            except PermissionError as exc:
                raise MeterUnavailable(
                    f"permission denied: {exc.filename} (energy_uj is root-only since CVE-2020-8694)"
                ) from None
            except (OSError, ValueError) as exc:
                raise MeterUnavailable(f"{zone}: unreadable: {exc}") from None
            self._files.append(zone / "energy_uj")
            self._ranges.append(span)
            self.domains.append(f"{zone.name}/{name}")
        if not self._files:
            raise MeterUnavailable(f"no intel-rapl:N package domains under {root}")

    def _read(self) -> list[float]:
        return [int(f.read_text()) / 1e6 for f in self._files]


def detect_meter(
    device_index: int = 0,
    powercap_root: str | os.PathLike = "/sys/class/powercap",
    backends: tuple[str, ...] = ("nvml", "amdsmi", "rapl"),
    poll_interval_s: float | None = None,
) -> EnergyMeter:
    """The first readable meter among `backends`, else a `NullMeter` whose reason lists why each
    backend was unavailable. `poll_interval_s` None keeps each backend's default (60 s for RAPL,
    whose 32-bit-ish counters wrap after a few hundred kJ; no polling for the 64-bit GPU ones); 0 disables the polling thread (call `sample()` yourself)."""
    reasons = []
    for backend in backends:
        try:
            if backend == "nvml":
                return NvmlMeter(device_index, poll_interval_s)
            if backend == "amdsmi":
                return AmdSmiMeter(device_index, poll_interval_s)
            if backend == "rapl":
                if poll_interval_s is None:
                    return RaplMeter(powercap_root)
                return RaplMeter(powercap_root, poll_interval_s)
            reasons.append(f"{backend}: unknown backend")
        except MeterUnavailable as exc:
            reasons.append(f"{backend}: {exc}")
    return NullMeter("no energy counter readable: " + "; ".join(reasons))
