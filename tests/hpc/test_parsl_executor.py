"""The Parsl executor plugin: placement of jobs on executors, and real Snakemake runs through Parsl."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from parsl.executors import HighThroughputExecutor, MPIExecutor
from parsl.launchers import SimpleLauncher
from parsl.providers import LocalProvider, SlurmProvider

from snakemake_executor_plugin_parsl.placement import Needs, Slot, choose_slot

BIN = Path(sys.executable).parent


def run_snakemake(args, cwd, env=None, timeout=300, inherit=True) -> subprocess.CompletedProcess:
    """Snakemake under a timeout that sends SIGINT first (it then cancels its jobs), SIGKILL later.
    `env` adds to this process's environment, or replaces it with inherit=False."""
    full_env = dict(os.environ if inherit else {}, **(env or {}))
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), *args],
        cwd=cwd,
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        raise AssertionError(
            f"snakemake {' '.join(args[:4])} timed out after {timeout}s:\n{out[-3000:]}\n{err[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def default_sigint():
    """A shell starting pytest in the background ignores SIGINT, and children inherit that: undo it
    so the timeout's SIGINT reaches Snakemake as Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def slots():
    return [
        Slot.from_executor(HighThroughputExecutor(label="core", cores_per_worker=1, provider=LocalProvider())),
        Slot.from_executor(
            HighThroughputExecutor(label="gcd", cores_per_worker=7, available_accelerators=8, provider=LocalProvider())
        ),
        Slot.from_executor(
            HighThroughputExecutor(label="fat", cores_per_worker=56, mem_per_worker=400, provider=LocalProvider())
        ),
        Slot.from_executor(
            MPIExecutor(
                label="mpi",
                mpi_launcher="srun",
                provider=SlurmProvider(
                    nodes_per_block=16, cores_per_node=56, gpus_per_node=8, launcher=SimpleLauncher()
                ),
            )
        ),
    ]


@pytest.mark.parametrize(
    "needs,label",
    [
        (Needs(1, None, 0, 1, 1), "core"),  # smallest worker that fits
        (Needs(4, None, 0, 1, 1), "fat"),  # CPU jobs leave the GPU workers free
        (Needs(7, 8000, 1, 1, 1), "gcd"),  # one GPU: a one-GCD worker
        (Needs(56, 300_000, 0, 1, 1), "fat"),
        (Needs(7, None, 128, 16, 128), "mpi"),  # 16 nodes x 8 ranks, one GCD each
        (Needs(7, None, 0, 1, 8), "mpi"),  # several ranks on one node: MPI mode too
    ],
)
def test_jobs_go_to_the_smallest_executor_that_fits(needs, label):
    assert choose_slot(slots(), needs).label == label


@pytest.mark.parametrize(
    "needs", [Needs(64, None, 0, 1, 1), Needs(1, None, 2, 1, 1), Needs(7, None, 0, 32, 256), Needs(8, None, 0, 2, 16)]
)
def test_jobs_no_executor_can_hold_are_refused(needs):
    assert choose_slot(slots(), needs) is None


def test_memory_is_checked_where_an_executor_declares_it():
    fat = [s for s in slots() if s.label == "fat"]
    assert choose_slot(fat, Needs(1, 400 * 1024, 0, 1, 1)).label == "fat"
    assert choose_slot(fat, Needs(1, 401 * 1024, 0, 1, 1)) is None


SNAKEFILE = textwrap.dedent("""
    rule all:
        input: "a.txt", "b.txt"

    rule a:
        output: "a.txt"
        shell: "echo a > {output}"

    rule b:
        output: "b.txt"
        threads: 2
        resources: mem_mb=100
        shell: "echo {threads} > {output}"

    rule broken:
        output: "c.txt"
        log: "logs/broken.log"
        shell: "echo 'tokenizer exploded on line 7' > {log}; exit 3"
""")


# Real Parsl, without pilot processes: the plugin's submit/poll/fail protocol is tested here; the
# HighThroughputExecutor with pilot jobs (SlurmProvider) in tests/hpc/test_slurm.py.
THREADS_CONFIG = """
from parsl.config import Config
from parsl.executors import ThreadPoolExecutor
config = Config(executors=[ThreadPoolExecutor(label="threads", max_threads=2)], usage_tracking=0)
"""


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    work = tmp_path_factory.mktemp("parsl_flow")
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "threads.py").write_text(THREADS_CONFIG)
    return work


def test_jobs_run_as_parsl_tasks(flow):
    proc = run_snakemake(["--executor", "parsl", "--parsl-config", "threads.py", "--jobs", "2"], cwd=flow)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (flow / "a.txt").exists() and (flow / "b.txt").read_text().strip() == "2"
    assert "Parsl executors: threads:" in proc.stderr
    assert len(list((flow / ".snakemake/parsl_logs").glob("*/*.log"))) == 2  # one Parsl task per job
    assert list((flow / ".snakemake/parsl").glob("*/parsl.log"))


def test_a_failed_job_is_reported_failed_with_its_log(flow):
    proc = run_snakemake(
        ["--executor", "parsl", "--parsl-config", "threads.py", "--jobs", "1", "--show-failed-logs", "c.txt"], cwd=flow
    )
    assert proc.returncode != 0
    assert "Error in rule broken" in proc.stderr
    assert "tokenizer exploded on line 7" in proc.stderr  # the rule's log, shown
    assert "parsl_logs/broken/" in proc.stderr  # and the task's own log path


def test_a_bad_parsl_config_is_one_clear_error(tmp_path, flow):
    bad = tmp_path / "bad.py"
    bad.write_text("config = 42\n")
    proc = run_snakemake(["--executor", "parsl", "--parsl-config", str(bad), "--jobs", "1", "-F", "a.txt"], cwd=flow)
    assert proc.returncode != 0
    assert f"--parsl-config: {bad} must define `config`, a parsl.config.Config" in proc.stderr
