"""Validation loss of a final checkpoint over the whole held-out split."""

import json
import math

import numpy as np
import pytest

from conftest import make_run_spec, run_module
from workflow.errors import ScaleDAGError
from workflow.evaluate.loss import token_windows
from workflow.train.metrics import read_metrics


def test_windows_tile_the_stream(tiny_corpus):
    w = token_windows(tiny_corpus["valid_prefix"], 64, 1000)
    assert w.shape == (1000 // 64, 65)
    assert np.array_equal(w[0, -1], w[1, 0])  # consecutive windows share their boundary token
    with pytest.raises(ScaleDAGError, match="fewer than"):
        token_windows(tiny_corpus["valid_prefix"], 10**7, 10**8)


def test_evaluate_cli_matches_training_curve(tiny_corpus, trained_run, tmp_path):
    spec = make_run_spec(tiny_corpus, trained_run)
    out = tmp_path / "eval.json"
    run_module("workflow.evaluate.loss", ["--spec", json.dumps(spec), "--max-tokens", "20000", "--out", str(out)])
    result = json.loads(out.read_text())
    last_valid = [r["loss"] for r in read_metrics(trained_run / "metrics.jsonl") if r["kind"] == "valid"][-1]
    assert result["iteration"] == 30 and result["tokens"] > 10000
    assert abs(result["loss"] - last_valid) < 0.3
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))


def test_evaluate_without_checkpoint_is_a_clear_error(tiny_corpus, tmp_path):
    spec = make_run_spec(tiny_corpus, tmp_path / "never-trained")
    proc = run_module(
        "workflow.evaluate.loss", ["--spec", json.dumps(spec), "--out", str(tmp_path / "e.json")], check=False
    )
    assert proc.returncode == 2 and "no complete checkpoint" in proc.stderr
    assert not (tmp_path / "e.json").exists()
