"""Architecture presets → Megatron GPTModel (workflow/model/gpt.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from workflow.errors import ScaleDAGError
from workflow.model.gpt import (
    ARCHITECTURES,
    ModelSpec,
    build_gpt_model,
    make_model_spec,
    swiglu_ffn_width,
    transformer_config,
)

SHAPE = {"layers": 2, "hidden": 64, "heads": 4, "seq_length": 32}
VOCAB = 128


# ---------------------------------------------------------------- specs (no Megatron state needed) -------


def test_presets_default_off_for_new_options():
    for arch in ARCHITECTURES:
        spec = make_model_spec(arch, SHAPE, VOCAB)
        assert spec.embedding_layernorm is False
        assert spec.position_embedding == "rotary"


def test_model_spec_is_frozen_and_round_trips():
    spec = make_model_spec("llama", SHAPE, VOCAB, {"embedding_layernorm": True, "position_embedding": "alibi"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.hidden = 5  # type: ignore[misc]
    assert ModelSpec(**spec.to_dict()) == spec
    assert spec.to_dict()["embedding_layernorm"] is True
    # a dict saved before the field existed still rebuilds (default False)
    old = {k: v for k, v in spec.to_dict().items() if k != "embedding_layernorm"}
    assert ModelSpec(**old).embedding_layernorm is False


def test_swiglu_width():
    assert swiglu_ffn_width(64) == 192  # 2/3·256 = 170.7 -> nearest multiple of 64
    assert swiglu_ffn_width(256) == 704  # 682.7 -> 704
    assert swiglu_ffn_width(8) == 64  # at least one multiple
    assert make_model_spec("llama", SHAPE, VOCAB).ffn_hidden == swiglu_ffn_width(64)
    assert make_model_spec("gpt-neox", SHAPE, VOCAB).ffn_hidden == 4 * 64


def test_bad_shape_raises_one_line_error():
    with pytest.raises(ScaleDAGError) as err:
        make_model_spec("gpt-neox", dict(SHAPE, hidden=66), VOCAB)
    message = str(err.value)
    assert "\n" not in message and "divisible" in message and "66" in message


@pytest.mark.parametrize(
    "arch, overrides, fragment",
    [
        ("gpt-j", None, "unknown architecture"),
        ("llama", {"activation": "relu"}, "activation"),
        ("llama", {"position_embedding": "sinusoidal"}, "position_embedding"),
    ],
)
def test_bad_options_raise(arch, overrides, fragment):
    with pytest.raises(ScaleDAGError, match=fragment) as err:
        make_model_spec(arch, SHAPE, VOCAB, overrides)
    assert "\n" not in str(err.value)


def test_parallel_sizes_must_divide():
    spec = make_model_spec("gpt-neox", SHAPE, VOCAB)
    with pytest.raises(ScaleDAGError, match="tensor parallel size 3") as err:
        transformer_config(spec, tp=3)
    assert "\n" not in str(err.value)
    with pytest.raises(ScaleDAGError, match="pipeline parallel size 3"):
        transformer_config(spec, pp=3)


def test_docstring_documents_parallel_residual():
    import workflow.model.gpt

    assert "use_parallel_residual" in workflow.model.gpt.__doc__


# ---------------------------------------------------------------- built models ---------------------------


def _modules_of(model, cls):
    return [m for m in model.modules() if type(m) is cls]


def test_gpt_neox_model(megatron_dist):
    spec = make_model_spec("gpt-neox", SHAPE, VOCAB)
    assert spec.rotary_percent == 0.25
    model = build_gpt_model(spec)
    assert len(_modules_of(model, torch.nn.LayerNorm)) == 2 * 2 + 1  # 2 per layer + final
    assert not _modules_of(model, torch.nn.RMSNorm)
    layer = model.decoder.layers[0]
    assert layer.self_attention.linear_qkv.bias is not None
    assert layer.self_attention.linear_proj.bias is not None
    assert layer.mlp.linear_fc1.bias is not None and layer.mlp.linear_fc1.weight.shape == (4 * 64, 64)
    assert model.rotary_pos_emb.inv_freq.numel() == int(16 * 0.25) // 2  # head dim 16, 25% rotated
    assert model.position_embedding_type == "rope"
    assert not hasattr(model.embedding, "position_embeddings")
    assert model.config.attention_dropout == 0.0 and model.config.hidden_dropout == 0.0


def test_llama_model(megatron_dist):
    spec = make_model_spec("llama", SHAPE, VOCAB)
    model = build_gpt_model(spec)
    assert len(_modules_of(model, torch.nn.RMSNorm)) == 2 * 2 + 1
    assert not _modules_of(model, torch.nn.LayerNorm)
    for name, _ in model.named_parameters():
        if "linear" in name or "output_layer" in name:
            assert not name.endswith("bias"), name
    fc1 = model.decoder.layers[0].mlp.linear_fc1
    assert fc1.weight.shape == (2 * swiglu_ffn_width(64), 64)  # gate + up
    assert model.decoder.layers[0].mlp.linear_fc2.weight.shape == (64, swiglu_ffn_width(64))
    assert model.rotary_pos_emb.inv_freq.numel() == 16 // 2


def test_learned_position_embeddings(megatron_dist):
    spec = make_model_spec("gpt-neox", SHAPE, VOCAB, {"position_embedding": "learned"})
    model = build_gpt_model(spec)
    assert isinstance(model.embedding.position_embeddings, torch.nn.Embedding)
    assert model.embedding.position_embeddings.weight.shape == (32, 64)
    assert not hasattr(model, "rotary_pos_emb")


def test_alibi_and_embedding_layernorm_options(megatron_dist):
    from workflow.model.alibi import ALiBiDotProductAttention
    from workflow.model.embedding_norm import NormedLanguageModelEmbedding

    spec = make_model_spec("llama", SHAPE, VOCAB, {"position_embedding": "alibi", "embedding_layernorm": True})
    model = build_gpt_model(spec)
    assert model.position_embedding_type == "none"
    assert isinstance(model.decoder.layers[0].self_attention.core_attention, ALiBiDotProductAttention)
    assert isinstance(model.embedding, NormedLanguageModelEmbedding)
    # the embedding norm is a LayerNorm even in an RMSNorm architecture (as BLOOM)
    assert isinstance(model.embedding.embedding_layernorm, torch.nn.LayerNorm)
    tokens = torch.randint(0, VOCAB, (2, 32))
    logits = model(tokens, torch.arange(32).unsqueeze(0).expand(2, -1), None)
    assert logits.shape == (2, 32, VOCAB) and torch.isfinite(logits).all()
    # The closed-form count (the sweep's N, the plan's FLOPs) includes the norm's 2 x hidden.
    from workflow.studies.isoflop import counts

    assert counts(spec)["params"] == sum(p.numel() for p in model.parameters())


def test_default_layer_spec_is_local_with_sdpa_attention(megatron_dist):
    from workflow.model.sdpa_attention import SDPADotProductAttention

    model = build_gpt_model(make_model_spec("gpt-neox", SHAPE, VOCAB))
    assert type(model.decoder.layers[0].self_attention.core_attention) is SDPADotProductAttention
    assert "embedding.embedding_layernorm.weight" not in model.state_dict()
    with pytest.raises(ScaleDAGError, match="Transformer Engine layers need a GPU"):
        build_gpt_model(make_model_spec("gpt-neox", SHAPE, VOCAB), use_te=True)


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_sdpa_core_attention_matches_megatrons(megatron_dist, kv_heads):
    """The fused path gives Megatron's local attention (fp32 tolerance), GQA included; with a
    mask it is Megatron's own code."""
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType

    from workflow.model.sdpa_attention import SDPADotProductAttention

    spec = make_model_spec("llama", dict(SHAPE, kv_heads=kv_heads), VOCAB)
    config = transformer_config(spec)
    kw = dict(config=config, layer_number=2, attn_mask_type=AttnMaskType.causal, attention_type="self")
    ours, theirs = SDPADotProductAttention(**kw), DotProductAttention(**kw)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(32, 2, 4, 16, generator=g)
    k, v = (torch.randn(32, 2, kv_heads, 16, generator=g) for _ in range(2))
    expected = theirs(q, k, v, None, attn_mask_type=AttnMaskType.causal)
    assert torch.allclose(ours(q, k, v, None, attn_mask_type=AttnMaskType.causal), expected, atol=2e-6)
    mask = torch.rand(2, 1, 32, 32, generator=g) > 0.7
    assert torch.equal(ours(q, k, v, mask), theirs(q, k, v, mask))


def test_gqa_model_builds_with_fewer_kv_heads(megatron_dist):
    model = build_gpt_model(make_model_spec("llama", dict(SHAPE, kv_heads=2), VOCAB))
    qkv = model.decoder.layers[0].self_attention.linear_qkv.weight
    assert qkv.shape == ((4 + 2 * 2) * 16, 64)  # 4 query heads + 2 key and 2 value heads of size 16
    with pytest.raises(ScaleDAGError, match=r"kv_heads \(3\) must divide heads \(4\)"):
        make_model_spec("llama", dict(SHAPE, kv_heads=3), VOCAB)
