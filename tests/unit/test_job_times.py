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


def test_fixed_costs_pair_each_jobs_tsv_with_its_main_timing(tmp_path):
    import json

    from workflow.telemetry.job_times import fixed_costs

    bench, logs, results = tmp_path / "benchmarks", tmp_path / "logs", tmp_path / "results"
    for job, seconds in (("matgpt/llama", 30.0), ("matgpt/neox", 20.0), ("matgpt/untimed", 9.0)):
        (bench / "pretrain" / "matgpt").mkdir(parents=True, exist_ok=True)
        (bench / "pretrain" / f"{job}.tsv").write_text(HEADER + f"{seconds}\t0:00:30\t800\t900\n")
    (results / "matgpt" / "runs" / "llama").mkdir(parents=True)
    summary = {"tokens": 1000, "train_tokens_per_s": 50.0}  # 20 s in the training loop
    (results / "matgpt" / "runs" / "llama" / "summary.json").write_text(json.dumps(summary))
    timings = tmp_path / "timings.jsonl"
    lines = [
        {"module": "workflow.train.pretrain", "log": str(logs / "pretrain/matgpt/llama.log"), "main_seconds": 27.5},
        {"module": "workflow.train.pretrain", "log": str(logs / "pretrain/matgpt/neox.log"), "main_seconds": 18.0},
        {"module": "x", "log": "/dev/pts/0", "main_seconds": 1.0},  # not a rule's log: ignored
    ]
    timings.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = fixed_costs(bench, logs, timings, results)["pretrain"]
    rows = {r["job"]: r for r in out["job_rows"]}
    assert rows["matgpt/llama"]["fixed_seconds"] == 2.5 and rows["matgpt/neox"]["fixed_seconds"] == 2.0
    assert rows["matgpt/untimed"]["fixed_seconds"] is None  # no timing line: not guessed
    assert rows["matgpt/llama"]["outside_loop_seconds"] == 10.0
    assert (out["jobs"], out["timed_jobs"], out["median_fixed_seconds"]) == (3, 2, 2.25)
