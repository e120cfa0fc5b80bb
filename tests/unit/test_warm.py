"""workflow.warm: the same command runs cold or warm with the same argv, cwd, env, output and exit
status; a killed client takes its job with it; a job the server cannot run faithfully runs cold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workflow import warm

PROBE = """
import json, os, sys, time
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "x": os.environ.get("PROBE_X"),
                  "pid": os.getpid(), "torch_preloaded": "torch" in sys.modules, "name": __name__}), flush=True)
print("to stderr", file=sys.stderr)
if "pidfile" in sys.argv:
    open("child.pid", "w").write(str(os.getpid()))
if "sleep" in sys.argv:
    time.sleep(60)
if "raise" in sys.argv:
    raise ValueError("probe failed")
sys.exit(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logs = tmp_path_factory.mktemp("warm-logs")
    proc, value = warm.start(str(logs))
    env = dict(os.environ, **{warm.ENV: value})  # the server's own environment, as a job's would be
    # the preload takes seconds; wait until the server says it is ready (or gave up)
    deadline = time.time() + 180
    while time.time() < deadline and "ready" not in (logs / "warm.log").read_text() and proc.poll() is None:
        time.sleep(0.2)
    assert "ready" in (logs / "warm.log").read_text(), (logs / "warm.log").read_text()[-2000:]
    yield env, logs / "warm.log"
    warm.stop(proc)
    assert proc.poll() is not None
    assert not Path(value.partition(":")[2]).parent.exists()  # the socket and its directory go with the server


def client(tmp_path, env, *args, **kwargs):
    (tmp_path / "probe_mod.py").write_text(PROBE)  # importable from the job's cwd, as `python -m` finds it
    return subprocess.run(
        [sys.executable, "-m", "workflow.warm", "-m", "probe_mod", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_without_a_server_the_command_is_plain_python(tmp_path):
    import json

    env = {k: v for k, v in os.environ.items() if k != warm.ENV}
    proc = client(tmp_path, dict(env, PROBE_X="1"), "a", "3")
    assert proc.returncode == 3 and "to stderr" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["argv"] == ["a", "3"] and out["x"] == "1" and out["name"] == "__main__"
    assert not out["torch_preloaded"] and out["cwd"] == str(tmp_path)


def test_warm_job_gets_the_clients_argv_cwd_env_streams_and_status(tmp_path, server):
    import json

    env, _ = server
    proc = client(tmp_path, dict(env, PROBE_X="2"), "b", "5")
    assert proc.returncode == 5 and "to stderr" in proc.stderr
    out = json.loads(proc.stdout)
    assert out["torch_preloaded"]  # forked from the server: torch was imported before the job began
    assert out["argv"] == ["b", "5"] and out["x"] == "2" and out["cwd"] == str(tmp_path) and out["name"] == "__main__"
    failed = client(tmp_path, env, "raise")
    assert failed.returncode == 1 and "ValueError: probe failed" in failed.stderr


def test_a_job_whose_import_time_environment_differs_runs_cold(tmp_path, server):
    import json

    env, log = server
    proc = client(tmp_path, dict(env, HF_HUB_OFFLINE="1"), "c")
    assert proc.returncode == 0 and not json.loads(proc.stdout)["torch_preloaded"]
    assert "HF_HUB_OFFLINE differ from the warm server's" in log.read_text()


def _sleeping_job(tmp_path, env) -> tuple[subprocess.Popen, int]:
    """A warm job that sleeps: its client's Popen and the job's own pid (which it writes)."""
    (tmp_path / "probe_mod.py").write_text(PROBE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflow.warm", "-m", "probe_mod", "pidfile", "sleep"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pidfile = tmp_path / "child.pid"
    deadline = time.time() + 60
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:  # written, not just made
        time.sleep(0.1)
    return proc, int(pidfile.read_text())


def test_a_killed_client_takes_its_job_with_it(tmp_path, server):
    proc, child = _sleeping_job(tmp_path, server[0])
    assert child != proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_sigterm_reaches_the_job_and_is_its_exit_status(tmp_path, server):
    proc, _ = _sleeping_job(tmp_path, server[0])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_launcher_ranks_and_other_hosts_never_use_the_server():
    host = __import__("socket").gethostname()
    assert warm._server_address({warm.ENV: f"{host}:/tmp/s"}) == "/tmp/s"
    assert warm._server_address({warm.ENV: "another-node:/tmp/s"}) is None
    assert warm._server_address({warm.ENV: f"{host}:/tmp/s", "SLURM_STEP_ID": "0"}) is None
    assert warm._server_address({}) is None


def test_offline_env_sets_the_flags_preloaded_hub_modules_read_at_import(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    from workflow.evaluate.zeroshot import offline_env

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"):
        monkeypatch.setenv(key, "0")  # recorded, so the values offline_env() sets are undone after the test
    offline_env()
    assert huggingface_hub.constants.is_offline_mode() and datasets.config.HF_HUB_OFFLINE
    assert os.environ["HF_HUB_OFFLINE"] == "1"
