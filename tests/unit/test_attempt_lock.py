"""One attempt of a run at a time: a retry waits for the attempt it replaces to exit.

The holder is a real second process (POSIX locks are per process), as it is when Slurm starts the
retry while the cancelled attempt's training process still runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workflow.train.pretrain import ATTEMPT_LOCK, EXIT_RESUME, _StopFlag, hold_attempt_lock

HOLDER = """
import fcntl, os, sys, time
fh = open(sys.argv[1], "a+")
fcntl.lockf(fh, fcntl.LOCK_EX)
fh.truncate(0); fh.write(f"pid {os.getpid()} on test\\n"); fh.flush()
print("locked", flush=True)
sys.stdin.readline()  # hold until the test writes a line (or closes stdin)
"""


def start_holder(path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_retry_waits_for_the_live_attempt_then_holds_the_run(tmp_path):
    holder = start_holder(tmp_path / ATTEMPT_LOCK)
    said = []

    def say(msg):
        said.append(msg)
        if "still holds" in msg:
            holder.stdin.write("exit\n")  # the old attempt finishes only once the retry is waiting
            holder.stdin.flush()

    fh = hold_attempt_lock(tmp_path, _StopFlag(), say, poll_s=0.02)
    try:
        assert holder.poll() is not None  # acquired only after the other process had exited
        assert f"pid {holder.pid} on test" in said[0] and str(tmp_path / ATTEMPT_LOCK) in said[0]
        assert said[-1].startswith("the other attempt has exited")
        # Read by another process: this one closing a descriptor of the file would drop its own lock.
        second = start_holder_nonblocking(tmp_path / ATTEMPT_LOCK)
        assert second.returncode == 1, second.stderr  # held now: another process cannot take it
        assert second.stdout.startswith("pid ")  # names its holder
    finally:
        fh.close()
    assert start_holder_nonblocking(tmp_path / ATTEMPT_LOCK).returncode == 0  # released on close


def start_holder_nonblocking(path):
    code = (
        "import fcntl, sys\nfh = open(sys.argv[1], 'a+')\ntry:\n    fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except OSError:\n    print(open(sys.argv[1]).read())\n    sys.exit(1)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)


def test_a_signal_while_waiting_exits_to_be_resumed(tmp_path):
    holder = start_holder(tmp_path / ATTEMPT_LOCK)
    stop = _StopFlag()
    stop.signum = 15  # SIGTERM arrived while the retry waited
    said = []
    try:
        with pytest.raises(SystemExit) as exc:
            hold_attempt_lock(tmp_path, stop, said.append, poll_s=0.02)
        assert exc.value.code == EXIT_RESUME
        assert said[-1] == f"signal 15 while waiting for {tmp_path / ATTEMPT_LOCK}: exit {EXIT_RESUME} to resume"
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_no_other_attempt_means_no_wait(tmp_path):
    said = []
    fh = hold_attempt_lock(tmp_path / "new" / "run", _StopFlag(), said.append)
    fh.close()
    assert said == []
