"""Tensor and data parallelism over gloo: 2 processes give the TP=1 loss curve (fp32 tolerance)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import TRAINED_STEPS, make_run_spec, train_run
from workflow.train.metrics import read_metrics


def _losses(out_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(Path(out_dir) / "metrics.jsonl") if r["kind"] == "train"]


@pytest.mark.parametrize("tp", [2, 1], ids=["tp2", "dp2"])
def test_two_processes_match_single_process(tiny_corpus, trained_run, tmp_path, tp):
    spec = make_run_spec(tiny_corpus, tmp_path / f"tp{tp}", steps=TRAINED_STEPS)
    spec["parallel"] = {"tp": tp, "pp": 1}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    train_run(spec, launcher=torchrun, env={"OMP_NUM_THREADS": "1"})
    single, parallel = _losses(trained_run), _losses(tmp_path / f"tp{tp}")
    assert len(parallel) == len(single) == TRAINED_STEPS
    assert parallel == pytest.approx(single, rel=2e-3, abs=2e-3)
    # The summary counts the model once: norms are held whole on both TP ranks, counted once.
    params = [
        json.loads((Path(d) / "summary.json").read_text())["parameters"] for d in (trained_run, tmp_path / f"tp{tp}")
    ]
    assert params[0] == params[1]
