"""Metrics JSONL: appears complete only when finalized, and is cut back on resume."""

import json

import pytest

from workflow.errors import ScaleDAGError
from workflow.train.metrics import MetricsLog, Throughput, read_metrics


def test_finalize_renames_partial(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    log.log(step=1, loss=2.0)
    assert not (tmp_path / "m.jsonl").exists() and (tmp_path / "m.jsonl.partial").exists()
    log.finalize()
    assert read_metrics(tmp_path / "m.jsonl") == [{"step": 1, "loss": 2.0}]


def test_resume_drops_rows_after_checkpoint_and_torn_lines(tmp_path):
    partial = tmp_path / "m.jsonl.partial"
    partial.write_text("\n".join(json.dumps({"step": s}) for s in range(1, 8)) + "\n")
    log = MetricsLog(tmp_path / "m.jsonl", resume_step=4)
    log.log(step=5)
    log.finalize()
    assert [r["step"] for r in read_metrics(tmp_path / "m.jsonl")] == [1, 2, 3, 4, 5]
    partial.write_text('{"step": 1}\n{"step": 2, "lo')
    log = MetricsLog(tmp_path / "m.jsonl", resume_step=9)
    log.finalize()
    assert [r["step"] for r in read_metrics(tmp_path / "m.jsonl")] == [1]


def test_disabled_log_writes_nothing(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl", enabled=False)
    log.log(step=1)
    log.finalize()
    assert list(tmp_path.iterdir()) == []


def test_throughput_counts_only_timed_spans():
    meter = Throughput()
    meter.start()
    meter.stop(1000)
    assert meter.rate_and_reset() > 0 and meter.tokens == 0


def test_resume_whose_log_vanished_fails_instead_of_finishing_an_empty_log(tmp_path):
    # A checkpoint to resume from but no partial log: finishing would leave only the later rows.
    with pytest.raises(ScaleDAGError, match=r"m\.jsonl\.partial: the metrics log vanished while resuming from step 4"):
        MetricsLog(tmp_path / "m.jsonl", resume_step=4)
    assert not (tmp_path / "m.jsonl").exists()
