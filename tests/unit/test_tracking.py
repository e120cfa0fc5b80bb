import logging
import sys
from pathlib import Path

import pytest

from wandb_offline import read_offline_run
from workflow.telemetry.tracking import Tracker, sanitize_run_id

pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_API_KEY", "")  # never pick up a real key


def _child_commands() -> list[str]:
    """The command names of this process's child processes (Linux /proc). A thread or child that
    exits between the listing and the read is skipped: it is gone, so it is no child now."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for pid in pids:
            try:
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            except FileNotFoundError:
                continue
    return names


def test_offline_run_writes_metrics_config_summary(tmp_path):
    config = {"lr": 0.001, "shape": {"layers": 2, "hidden": 64}, "arch": "gpt"}
    tracker = Tracker("tiny.demo.gpt_s0", "demo", config, tmp_path / "runs" / "gpt_s0")
    assert tracker.enabled and tracker.mode == "offline", tracker.disabled_reason
    for step in (1, 2, 3):
        tracker.log({"train/loss": 5.0 - step, "tokens": 1024 * step}, step=step)
    tracker.summary({"final_loss": 2.0, "energy": {"joules_per_token": 0.5, "domains": ["package-0"]}})
    run_dir = tracker.run_dir
    assert "wandb-core" in _child_commands()
    tracker.finish()
    assert not tracker.enabled
    # the service that writes the file has exited: run.finish alone leaves it running, still
    # closing the file after finish returned (a reader could find it without its run record)
    assert "wandb-core" not in _child_commands()
    tracker.log({"late": 1}, step=4)  # no-op after finish, no error

    offline = list((tmp_path / "runs" / "gpt_s0" / "wandb").glob("offline-run-*"))
    assert offline == [run_dir]
    data_file = run_dir / f"run-{sanitize_run_id('tiny.demo.gpt_s0')}.wandb"
    assert data_file.stat().st_size > 0

    run = read_offline_run(run_dir)  # at once: finish() returns only when the file is closed
    assert run["complete"], f"{data_file} ({data_file.stat().st_size} B) lacks its exit record: {run['records']}"
    assert run["name"] == "tiny.demo.gpt_s0" and run["group"] == "demo"
    assert run["config"] == config
    rows = [{k: v for k, v in row.items() if not k.startswith("_") or k == "_step"} for row in run["history"]]
    assert rows == [{"train/loss": 5.0 - s, "tokens": 1024 * s, "_step": s} for s in (1, 2, 3)]
    assert run["summary"]["final_loss"] == 2.0
    assert run["summary"]["energy/joules_per_token"] == 0.5 and "energy/domains" not in run["summary"]


def test_init_failure_disables_and_warns_once(tmp_path, monkeypatch, caplog):
    import wandb

    def boom(**kwargs):
        raise RuntimeError("service could not start\nsecond line")

    monkeypatch.setattr(wandb, "init", boom)
    with caplog.at_level(logging.WARNING, logger="workflow.telemetry.tracking"):
        tracker = Tracker("tiny.demo.r", "demo", {"a": 1}, tmp_path)
        tracker.log({"loss": 1.0}, step=1)
        tracker.summary({"x": 1})
        tracker.finish()
    assert not tracker.enabled
    assert tracker.disabled_reason.startswith("wandb.init failed: RuntimeError")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "training continues" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()


def test_log_failure_disables_without_raising(tmp_path, monkeypatch, caplog):
    class FakeRun:
        dir = str(tmp_path / "files")
        finished = []

        def log(self, *a, **k):
            raise OSError("disk full")

        def finish(self, exit_code=None, quiet=None):
            self.finished.append(exit_code)

    import wandb

    monkeypatch.setattr(wandb, "init", lambda **kwargs: FakeRun())
    with caplog.at_level(logging.WARNING, logger="workflow.telemetry.tracking"):
        tracker = Tracker("tiny.demo.r", "demo", {}, tmp_path)
        assert tracker.enabled
        tracker.log({"loss": 1.0}, step=1)
        tracker.log({"loss": 1.0}, step=2)
        tracker.finish()
    assert not tracker.enabled and "wandb.log failed: OSError: disk full" in tracker.disabled_reason
    assert FakeRun.finished == [1]  # best-effort close of the broken run, once
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


def test_missing_wandb_disables(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with caplog.at_level(logging.WARNING, logger="workflow.telemetry.tracking"):
        tracker = Tracker("tiny.demo.r", "demo", {}, tmp_path)
    assert not tracker.enabled and tracker.disabled_reason.startswith("import wandb failed")


def test_only_rank_zero_and_disabled_modes(tmp_path, monkeypatch):
    import wandb

    def fail(**kwargs):
        raise AssertionError("wandb.init must not be called")

    monkeypatch.setattr(wandb, "init", fail)
    assert not Tracker("r", "g", {}, tmp_path, rank=1).enabled
    monkeypatch.setenv("RANK", "3")
    assert not Tracker("r", "g", {}, tmp_path).enabled
    monkeypatch.setenv("RANK", "0")
    assert not Tracker("r", "g", {}, tmp_path, enabled=False).enabled
    assert not Tracker("r", "g", {}, tmp_path, mode="disabled").enabled
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert not Tracker("r", "g", {}, tmp_path).enabled
    assert not list(tmp_path.iterdir())  # nothing written


def test_mode_from_env_and_id_sanitising(tmp_path, monkeypatch):
    import wandb

    seen = {}

    class FakeRun:
        dir = str(tmp_path)

        def finish(self, exit_code=None, quiet=None):
            pass

    monkeypatch.setattr(wandb, "init", lambda **kwargs: seen.update(kwargs) or FakeRun())
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "proj")
    Tracker("paper.study/x.gpt s:1", "study", {"k": 1}, tmp_path).finish()
    assert seen["mode"] == "online" and seen["project"] == "proj"
    assert seen["name"] == "paper.study/x.gpt s:1" and seen["id"] == "paper.study-x.gpt-s-1"
    assert seen["resume"] == "allow" and seen["group"] == "study" and seen["config"] == {"k": 1}
    assert seen["dir"] == str(tmp_path)
    long_id = sanitize_run_id("x" * 100)
    assert len(long_id) == 64 and long_id == sanitize_run_id("x" * 100) != sanitize_run_id("x" * 101)
