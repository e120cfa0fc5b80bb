"""Training-throughput points (GPT-2, GenSLM) run through the real training loop (Trainer) and report what they ran."""

from __future__ import annotations

import json

import pytest

from conftest import run_module
from workflow.bench.train import trainer_spec

SHAPE = {"layers": 2, "hidden": 64, "heads": 2, "seq_length": 64}


def _spec(corpus, tmp_path, points):
    return {
        "study": "efficiency",
        "scale": "tiny",
        "workload": "gpt2",
        "corpus": "synthetic",
        "job": "g.dp1",
        "arch": "gpt-neox",
        "overrides": {"position_embedding": "learned", "tied_embeddings": True},
        "shapes": {"g": SHAPE},
        "points": points,
        "warmup_steps": 1,
        "steps": 2,
        "vocab_size": 512,
        "data": {k: corpus[k] for k in ("tokenizer", "train_prefix", "valid_prefix")},
        "train": {"tokens": 1, "micro_batch_size": 1, "global_batch_size": 1, "lr": 1e-3, "seed": 1},
        "bf16": False,
        "threads": 1,
        "scratch": str(tmp_path / "scratch"),
    }


def test_trainer_spec_sets_batch_length_and_budget(tmp_path):
    spec = _spec({"tokenizer": "t", "train_prefix": "a", "valid_prefix": "b"}, tmp_path, [])
    point = {"sweep": "grad_accum", "size": "g", "seq_length": 32, "micro_batch_size": 2, "grad_accum": 4, "devices": 2}
    t = trainer_spec(spec, point)
    assert t["shape"]["seq_length"] == 32 and t["shape"]["name"] == "g"
    assert t["train"]["micro_batch_size"] == 2 and t["train"]["global_batch_size"] == 16  # micro x accum x devices
    assert t["train"]["tokens"] == 3 * 16 * 32  # exactly warmup + timed steps
    assert t["parallel"] == {"tp": 1, "pp": 1} and t["wandb"] is False


def test_points_run_through_the_training_loop(tiny_corpus, tmp_path):
    points = [
        {"sweep": "seq", "size": "g", "seq_length": 32, "micro_batch_size": 2, "grad_accum": 1, "devices": 1},
        {"sweep": "grad_accum", "size": "g", "seq_length": 64, "micro_batch_size": 1, "grad_accum": 4, "devices": 1},
    ]
    out = tmp_path / "rows.jsonl"
    run_module(
        "workflow.bench.train",
        ["--spec", json.dumps(_spec(tiny_corpus, tmp_path, points)), "--out", str(out)],
        timeout=180,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["sweep"], r["seq_length"], r["grad_accum"]) for r in rows] == [("seq", 32, 1), ("grad_accum", 64, 4)]
    for r, p in zip(rows, points):
        assert r["global_batch_size"] == p["micro_batch_size"] * p["grad_accum"]
        assert r["tokens_per_step"] == r["global_batch_size"] * r["seq_length"]
        assert len(r["step_ms_all"]) == 2 and r["step_ms"] > 0
        assert r["tokens_per_s"] == pytest.approx(r["tokens_per_step"] / (r["step_ms"] / 1e3))
        assert r["tflops_per_device_chinchilla"] > 0 and r["mfu_chinchilla"] is None  # no CPU peak
        assert r["parameters"] > 0 and r["device"] and r["torch"]
    assert not (tmp_path / "scratch" / "checkpoints").exists()  # steps only: no checkpoint written


def test_bad_spec_is_one_line(tmp_path):
    proc = run_module("workflow.bench.train", ["--spec", "{}", "--out", str(tmp_path / "x.jsonl")], check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == "error: --spec: missing key 'workload'"
