"""A tiny subset of the DAG (data stages + two pretrain runs) on a real one-node Slurm cluster:
through `--profile profiles/slurm` and through `--executor parsl` with a SlurmProvider.

Needs root (tests/slurm/start.sh installs and starts munged, slurmctld and slurmd); skipped otherwise.
Checks that jobs really went through sbatch, that a job killed with scancel is retried, that Parsl
blocks scale out and back in, that Ctrl-C cancels pilot jobs, and that outputs equal a local run."""

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO
from test_parsl_executor import BIN, default_sigint, run_snakemake

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="needs root: tests/slurm/start.sh installs and starts munged, "
        "slurmctld and slurmd for a one-node Slurm cluster",
    ),
]

SLURM_DIR = Path(os.environ.get("SCALEDAG_SLURM_DIR", "/tmp/scaledag-slurm"))
SUBSET = REPO / "tests" / "slurm" / "subset.yaml"
RUNS = ["gpt-neox_tiny-1m", "llama_tiny-1m"]
TARGETS = [f"results/tiny/matgpt/runs/{run}/summary.json" for run in RUNS]
# The slurm profile as this cluster needs it (tests/slurm/status_args, shared with
# benchmarks/hpc_executors.py): no slurmdbd here, so sacct cannot answer and squeue can
# (MinJobAge=600); status checks every 2 s, not the profile's 20 s, for short test jobs.
SLURM_PROFILE = ["--profile", str(REPO / "profiles/slurm"), *(REPO / "tests/slurm/status_args").read_text().split()]
# Outputs compared byte for byte with the local run; metrics are compared on their losses (the
# rows also carry tokens/s, which differ run to run).
SAME_FILES = [
    "results/tiny/data/synthetic/train.jsonl",
    "results/tiny/data/synthetic/tokenizer.json",
    *(f"results/tiny/data/synthetic/tokens/{s}.{e}" for s in ("train", "valid") for e in ("bin", "idx")),
]


def common_args(work: Path) -> list[str]:
    return [
        *TARGETS,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(work),
        "--configfile",
        str(REPO / "config.yaml"),
        str(SUBSET),
    ]


@pytest.fixture(scope="module")
def cluster():
    """The one-node cluster: reused when already up, else started here and stopped afterwards."""
    env = dict(os.environ, SCALEDAG_SLURM_DIR=str(SLURM_DIR))
    pid = SLURM_DIR / "slurmctld.pid"
    was_up = pid.exists() and subprocess.run(["kill", "-0", pid.read_text().strip()]).returncode == 0
    proc = subprocess.run(
        ["bash", str(REPO / "tests/slurm/start.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    conf = re.search(r"export SLURM_CONF=(\S+)", proc.stdout).group(1)
    yield {"SLURM_CONF": conf}
    if not was_up:
        subprocess.run(["bash", str(REPO / "tests/slurm/stop.sh")], env=env, timeout=60)


def squeue(cluster, fmt: str, *args) -> list[list[str]]:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", fmt, *args],
        env=dict(os.environ, **cluster),
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def losses(work: Path, run: str) -> list:
    rows = (
        json.loads(line) for line in (work / f"results/tiny/matgpt/runs/{run}/metrics.jsonl").read_text().splitlines()
    )
    return [(r["kind"], r["step"], r["loss"]) for r in rows]


def assert_same_outputs(work: Path, reference: Path):
    for rel in SAME_FILES:
        assert (work / rel).read_bytes() == (reference / rel).read_bytes(), rel
    for run in RUNS:
        assert losses(work, run) == losses(reference, run), run


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("local")
    proc = run_snakemake([*common_args(work), "--cores", "2", "--max-threads", "1"], cwd=work, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


class Watcher(threading.Thread):
    """Polls squeue while a workflow runs: cancels one running job once (the first whose Slurm comment
    contains `cancel`, once `after` = (log file, text) shows that text, i.e. mid-training), and records
    how many Parsl pilot jobs ran at the same time."""

    def __init__(self, cluster, cancel=None, after=None):
        super().__init__(daemon=True)
        self.cluster, self.cancel, self.after = cluster, cancel, after
        self.cancelled, self.max_pilots, self.stop = None, 0, threading.Event()

    def _ready(self) -> bool:
        if self.after is None:
            return True
        path, text = self.after
        return path.exists() and text in path.read_text(errors="replace")

    def run(self):
        while not self.stop.wait(0.3):
            rows = squeue(self.cluster, "%i|%j|%T|%k")
            pilots = [r for r in rows if r[1].startswith("parsl.") and r[2] == "RUNNING"]
            self.max_pilots = max(self.max_pilots, len(pilots))
            if self.cancel and self.cancelled is None and self._ready():
                for jobid, _, state, comment in rows:
                    if state == "RUNNING" and self.cancel in comment:
                        subprocess.run(["scancel", jobid], env=dict(os.environ, **self.cluster), timeout=30)
                        self.cancelled = jobid
                        break


def test_subset_through_the_slurm_profile_with_a_cancelled_job_retried(cluster, reference, tmp_path):
    # Cancelled after its second step: the retry must resume from the checkpoint the SIGTERM wrote
    # (save_interval is 4, so that one comes from the signal) and still equal the local run.
    run = "llama_tiny-1m"
    log_file = tmp_path / f"logs/tiny/pretrain/matgpt/{run}.log"
    watcher = Watcher(cluster, cancel=f"rule_pretrain_wildcards_matgpt_{run}", after=(log_file, "step 2/12"))
    watcher.start()
    try:
        proc = run_snakemake(
            [
                *common_args(tmp_path),
                *SLURM_PROFILE,
                "--jobs",
                "4",
                "--default-resources",
                "mem_mb=500",
                "runtime=30",
                "nodes=1",
            ],
            cwd=tmp_path,
            env=cluster,
            timeout=420,
        )
    finally:
        watcher.stop.set()
        watcher.join()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    jobids = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(jobids) >= 6, log[-3000:]  # 5 rule jobs + the resubmitted pretrain
    states = {jobid: state for jobid, state in squeue(cluster, "%i|%T", "-j", ",".join(jobids))}
    assert set(states) == set(jobids)  # sbatch really ran: slurmctld knows every job
    assert watcher.cancelled in states and states[watcher.cancelled] == "CANCELLED"
    assert sum(s == "COMPLETED" for s in states.values()) == len(jobids) - 1
    assert "Trying to restart job" in log
    assert "resumed from checkpoint at iteration" in log_file.read_text(errors="replace")
    assert_same_outputs(tmp_path, reference)


def test_subset_through_the_parsl_executor_with_elastic_slurm_blocks(cluster, reference, tmp_path):
    first_job = max([int(r[0]) for r in squeue(cluster, "%i")] or [0])
    watcher = Watcher(cluster)
    watcher.start()
    try:
        proc = run_snakemake(
            [
                *common_args(tmp_path),
                "--executor",
                "parsl",
                "--parsl-config",
                str(REPO / "profiles/parsl/slurm.py"),
                "--jobs",
                "4",
                "--max-threads",
                "1",
                "--parsl-max-idletime",
                "5",
            ],
            cwd=tmp_path,
            timeout=420,
            env={
                **cluster,
                "SCALEDAG_PARSL_CORES": "1",
                "SCALEDAG_PARSL_MAX_BLOCKS": "2",
                "SCALEDAG_PARSL_MEM_GB": "1",
            },
        )
    finally:
        watcher.stop.set()
        watcher.join()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    pilots = [r for r in squeue(cluster, "%i|%j|%T") if int(r[0]) > first_job and r[1].startswith("parsl.core.block")]
    assert len(pilots) >= 2  # pilot jobs went through sbatch
    assert watcher.max_pilots >= 2  # two blocks at once for the two pretrain runs
    assert all(state in ("COMPLETED", "CANCELLED") for _, _, state in pilots)
    parsl_log = "".join(p.read_text() for p in (tmp_path / ".snakemake/parsl").glob("*/parsl.log"))
    launched = set(re.findall(r"Launched block (\d+)", parsl_log))
    assert launched and set(re.findall(r"Marking block (\d+) as SCALED_IN", parsl_log)) >= launched  # all back in
    assert_same_outputs(tmp_path, reference)


def test_ctrl_c_cancels_the_parsl_pilot_jobs(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text('rule slow:\n    output: "slow.txt"\n    shell: "sleep 300; touch {output}"\n')
    env = dict(os.environ, **cluster, SCALEDAG_PARSL_CORES="1", SCALEDAG_PARSL_MAX_BLOCKS="1")
    first_job = max([int(r[0]) for r in squeue(cluster, "%i")] or [0])
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    log = tmp_path / "snakemake.log"  # a file, not a pipe: a leftover child could hold a pipe open
    proc = subprocess.Popen(
        [
            str(BIN / "snakemake"),
            "--executor",
            "parsl",
            "--parsl-config",
            str(REPO / "profiles/parsl/slurm.py"),
            "--jobs",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            running = [r for r in squeue(cluster, "%i|%j|%T") if int(r[0]) > first_job and r[2] == "RUNNING"]
            if running and (tmp_path / ".snakemake/parsl_logs/slow").exists():
                break
            time.sleep(0.5)
        assert running, "the pilot job never started"
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.time() + 60  # COMPLETING: slurmd is still ending the cancelled job's processes
    while True:
        states = {r[0]: r[2] for r in squeue(cluster, "%i|%j|%T") if int(r[0]) > first_job}
        if time.time() > deadline or not any(s == "COMPLETING" for s in states.values()):
            break
        time.sleep(1)
    assert states and all(s in ("CANCELLED", "COMPLETED") for s in states.values()), (states, log.read_text()[-3000:])
    assert not (tmp_path / "slow.txt").exists()


def test_a_rule_without_cluster_resources_runs_in_the_jobsteps_srun(cluster, tmp_path):
    # Rules that take no `dag.resources` (tables, figures, zero-shot prep) have no `mpi` resource,
    # so the jobstep plugin wraps them in `srun` with SLURM_CONF removed: srun must still find the
    # cluster (start.sh links its slurm.conf at the default path, as a real cluster has it).
    (tmp_path / "Snakefile").write_text(
        'rule step:\n    output: "step.txt"\n    shell: "echo $SLURM_JOB_ID $SLURM_STEP_ID > {output}"\n'
    )
    proc = run_snakemake(
        [
            *SLURM_PROFILE,
            "--default-resources",
            "mem_mb=200",
            "runtime=5",
        ],
        cwd=tmp_path,
        env=cluster,
        timeout=180,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    job, step = (tmp_path / "step.txt").read_text().split()
    assert re.search(rf"submitted with SLURM jobid {job}\b", proc.stdout + proc.stderr)
    assert step.isdigit()  # an srun job step, not the batch script itself
