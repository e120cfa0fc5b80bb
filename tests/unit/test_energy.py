import os
import sys

import pytest

from workflow.telemetry import energy
from workflow.telemetry.energy import NullMeter, RaplMeter, detect_meter, joules_per_token

MAX_RANGE_UJ = 262143328850


def _zone(root, index, name="package-0", energy_uj=0, max_uj=MAX_RANGE_UJ):
    zone = root / f"intel-rapl:{index}"
    zone.mkdir(parents=True)
    (zone / "name").write_text(name + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


def _set(zone, energy_uj):
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def no_gpu_libs(monkeypatch):
    # A None entry in sys.modules makes `import pynvml` raise ImportError.
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)


def test_rapl_two_packages_with_wraparound(tmp_path, no_gpu_libs):
    root = tmp_path / "powercap"
    p0 = _zone(root, 0, "package-0", energy_uj=1_000_000)
    p1 = _zone(root, 1, "package-1", energy_uj=MAX_RANGE_UJ - 2_000_000)  # about to wrap
    _zone(root / "intel-rapl:0", 0, "core", energy_uj=5)  # subzone intel-rapl:0:0 inside: ignored
    (root / "intel-rapl:0:0").mkdir()  # top-level subzone alias (a symlink on real systems): ignored
    _zone(root, 2, "psys", energy_uj=0)  # overlaps the packages: ignored

    meter = detect_meter(powercap_root=root, poll_interval_s=0)  # 0: no background thread
    assert isinstance(meter, RaplMeter)
    assert meter.domains == ["intel-rapl:0/package-0", "intel-rapl:1/package-1"]
    meter.start()
    _set(p0, 11_000_000)  # +10 J
    _set(p1, 3_000_000)  # wrapped: 2 J to the top, then 3 J -> +5 J
    result = meter.stop()
    assert result["backend"] == "rapl"
    assert result["reason"] is None
    assert result["joules"] == pytest.approx(15.0)
    assert result["seconds"] >= 0
    assert joules_per_token(result, 300) == pytest.approx(0.05)


def test_rapl_sample_accumulates_across_several_wraps(tmp_path):
    root = tmp_path / "powercap"
    p0 = _zone(root, 0, energy_uj=0, max_uj=10_000_000)  # 10 J range
    meter = RaplMeter(root, poll_interval_s=None)
    meter.start()
    for value in (8_000_000, 2_000_000, 9_000_000, 1_000_000):  # +8, +4 (wrap), +7, +2 (wrap)
        _set(p0, value)
        meter.sample()
    _set(p0, 3_000_000)  # +2
    assert meter.stop()["joules"] == pytest.approx(23.0)


def test_rapl_background_poll_thread(tmp_path):
    root = tmp_path / "powercap"
    p0 = _zone(root, 0, energy_uj=0)
    meter = RaplMeter(root, poll_interval_s=0.01)
    meter.start()
    _set(p0, 4_000_000)
    result = meter.stop()  # joins the thread
    assert result["joules"] == pytest.approx(4.0)
    assert meter._thread is None


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read chmod 000 files")
def test_rapl_unreadable_package_makes_rapl_unavailable(tmp_path, no_gpu_libs):
    """Documented behaviour: RAPL is all-or-nothing. If any package's energy_uj is unreadable
    the meter is unavailable (a partial sum over some sockets is never reported as measured)."""
    root = tmp_path / "powercap"
    _zone(root, 0, energy_uj=1)
    p1 = _zone(root, 1, "package-1", energy_uj=1)
    (p1 / "energy_uj").chmod(0)
    meter = detect_meter(powercap_root=root)
    assert isinstance(meter, NullMeter)
    assert "rapl: permission denied" in meter.reason
    assert "intel-rapl:1/energy_uj" in meter.reason


def test_rapl_permission_denied_is_a_reason(tmp_path, monkeypatch, no_gpu_libs):
    """Same as above but independent of the uid: simulate EACCES on one package's energy_uj."""
    root = tmp_path / "powercap"
    _zone(root, 0, energy_uj=1)
    p1 = _zone(root, 1, "package-1", energy_uj=1)
    real_read_text = type(p1).read_text

    def read_text(self, *a, **k):
        if self == p1 / "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *a, **k)

    monkeypatch.setattr(type(p1), "read_text", read_text)
    meter = detect_meter(powercap_root=root)
    assert isinstance(meter, NullMeter)
    assert "rapl: permission denied" in meter.reason and "intel-rapl:1/energy_uj" in meter.reason
    meter.start()
    result = meter.stop()
    assert result["joules"] is None and result["backend"] == "none"
    assert result["reason"] == meter.reason
    assert joules_per_token(result, 1000) is None


def test_rapl_read_failure_after_start_reports_reason(tmp_path):
    root = tmp_path / "powercap"
    p0 = _zone(root, 0, energy_uj=1)
    meter = RaplMeter(root, poll_interval_s=None)
    meter.start()
    (p0 / "energy_uj").unlink()
    result = meter.stop()
    assert result["joules"] is None
    assert result["reason"].startswith("read failed")


def test_missing_root_gives_null_meter_with_all_reasons(tmp_path, no_gpu_libs):
    meter = detect_meter(powercap_root=tmp_path / "nope")
    assert isinstance(meter, NullMeter)
    assert meter.reason.startswith("no energy counter readable: ")
    assert "nvml: pynvml not installed" in meter.reason
    assert "amdsmi: amdsmi not installed" in meter.reason
    assert f"rapl: {tmp_path / 'nope'} does not exist" in meter.reason
    meter.start()
    result = meter.stop()
    assert set(result) >= {"backend", "joules", "reason", "seconds"}
    assert result["joules"] is None and result["reason"] == meter.reason and result["seconds"] >= 0


def test_root_without_packages(tmp_path, no_gpu_libs):
    (tmp_path / "intel-rapl:0").mkdir()
    (tmp_path / "intel-rapl:0" / "name").write_text("psys\n")
    meter = detect_meter(powercap_root=tmp_path)
    assert "rapl: no intel-rapl:N package domains" in meter.reason


def test_gpu_backends_not_installed_reasons(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    with pytest.raises(energy.MeterUnavailable, match="pynvml not installed"):
        energy.NvmlMeter()
    with pytest.raises(energy.MeterUnavailable, match="amdsmi not installed"):
        energy.AmdSmiMeter()


class _FakeNvml:
    """Just enough of pynvml: a counter in mJ."""

    def __init__(self):
        self.mj = 1_000_000
        self.shutdown = False

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, i):
        if i != 0:
            raise RuntimeError("Invalid Argument")
        return "h0"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.mj

    def nvmlShutdown(self):
        self.shutdown = True


def test_nvml_meter_with_fake_module(monkeypatch):
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = detect_meter()
    assert meter.backend == "nvml"
    meter.start()
    fake.mj += 2500  # 2.5 J
    result = meter.stop()
    assert result == {**result, "backend": "nvml", "joules": pytest.approx(2.5), "reason": None, "domains": ["gpu0"]}
    reason = detect_meter(device_index=3, backends=("nvml",)).reason
    assert "nvml: device 3: total energy counter unreadable: Invalid Argument" in reason
    assert fake.shutdown


def test_amdsmi_meter_with_fake_module(monkeypatch):
    class FakeAmd:
        acc = 1000

        def amdsmi_init(self):
            pass

        def amdsmi_get_processor_handles(self):
            return ["gcd0", "gcd1"]

        def amdsmi_get_energy_count(self, h):
            return {"energy_accumulator": self.acc, "counter_resolution": 15.3, "timestamp": 0}

        def amdsmi_shut_down(self):
            pass

    fake = FakeAmd()
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", fake)
    meter = detect_meter(device_index=1)
    assert meter.backend == "amdsmi" and meter.domains == ["gpu1"]
    meter.start()
    fake.acc += 100_000  # x 15.3 uJ = 1.53 J
    assert meter.stop()["joules"] == pytest.approx(1.53)
    assert "only 2 processors" in detect_meter(device_index=2, backends=("amdsmi",)).reason


def test_joules_per_token_edge_cases():
    assert joules_per_token({"joules": None}, 10) is None
    assert joules_per_token({"joules": 5.0}, 0) is None
    assert joules_per_token({"joules": 5.0}, 10) == 0.5
