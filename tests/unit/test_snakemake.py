"""The Snakefile itself: lint-clean, paper-scale DAG builds on a laptop, bad config stops with one line."""

from __future__ import annotations

import pytest

from conftest import job_counts, snakemake


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_tiny_dag_shape():
    proc = snakemake("-n", "--forceall", "--config", "scale=tiny")
    assert proc.returncode == 0, proc.stderr
    counts = job_counts(proc.stdout)
    # Each stage's own tests check its rules' counts; here only the core pipeline's share of the DAG.
    assert counts["all"] == 1 and counts["train_tokenizer"] >= 1 and counts["pretrain"] >= 2
    assert "results/tiny/matgpt/runs/llama_tiny-1m/summary.json" in proc.stdout
    assert "results/tiny/matgpt/figures/loss_curves.png" in proc.stdout


def test_paper_dag_builds_without_a_cluster():
    proc = snakemake("-n", "--forceall", "--config", "scale=paper")
    assert proc.returncode == 0, proc.stderr
    counts = job_counts(proc.stdout)
    assert counts["pretrain"] >= 4 and counts["evaluate_loss"] >= 4
    assert "results/paper/matgpt/runs/llama_matgpt-6.7b/summary.json" in proc.stdout


@pytest.mark.parametrize(
    "override,expected",
    [
        (
            "scale=huge",
            "ScaleDAG config: scale: 'huge' is not allowed; expected one of ['tiny', 'mini', 'small', 'paper']",
        ),
        ("logs=", "ScaleDAG config: logs: None has the wrong type; expected string"),
    ],
)
def test_bad_config_stops_before_any_job_with_one_line(override, expected, tmp_path):
    proc = snakemake("-n", "--config", override)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ScaleDAG")]
    assert lines == [expected]
    assert "Job stats" not in proc.stdout
