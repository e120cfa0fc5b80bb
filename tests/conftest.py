"""Shared fixtures: a tiny tokenized corpus built once per session, and the ../shared data rule."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workflow.hpc.launch import free_port
from workflow.model import megatron_cpu

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def require_shared(relative: str) -> Path:
    """Path under ../shared/data; skip with a reason when absent, except in CI where it must exist."""
    path = SHARED_DATA / relative
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {path} is missing: CI must run with ../shared beside the repo")
        pytest.skip(f"{path} not found (../shared/data is only guaranteed in CI)")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> dict:
    """Generated corpus -> BPE tokenizer -> Megatron .bin/.idx, small enough for unit tests."""
    from workflow.data.corpus import prepare_corpus
    from workflow.data.tokenize import encode_jsonl
    from workflow.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tiny_corpus")
    prepare_corpus(
        {
            "name": "unit",
            "generated": {"documents": 600, "seed": 3},
            "sources": None,
            "min_chars": 50,
            "valid_fraction": 0.1,
        },
        root,
    )
    train_tokenizer(root / "train.jsonl", root / "tokenizer.json", vocab_size=512)
    for split in ("train", "valid"):
        encode_jsonl(root / f"{split}.jsonl", root / "tokenizer.json", root / "tokens" / split)
    return {
        "root": root,
        "tokenizer": str(root / "tokenizer.json"),
        "train_prefix": str(root / "tokens" / "train"),
        "valid_prefix": str(root / "tokens" / "valid"),
    }


def make_run_spec(corpus: dict, out_dir: Path, arch: str = "llama", steps: int = 30, **train_overrides) -> dict:
    """A run spec for a ~100k-parameter model that trains `steps` iterations in seconds."""
    seq, gbs = 64, 8
    train = {
        "tokens": steps * gbs * seq,
        "micro_batch_size": 4,
        "global_batch_size": gbs,
        "lr": 3e-3,
        "min_lr_ratio": 0.1,
        "warmup_fraction": 0.1,
        "weight_decay": 0.1,
        "grad_clip": 1.0,
        "optimizer": "adamw",
        "seed": 7,
        "log_interval": 1,
        "eval_interval": 10,
        "eval_iters": 4,
        "save_interval": 10,
    }
    train.update(train_overrides)
    return {
        "run_id": f"test.{arch}",
        "study": "test",
        "run": arch,
        "arch": arch,
        "arch_overrides": {},
        "shape": {"layers": 2, "hidden": 64, "heads": 2, "seq_length": seq},
        "vocab_size": 512,
        "data": {k: corpus[k] for k in ("tokenizer", "train_prefix", "valid_prefix")},
        "train": train,
        "parallel": {"tp": 1, "pp": 1},
        "bf16": False,
        "threads": 1,
        "out_dir": str(out_dir),
    }


def module_env(env: dict | None = None) -> dict:
    """The environment a test's child `python -m ...` gets: ours, plus `env`."""
    full_env = dict(os.environ, TOKENIZERS_PARALLELISM="false", **(env or {}))
    # An in-process W&B test leaves WANDB_SERVICE set: a child would write through that shared,
    # longer-lived service, which keeps flushing a SIGKILLed child's run after the child is gone.
    full_env.pop("WANDB_SERVICE", None)
    return full_env


def run_module(
    module: str,
    args: list[str],
    env: dict | None = None,
    timeout: int = 300,
    check: bool = True,
    launcher: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `python -m module` the way a rule does; on failure show its output."""
    import tempfile

    full_env = module_env(env)
    cmd = (launcher or [sys.executable]) + ["-m", module, *args]
    # Files, not pipes: a process killed with SIGKILL may leave helper children (dist_checkpointing
    # workers) holding a pipe open, and waiting for its EOF would hang the test.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(cmd, cwd=REPO, env=full_env, stdout=out, stderr=err, timeout=timeout).returncode
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(cmd, code, out.read(), err.read())
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd[:3])} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def train_args(spec: dict) -> list[str]:
    """`workflow.train.pretrain`'s arguments for `spec`, written beside its run directory."""
    spec_path = Path(spec["out_dir"]).with_suffix(".spec.json")
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    return ["--spec-file", str(spec_path)]


def train_run(spec: dict, env: dict | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return run_module("workflow.train.pretrain", train_args(spec), env=env, check=check, **kw)


TRAINED_STEPS = 30


@pytest.fixture(scope="session")
def trained_run(tiny_corpus, tmp_path_factory) -> Path:
    """One uninterrupted tiny training run, shared by the training, evaluation and figure tests."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    train_run(make_run_spec(tiny_corpus, out, steps=TRAINED_STEPS))
    return out


@pytest.fixture(scope="module")
def megatron_dist():
    """gloo world of size 1 + Megatron parallel state (TP=PP=1); torn down after the module."""
    from megatron.core import parallel_state

    was_active = megatron_cpu.is_active()
    megatron_cpu.activate()
    own_pg = not torch.distributed.is_initialized()
    if own_pg:
        torch.distributed.init_process_group(
            backend="gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
        )
    own_mp = not parallel_state.model_parallel_is_initialized()
    if own_mp:
        parallel_state.initialize_model_parallel(1, 1)
    megatron_cpu.initialize_rng(1234)
    yield
    if own_mp:
        parallel_state.destroy_model_parallel()
    if own_pg:
        torch.distributed.destroy_process_group()
    if not was_active:
        megatron_cpu.deactivate()


# Snakemake from the test venv, and the per-rule job counts of its "Job stats" table.
BIN = str(Path(sys.executable).parent)


def snakemake(*args, cwd=REPO, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(
        [f"{BIN}/snakemake", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


# The suite's time budget is CI's: .ci/run gets 90 min (5,400 s) for setup and every test. The tiny
# DAG is the one heavy part and runs once; it may use whatever the budget leaves after the tests that
# ran before it, less a reserve for the integration tests that read its outputs (about 10 min with
# the Snakemake report). A machine twice as slow as ours then still finishes (10 min -> 20 min).
SUITE_BUDGET_S = float(os.environ.get("SCALEDAG_TEST_BUDGET_S", 5400))
AFTER_DAG_RESERVE_S = 900
SESSION_START = time.monotonic()


def dag_time_limit(now: float | None = None) -> float:
    """Seconds the tiny DAG may run: what the suite's budget leaves, never under 10 minutes."""
    elapsed = (time.monotonic() if now is None else now) - SESSION_START
    return max(600.0, SUITE_BUDGET_S - elapsed - AFTER_DAG_RESERVE_S)


def run_dag(work: Path, limit: float, *extra: str) -> tuple[int | None, str]:
    """Snakemake over `work` with its output in `work/snakemake.log`; on the limit, SIGINT (Snakemake
    then stops its jobs), SIGKILL a minute later. Returns (exit code or None on timeout, log tail)."""
    import signal

    log = work / "snakemake.log"
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                f"{BIN}/snakemake",
                "-s",
                str(REPO / "Snakefile"),
                "-d",
                str(work),
                "--configfile",
                str(REPO / "config.yaml"),
                *extra,
            ],
            cwd=work,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            code = None
    return code, log.read_text()[-4000:]


@pytest.fixture(scope="session")
def tiny_dag(tmp_path_factory):
    """The whole tiny DAG, run once per session in a temporary working directory.

    A failed or timed-out run reports how long each rule's jobs took and how many finished, so a
    slow machine is told apart from a broken rule."""
    from workflow.telemetry.job_times import stage_table

    work = tmp_path_factory.mktemp("tiny_dag")
    limit = dag_time_limit()
    t0 = time.monotonic()
    code, tail = run_dag(work, limit, "--cores", "2")
    wall = time.monotonic() - t0
    stages = stage_table(work / "results" / "tiny" / "benchmarks")
    (work / "stage_times.txt").write_text(f"tiny DAG: {wall:.0f} s wall (limit {limit:.0f} s)\n{stages}\n")
    if code is None:
        pytest.fail(
            f"tiny DAG stopped at its {limit:.0f} s limit (what the suite's {SUITE_BUDGET_S:.0f} s budget "
            f"left); finished jobs per rule:\n{stages}\n--- snakemake log ---\n{tail}"
        )
    assert code == 0, f"tiny DAG exited {code} after {wall:.0f} s; finished jobs per rule:\n{stages}\n{tail}"
    TINY_DAG_REPORTS.append(work / "stage_times.txt")
    return work


TINY_DAG_REPORTS: list[Path] = []


def pytest_terminal_summary(terminalreporter):
    """Show the tiny DAG's time per rule at the end of every run that built it."""
    for path in TINY_DAG_REPORTS:
        terminalreporter.write_sep("-", "tiny DAG stage times")
        terminalreporter.write_line(path.read_text().rstrip())
