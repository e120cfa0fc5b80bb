"""Paper scale as far as memory allows (workflow/model/build_check.py): every paper pretrain run's
model built by the trainer's own builder at TP=2 on the meta device, its parameters and FLOPs
against the closed form; one layer of each named paper shape through a real forward + backward at
TP=2 over gloo. Two torchrun launches of 2 processes: ~1.5 and ~2.5 min on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from workflow.config import load_config, padded_vocab_size, pretrain_spec, validate_config
from workflow.model.build_check import named_layer_shapes, paper_models
from workflow.model.gpt import swiglu_ffn_width


@pytest.fixture(scope="module")
def paper_config():
    config = load_config(REPO / "config.yaml")
    config["scale"] = "paper"
    return validate_config(config)


def _check(what: str, tmp_path) -> list[dict]:
    out = tmp_path / f"{what}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "workflow.model.build_check", what, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 ranks, one core each
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())["rows"]


def test_every_paper_model_builds_at_tp2_with_its_closed_form_counts(paper_config, tmp_path):
    models = paper_models(paper_config)
    rows = _check("models", tmp_path)
    assert len(rows) == len(models) >= 70  # MatGPT, BLOOM, GPT-2, GenSLM and the sweep's shapes
    bad = [r for r in rows if not (r["params_ok"] and r["flops_ok"])]
    assert not bad, bad[:3]
    by = {r["model"]: r for r in rows}
    # LLaMA 6.7B by hand: 32 x (4 d^2 attention + 3 d f SwiGLU + 2 d RMSNorm) + d + 2 V d.
    d, f, vocab = 4096, swiglu_ffn_width(4096), 52000
    assert by["llama:matgpt-6.7b"]["params_built"] == 32 * (4 * d * d + 3 * d * f + 2 * d) + d + 2 * vocab * d
    # Each TP rank holds half of every split matrix and a whole copy of each norm.
    r = by["llama:matgpt-6.7b"]
    assert (
        r["replicated_per_rank"] == 32 * 2 * d + d
        and 2 * r["sharded_per_rank"] + r["replicated_per_rank"] == (r["params_built"])
    )
    assert {r["flops_counted_at"] for r in rows} == {"full depth", "1 and 2 layers"}


def test_genslm_codon_vocabulary_is_padded_to_split_over_tp(paper_config):
    # 64 codons + 5 specials = 69 rows cannot split over 2 ranks (Megatron asserts): 70 can.
    spec = pretrain_spec(paper_config, "genslm", "neox_genslm-25m")
    assert spec["parallel"]["tp"] == 2 and spec["vocab_size"] == 70
    assert padded_vocab_size(52000, 2) == 52000 and padded_vocab_size(69, 1) == 69 and padded_vocab_size(69, 4) == 72


def test_one_layer_of_each_paper_shape_runs_forward_backward_at_tp2(paper_config, tmp_path):
    rows = _check("layers", tmp_path)
    # one layer per architecture x named shape (the first variant of it the DAG lists: its overrides in [])
    assert {r["layer"].split("[")[0] for r in rows} == set(named_layer_shapes(paper_config, paper_models(paper_config)))
    assert {2048, 2304, 4096} <= {r["hidden"] for r in rows} and {r["seq_length"] for r in rows} == {2048}
    bad = [r for r in rows if not (r["loss_ok"] and r["grads_ok"])]
    assert not bad, bad
