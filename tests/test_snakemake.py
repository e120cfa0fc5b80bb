"""The Snakefile itself: lint-clean, paper-scale DAG builds on a laptop, bad config stops with one line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BIN = str(Path(sys.executable).parent)


def snakemake(*args, cwd=REPO, timeout=120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([f"{BIN}/snakemake", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_tiny_dag_shape():
    proc = snakemake("-n", "--forceall", "--config", "scale=tiny")
    assert proc.returncode == 0, proc.stderr
    assert job_counts(proc.stdout) == {"all": 1, "prepare_corpus": 1, "train_tokenizer": 1, "tokenize_corpus": 1,
                                       "pretrain": 2, "evaluate_loss": 2, "loss_curves": 1}


def test_paper_dag_builds_without_a_cluster():
    proc = snakemake("-n", "--forceall", "--config", "scale=paper")
    assert proc.returncode == 0, proc.stderr
    counts = job_counts(proc.stdout)
    assert counts["pretrain"] == 4 and counts["evaluate_loss"] == 4
    assert "results/paper/matgpt/runs/llama_matgpt-6.7b/summary.json" in proc.stdout


@pytest.mark.parametrize("override,expected", [
    ("scale=huge", "ScaleDAG config: scale: 'huge' is not allowed; expected one of ['tiny', 'small', 'paper']"),
    ("logs=", "ScaleDAG config: logs: None has the wrong type; expected string"),
])
def test_bad_config_stops_before_any_job_with_one_line(override, expected, tmp_path):
    proc = snakemake("-n", "--config", override)
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.startswith("ScaleDAG")]
    assert lines == [expected]
    assert "Job stats" not in proc.stdout
