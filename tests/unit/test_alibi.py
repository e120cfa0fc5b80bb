"""ALiBi core attention and the embedding LayerNorm (workflow/model/alibi.py, workflow/model/embedding_norm.py)."""

from __future__ import annotations

import math
import types

import pytest
import torch

# ---------------------------------------------------------------- slopes ---------------------------------


def _bloom_get_slopes(n):
    """The reference formula (Press et al.'s repository, used by BLOOM)."""

    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + _bloom_get_slopes(2 * closest)[0::2][: n - closest]


def test_slopes_power_of_two_heads():
    from workflow.model.alibi import alibi_slopes

    expected = torch.tensor([1 / 2**k for k in range(1, 9)])  # 1/2 ... 1/256
    assert torch.allclose(alibi_slopes(8), expected, rtol=0, atol=1e-12)
    assert torch.allclose(alibi_slopes(4), torch.tensor([1 / 4, 1 / 16, 1 / 64, 1 / 256]))


@pytest.mark.parametrize("n", [1, 2, 6, 12, 16, 20, 24, 112])
def test_slopes_match_bloom_formula(n):
    from workflow.model.alibi import alibi_slopes

    assert torch.allclose(alibi_slopes(n), torch.tensor(_bloom_get_slopes(n), dtype=torch.float32))


def test_slopes_12_heads_explicit():
    from workflow.model.alibi import alibi_slopes

    expected = [2.0**-k for k in range(1, 9)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    assert torch.allclose(alibi_slopes(12), torch.tensor(expected))


def test_tp_split_of_slopes():
    from workflow.model.alibi import alibi_slopes, alibi_slopes_for_rank

    full = alibi_slopes(8)
    assert torch.equal(alibi_slopes_for_rank(8, 0, 2), full[:4])
    assert torch.equal(alibi_slopes_for_rank(8, 1, 2), full[4:])
    assert torch.equal(torch.cat([alibi_slopes_for_rank(12, r, 4) for r in range(4)]), alibi_slopes(12))
    with pytest.raises(ValueError):
        alibi_slopes_for_rank(6, 0, 4)


def test_alibi_bias_values():
    from workflow.model.alibi import alibi_bias, alibi_slopes

    bias = alibi_bias(2, 4)
    m = alibi_slopes(2)
    assert bias.shape == (2, 4, 4)
    assert bias[1, 3, 1].item() == pytest.approx(-m[1].item() * 2)
    assert torch.all(torch.diagonal(bias, dim1=1, dim2=2) == 0)
    assert torch.isinf(bias[0, 0, 1]) and bias[0, 0, 1] < 0
    assert torch.all(torch.isfinite(alibi_bias(2, 4, causal=False)))


# ---------------------------------------------------------------- core attention -------------------------


def _config(heads=4, hidden=32, layers=1, **kw):
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        masked_softmax_fusion=False,
        **kw,
    )


def _core(config, pg_collection=None):
    from megatron.core.transformer.enums import AttnMaskType

    from workflow.model.alibi import ALiBiDotProductAttention

    return ALiBiDotProductAttention(
        config=config,
        layer_number=1,
        attn_mask_type=AttnMaskType.causal,
        attention_type="self",
        pg_collection=pg_collection,
    )


def _naive(q, k, v, slopes):
    """softmax(QKᵀ/sqrt(d) − m_h(i−j), causal) V with explicit loops-free math; [s, b, n, h] in, [s, b, n·h] out."""
    s, b, n, h = q.shape
    scores = torch.einsum("ibnd,jbnd->bnij", q.double(), k.double()) / math.sqrt(h)
    i = torch.arange(s).view(-1, 1)
    j = torch.arange(s).view(1, -1)
    scores = scores - slopes.double().view(1, n, 1, 1) * (i - j).double()
    scores = scores.masked_fill(j > i, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = torch.einsum("bnij,jbnd->ibnd", probs, v.double())
    return out.reshape(s, b, n * h).float()


def test_core_attention_matches_naive_reference(megatron_dist):
    from workflow.model.alibi import alibi_slopes

    torch.manual_seed(0)
    core = _core(_config(heads=4, hidden=32))
    s, b, n, h = 16, 3, 4, 8
    q, k, v = (torch.randn(s, b, n, h) for _ in range(3))
    out = core(q, k, v, None)
    assert out.shape == (s, b, n * h)
    assert torch.allclose(out, _naive(q, k, v, alibi_slopes(4)), atol=1e-5, rtol=0)
    assert not any("alibi" in key for key in core.state_dict())  # slopes are not checkpointed


def test_core_attention_non_power_of_two_heads(megatron_dist):
    from workflow.model.alibi import alibi_slopes

    torch.manual_seed(1)
    core = _core(_config(heads=6, hidden=48))
    q, k, v = (torch.randn(10, 2, 6, 8) for _ in range(3))
    assert torch.allclose(core(q, k, v, None), _naive(q, k, v, alibi_slopes(6)), atol=1e-5, rtol=0)


def test_core_attention_applies_extra_mask(megatron_dist):
    torch.manual_seed(2)
    core = _core(_config(heads=4, hidden=32))
    q, k, v = (torch.randn(8, 1, 4, 8) for _ in range(3))
    # Megatron convention: True = masked. Masking everything before position 4 for queries >= 4
    # makes those rows independent of the first four keys/values.
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 4:, :4] = True
    out = core(q, k, v, mask)
    v2 = v.clone()
    v2[:4] += 10.0
    out2 = core(q, k, v2, mask)
    assert torch.allclose(out[4:], out2[4:], atol=1e-6)
    assert not torch.allclose(out[:4], out2[:4])


def test_core_attention_uses_its_tp_ranks_slopes(megatron_dist):
    """A core attention on rank r of tp=2 (fake TP group) holds the r-th half of the slopes."""
    from workflow.model.alibi import alibi_slopes

    full = alibi_slopes(8)
    for rank in range(2):
        tp = types.SimpleNamespace(rank=lambda r=rank: r, size=lambda: 2)
        core = _core(_config(heads=8, hidden=64), pg_collection=types.SimpleNamespace(tp=tp))
        assert core.num_attention_heads_per_partition == 4
        assert torch.equal(core.alibi_slopes, full[rank * 4 : (rank + 1) * 4])
        q, k, v = (torch.randn(6, 2, 4, 8) for _ in range(3))
        assert torch.allclose(core(q, k, v, None), _naive(q, k, v, full[rank * 4 : (rank + 1) * 4]), atol=1e-5)


# ---------------------------------------------------------------- whole models ---------------------------


def _tiny_spec(**overrides):
    from workflow.model.gpt import make_model_spec

    shape = {"layers": 2, "hidden": 64, "heads": 4, "seq_length": 32}
    return make_model_spec("gpt-neox", shape, vocab_size=128, overrides=overrides)


def _train_losses(model, steps=12, seed=0):
    torch.manual_seed(seed)
    tokens = torch.randint(0, 128, (4, 32))
    labels = torch.roll(tokens, -1, dims=1)
    position_ids = torch.arange(32).unsqueeze(0).expand(4, -1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model(tokens, position_ids, None, labels=labels).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_alibi_model_uses_alibi_and_trains(megatron_dist):
    from workflow.model.alibi import ALiBiDotProductAttention
    from workflow.model.gpt import build_gpt_model

    spec = _tiny_spec(position_embedding="alibi")
    model = build_gpt_model(spec)
    cores = [layer.self_attention.core_attention for layer in model.decoder.layers]
    assert cores and all(isinstance(c, ALiBiDotProductAttention) for c in cores)
    assert not hasattr(model, "rotary_pos_emb")
    assert not hasattr(model.embedding, "position_embeddings")
    losses = _train_losses(model)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 0.5, losses


def test_embedding_layernorm_in_state_dicts_and_trained(megatron_dist):
    from workflow.model.embedding_norm import NormedLanguageModelEmbedding
    from workflow.model.gpt import build_gpt_model

    model = build_gpt_model(_tiny_spec(embedding_layernorm=True, position_embedding="alibi"))
    assert isinstance(model.embedding, NormedLanguageModelEmbedding)
    keys = {"embedding.embedding_layernorm.weight", "embedding.embedding_layernorm.bias"}
    assert keys <= set(model.state_dict())
    assert keys <= set(model.sharded_state_dict())
    assert all(k not in build_gpt_model(_tiny_spec()).state_dict() for k in keys)
    before = model.embedding.embedding_layernorm.weight.detach().clone()
    losses = _train_losses(model, steps=4)
    assert losses[-1] < losses[0]
    assert not torch.equal(before, model.embedding.embedding_layernorm.weight.detach())


def test_embedding_layernorm_is_applied(megatron_dist):
    from workflow.model.gpt import build_gpt_model

    torch.manual_seed(0)
    model = build_gpt_model(_tiny_spec(embedding_layernorm=True, position_embedding="learned"))
    tokens = torch.randint(0, 128, (2, 32))
    pos = torch.arange(32).unsqueeze(0).expand(2, -1)
    out = model.embedding(input_ids=tokens, position_ids=pos)  # [s, b, h]
    assert out.shape == (32, 2, 64)
    assert torch.allclose(out.mean(-1), torch.zeros(32, 2), atol=1e-5)
    # unit variance up to eps (1e-5) against the tiny raw embedding variance (init std 0.02)
    assert torch.allclose(out.var(-1, unbiased=False), torch.ones(32, 2), atol=0.05)
    # the same modules as the plain embedding: word + learned position embeddings are kept
    raw = model.embedding.word_embeddings(tokens) + model.embedding.position_embeddings(pos)
    expected = model.embedding.embedding_layernorm(raw.transpose(0, 1))
    assert torch.allclose(out, expected, atol=1e-6)


def test_embedding_layernorm_checkpoint_round_trip(megatron_dist, tmp_path):
    from megatron.core import dist_checkpointing

    from workflow.model.gpt import build_gpt_model

    spec = _tiny_spec(embedding_layernorm=True)
    torch.manual_seed(1)
    model = build_gpt_model(spec)
    with torch.no_grad():
        model.embedding.embedding_layernorm.weight.copy_(torch.rand(64) + 0.5)
        model.embedding.embedding_layernorm.bias.copy_(torch.randn(64))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    dist_checkpointing.save(model.sharded_state_dict(), str(ckpt))

    torch.manual_seed(2)
    fresh = build_gpt_model(spec)
    assert not torch.equal(fresh.embedding.embedding_layernorm.weight, model.embedding.embedding_layernorm.weight)
    loaded = dist_checkpointing.load(fresh.sharded_state_dict(), str(ckpt))
    assert {"embedding.embedding_layernorm.weight", "embedding.embedding_layernorm.bias"} <= set(loaded)
    fresh.load_state_dict(loaded)
    for name, tensor in model.state_dict().items():
        if name.endswith("_extra_state"):
            continue
        assert torch.equal(fresh.state_dict()[name], tensor), name
