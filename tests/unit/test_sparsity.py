"""2:4 sparsity: pruning/mask logic, the sparse linear's forward/backward, and the unsupported path.

The compressed-weight kernels exist only on CUDA (sm80+), so here the wrapper's autograd logic is
checked with the compression step being the identity (the dense pruned weight) against Megatron's
own linear, and the unsupported path runs for real on this CPU."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_module
from workflow.bench.sparsity import (
    SemiStructuredLinear,
    linear_modules,
    mask_2to4,
    prune_2to4,
    semi_structured_support,
    sparsify_block,
)


def test_mask_keeps_the_two_largest_of_every_four():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 1.0, 1.5, -0.2, 0.0]])
    assert mask_2to4(w).tolist() == [[False, True, True, False, True, True, False, False]]
    w = torch.randn(32, 64)
    pruned, mask = prune_2to4(w)
    groups = mask.reshape(32, -1, 4)
    assert (groups.sum(-1) == 2).all()
    assert (pruned == 0).sum().item() == w.numel() // 2
    kept = w.abs().reshape(32, -1, 4)
    # every kept magnitude >= every dropped magnitude within its group
    assert (kept.masked_fill(~groups, float("inf")).min(-1).values >= kept.masked_fill(groups, -1).max(-1).values).all()


def test_mask_rejects_an_input_dim_not_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        mask_2to4(torch.randn(8, 6))


@pytest.fixture()
def block(megatron_dist):
    from megatron.core.transformer.spec_utils import build_module

    from workflow.model.gpt import layer_spec, make_model_spec, transformer_config

    spec = make_model_spec("gpt-neox", {"layers": 1, "hidden": 64, "heads": 2, "seq_length": 32}, 1)
    torch.manual_seed(0)
    return spec, build_module(layer_spec(spec), config=transformer_config(spec), layer_number=1)


@pytest.mark.parametrize(
    "name", ["self_attention.linear_qkv", "self_attention.linear_proj", "mlp.linear_fc1", "mlp.linear_fc2"]
)
def test_sparse_linear_matches_megatrons_linear_with_pruned_weights(block, name):
    _, layer = block
    lin = layer.get_submodule(name)
    sparse = SemiStructuredLinear(lin, compress=lambda w: w)
    with torch.no_grad():
        lin.weight.copy_(sparse.weight)  # the dense reference: same pruned weight
    x = torch.randn(8, 2, lin.weight.shape[1], requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    (ref, ref_bias), (out, out_bias) = lin(x), sparse(x2)
    assert (ref_bias is None) == (out_bias is None)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    ref.backward(g)
    out.backward(g)
    torch.testing.assert_close(x2.grad, x.grad)
    torch.testing.assert_close(sparse.weight.grad, lin.weight.grad * sparse.mask)
    assert (sparse.weight.grad[~sparse.mask] == 0).all()  # the 2:4 pattern survives an update


def test_sparsify_block_replaces_every_linear_and_still_trains(block):
    spec, layer = block
    replaced = sparsify_block(layer, compress=lambda w: w)
    assert sorted(replaced) == [
        "mlp.linear_fc1",
        "mlp.linear_fc2",
        "self_attention.linear_proj",
        "self_attention.linear_qkv",
    ]
    assert linear_modules(layer) == []
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

    rope = RotaryEmbedding(kv_channels=32, rotary_percent=spec.rotary_percent)(32)
    out = layer(torch.randn(32, 2, 64), attention_mask=None, rotary_pos_emb=rope)[0]
    out.sum().backward()
    assert all(m.weight.grad is not None for m in layer.modules() if isinstance(m, SemiStructuredLinear))


def test_cpu_is_reported_unsupported_with_torchs_reason(block):
    _, layer = block
    ok, reason = semi_structured_support(layer, torch.float32)
    assert ok is False
    assert "cpu" in reason and "RuntimeError" in reason and "\n" not in reason


def test_block_benchmark_records_sparse_points_as_unsupported_never_dense(tmp_path):
    spec = {
        "study": "efficiency",
        "scale": "tiny",
        "arch": "llama",
        "warmup": 1,
        "repeats": 2,
        "sparsity": True,
        "threads": 1,
        "points": [
            {"hidden": 64, "heads": 2, "seq_length": 32, "micro_batch_size": 1},
            {"hidden": 64, "heads": 2, "seq_length": 64, "micro_batch_size": 2},
        ],
    }
    out = tmp_path / "rows.jsonl"
    run_module("workflow.bench.block", ["--spec", json.dumps(spec), "--out", str(out)], timeout=120)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["mode"], r["seq_length"]) for r in rows] == [
        ("dense", 32),
        ("sparse24", 32),
        ("dense", 64),
        ("sparse24", 64),
    ]
    for r in rows:
        assert r["device"] and r["torch"] == torch.__version__ and r["megatron_core"]
    for r in rows[1::2]:
        assert r["status"] == "unsupported" and "cpu" in r["reason"]
        assert "fwd_bwd_ms" not in r and "tokens_per_s" not in r
    for r in rows[::2]:
        assert r["status"] == "ok" and r["fwd_bwd_ms"] > 0 and len(r["fwd_bwd_ms_all"]) == 2
        assert r["tokens_per_s"] == pytest.approx(r["seq_length"] * r["micro_batch_size"] / (r["fwd_bwd_ms"] / 1e3))
        assert r["activation_mb"] > 0 and r["tflops"] > 0


def test_a_point_that_does_not_fit_is_recorded_oom_and_the_sweep_goes_on():
    from workflow.bench.block import unless_oom

    assert unless_oom(lambda: 3) == (3, None)
    result, reason = unless_oom(lambda: torch.empty(10**14))  # a real allocation failure (400 TB)
    assert result is None and reason.startswith("OutOfMemoryError: ") and "\n" not in reason
    with pytest.raises(ValueError):
        unless_oom(lambda: mask_2to4(torch.randn(2, 3)))  # other errors are not swallowed
