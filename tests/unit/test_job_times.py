"""Per-rule job times from benchmark TSVs, and the tiny-DAG fixture's time limit."""

from __future__ import annotations

import conftest
from workflow.telemetry.job_times import rule_jobs, stage_table

HEADER = "s\th:m:s\tmax_rss\tmax_vms\n"


def test_rule_jobs_and_stage_table_read_benchmark_tsvs(tmp_path):
    root = tmp_path / "benchmarks"
    (root / "pretrain" / "matgpt").mkdir(parents=True)
    (root / "pretrain" / "matgpt" / "llama.tsv").write_text(HEADER + "30.5\t0:00:30\t812.1\t900\n")
    (root / "pretrain" / "matgpt" / "neox.tsv").write_text(HEADER + "29.5\t0:00:29\tNA\t900\n")
    (root / "evaluate_loss").mkdir()
    (root / "evaluate_loss" / "llama.tsv").write_text(HEADER + "5\t0:00:05\t300\t400\n")
    (root / "evaluate_loss" / "empty.tsv").write_text(HEADER)  # a job killed while writing: skipped
    jobs = rule_jobs(root)
    assert sorted(j["job"] for j in jobs["pretrain"]) == ["matgpt/llama", "matgpt/neox"]
    assert [j["max_rss_mb"] for j in jobs["pretrain"]] == [812.1, None]
    lines = stage_table(root).splitlines()
    assert lines[1].split() == ["pretrain", "2", "60.0", "30.0"]  # slowest rule first
    assert lines[2].split() == ["evaluate_loss", "1", "5.0", "5.0"]
    assert lines[-1].split() == ["total", "3", "65.0"]


def test_dag_limit_is_what_the_suite_budget_leaves():
    start, budget, reserve = conftest.SESSION_START, conftest.SUITE_BUDGET_S, conftest.AFTER_DAG_RESERVE_S
    assert conftest.dag_time_limit(start + 100) == budget - 100 - reserve
    assert conftest.dag_time_limit(start + budget) == 600  # never under 10 minutes
