"""Build a Megatron-core GPTModel from an architecture preset and a shape.

Architectures are data (a dict of options), not code branches, so a study's variants are just
overrides of a preset.  Everything here is Megatron's own modules through its layer specs, plus two
modules megatron-core 0.16.1 lacks, plugged in without touching Megatron's source:

- ``position_embedding: alibi`` — GPTModel gets ``position_embedding_type='none'`` and the layer
  spec's ``core_attention`` is ``workflow.model.alibi.ALiBiDotProductAttention`` (SDPA + causal mask +
  per-head linear bias, slopes split across tensor-parallel ranks).
- ``embedding_layernorm: true`` — BLOOM's LayerNorm right after the embedding, before the first
  layer (``workflow.model.embedding_norm.EmbeddingNormGPTModel``); saved in dist_checkpointing checkpoints.

Not supported: GPT-NeoX's parallel attention+MLP residual (``use_parallel_residual``,
x + attn(ln1(x)) + mlp(ln2(x))).  megatron-core 0.16.1's ``TransformerLayer`` has no such option
(it always runs attention then MLP sequentially), so the ``gpt-neox`` preset uses the sequential
residual x' = x + attn(ln1(x)); x'' = x' + mlp(ln2(x')).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from workflow.errors import ScaleDAGError

# torch / megatron are imported inside the functions that build models, so that config validation
# (workflow.config, run at every `snakemake` start) can check shapes with this module for free.

# The two architectures the MatGPT study compares (arXiv 2402.00691, Table 1).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "gpt-neox": {
        "normalization": "LayerNorm",
        "activation": "gelu",
        "bias": True,
        "position_embedding": "rotary",
        "rotary_percent": 0.25,
        "tied_embeddings": False,
        "embedding_layernorm": False,
    },
    "llama": {
        "normalization": "RMSNorm",
        "activation": "swiglu",
        "bias": False,
        "position_embedding": "rotary",
        "rotary_percent": 1.0,
        "tied_embeddings": False,
        "embedding_layernorm": False,
    },
}

# option value -> GPTModel position_embedding_type (ALiBi lives in the attention, not the embedding)
_POSITION_EMBEDDINGS = {"rotary": "rope", "learned": "learned_absolute", "none": "none", "alibi": "none"}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: shape + architecture options."""

    layers: int
    hidden: int
    heads: int
    vocab_size: int
    seq_length: int
    ffn_hidden: int
    normalization: str
    activation: str
    bias: bool
    position_embedding: str
    rotary_percent: float
    tied_embeddings: bool
    init_std: float = 0.02
    embedding_layernorm: bool = False
    kv_heads: int | None = None  # grouped-query attention: key/value heads (None: = heads)

    @property
    def glu(self) -> bool:
        return self.activation == "swiglu"

    @property
    def alibi(self) -> bool:
        return self.position_embedding == "alibi"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def swiglu_ffn_width(hidden: int, multiple_of: int = 64) -> int:
    """FFN width that keeps a SwiGLU MLP's parameters equal to a 4h GeLU MLP (2/3 of 4h).

    Rounded to the nearest multiple of `multiple_of` (at least one multiple), as BLOOM/LLaMA do."""
    target = 2 * 4 * hidden / 3
    return max(multiple_of, int(round(target / multiple_of)) * multiple_of)


def make_model_spec(arch: str | dict, shape: dict, vocab_size: int, overrides: dict | None = None) -> ModelSpec:
    """Resolve an architecture name (or option dict) + shape into a validated ModelSpec."""
    if isinstance(arch, str):
        if arch not in ARCHITECTURES:
            raise ScaleDAGError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
        options = dict(ARCHITECTURES[arch])
    else:
        options = dict(arch)
    options.update(overrides or {})
    layers, hidden, heads = int(shape["layers"]), int(shape["hidden"]), int(shape["heads"])
    if hidden % heads:
        raise ScaleDAGError(f"shape {shape}: hidden ({hidden}) must be divisible by heads ({heads})")
    kv_heads = shape.get("kv_heads")
    if kv_heads is not None and (int(kv_heads) < 1 or heads % int(kv_heads)):
        raise ScaleDAGError(
            f"shape {shape}: kv_heads ({kv_heads}) must divide heads ({heads}) for grouped-query attention"
        )
    if options["activation"] not in ("gelu", "swiglu"):
        raise ScaleDAGError(f"activation {options['activation']!r}: expected gelu or swiglu")
    if options["position_embedding"] not in _POSITION_EMBEDDINGS:
        raise ScaleDAGError(
            f"position_embedding {options['position_embedding']!r}: expected one of {sorted(_POSITION_EMBEDDINGS)}"
        )
    ffn = shape.get("ffn_hidden")
    if ffn is None:
        ffn = swiglu_ffn_width(hidden) if options["activation"] == "swiglu" else 4 * hidden
    if options["position_embedding"] == "rotary":
        # Megatron's RotaryEmbedding and HF's GPT-NeoX both rotate int(head size x rotary_percent)
        # dimensions (GenSLM-250M: int(115 x 0.25) = 28); rotary pairs them, so that must be even.
        rotary_dim = hidden // heads * float(options.get("rotary_percent", 1.0))
        if int(rotary_dim) % 2 or int(rotary_dim) < 2:
            raise ScaleDAGError(
                f"shape {shape}: rotary_percent {options.get('rotary_percent', 1.0)} of head size {hidden // heads} "
                f"gives int({rotary_dim:g}) = {int(rotary_dim)} rotary dimensions; rotary needs an even number >= 2"
            )
    return ModelSpec(
        layers=layers,
        hidden=hidden,
        heads=heads,
        vocab_size=int(vocab_size),
        seq_length=int(shape["seq_length"]),
        ffn_hidden=int(ffn),
        normalization=options["normalization"],
        activation=options["activation"],
        bias=bool(options["bias"]),
        position_embedding=options["position_embedding"],
        rotary_percent=float(options.get("rotary_percent", 1.0)),
        tied_embeddings=bool(options.get("tied_embeddings", False)),
        embedding_layernorm=bool(options.get("embedding_layernorm", False)),
        kv_heads=int(kv_heads) if kv_heads is not None else None,
    )


def transformer_config(spec: ModelSpec, tp: int = 1, pp: int = 1, bf16: bool = False, fused: bool = False):
    """Megatron TransformerConfig for a spec; dropout is 0 (see megatron_cpu.initialize_rng).

    `fused` (GPU with Transformer Engine) turns on Megatron's fused bias+activation, bias+dropout,
    RoPE and gradient-accumulation kernels; the CPU path keeps them all off."""
    import torch  # torch: not at DAG parse
    import torch.nn.functional as F  # torch: not at DAG parse
    from megatron.core.transformer.transformer_config import TransformerConfig  # megatron: not at DAG parse

    check_parallel(spec, tp, pp)
    return TransformerConfig(
        num_layers=spec.layers,
        hidden_size=spec.hidden,
        num_attention_heads=spec.heads,
        num_query_groups=spec.kv_heads,
        ffn_hidden_size=spec.ffn_hidden,
        normalization=spec.normalization,
        layernorm_epsilon=1e-5,
        gated_linear_unit=spec.glu,
        activation_func=F.silu if spec.glu else F.gelu,
        add_bias_linear=spec.bias,
        add_qkv_bias=spec.bias,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=spec.init_std,
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=pp,
        pipeline_dtype=torch.bfloat16 if bf16 else torch.float32,
        bf16=bf16,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        bias_activation_fusion=fused and (spec.glu or spec.bias),  # Megatron's fused GeLU needs a bias
        masked_softmax_fusion=False,  # TE's attention has its own softmax
        persist_layer_norm=False,  # needs Apex
        apply_rope_fusion=fused,
        gradient_accumulation_fusion=fused,
        bias_dropout_fusion=fused,
        # Initialise full weights from one seed, then shard: a TP=2 model then starts identical to
        # TP=1 (on GPU Megatron's faster per-rank initialisation is kept).
        use_cpu_initialization=not torch.cuda.is_available(),
    )


def check_parallel(spec: ModelSpec, tp: int = 1, pp: int = 1) -> None:
    """Tensor/pipeline degrees a shape can be split by (also checked at config load)."""
    if spec.heads % tp:
        raise ScaleDAGError(f"tensor parallel size {tp} must divide heads ({spec.heads})")
    if spec.kv_heads is not None and spec.kv_heads % tp:
        raise ScaleDAGError(f"tensor parallel size {tp} must divide kv_heads ({spec.kv_heads})")
    if spec.ffn_hidden % tp:
        raise ScaleDAGError(f"tensor parallel size {tp} must divide ffn_hidden ({spec.ffn_hidden})")
    if spec.vocab_size < tp:
        raise ScaleDAGError(f"tensor parallel size {tp} exceeds the vocabulary ({spec.vocab_size})")
    if spec.layers % pp:
        raise ScaleDAGError(f"pipeline parallel size {pp} must divide layers ({spec.layers})")


def tp_param_split(model) -> tuple[int, int]:
    """(TP-sharded, replicated) parameter counts on this rank. Megatron marks a parameter it splits
    over the TP ranks with `tensor_model_parallel`; the others (norms) are held whole on every rank."""
    sharded = sum(p.numel() for p in model.parameters() if getattr(p, "tensor_model_parallel", False))
    return sharded, sum(p.numel() for p in model.parameters()) - sharded


def transformer_engine_available() -> bool:
    """Transformer Engine importable and a GPU present: then the TE layer spec is used."""
    import importlib.util

    import torch  # torch: not at DAG parse

    return torch.cuda.is_available() and importlib.util.find_spec("transformer_engine") is not None


def layer_spec(spec: ModelSpec, use_te: bool | None = False):
    """Megatron's local spec on CPU; the Transformer-Engine spec on GPU when TE is installed.

    `use_te=None` decides by `transformer_engine_available()`. The TE spec's core attention is
    TE's DotProductAttention, which runs FlashAttention kernels on Ampere/Hopper GPUs (bf16, causal),
    and fuses the pre-attention/MLP norms into the QKV/FC1 GEMMs. With ALiBi the self-attention's
    ``core_attention`` is swapped for ALiBiDotProductAttention in either spec."""
    from megatron.core.models.gpt import gpt_layer_specs  # megatron: not at DAG parse

    if use_te is None:
        use_te = transformer_engine_available()
    if use_te:
        if not transformer_engine_available():
            raise ScaleDAGError("use_te: Transformer Engine layers need a GPU and the transformer_engine package")
        base = gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec(qk_layernorm=False)
    else:
        base = gpt_layer_specs.get_gpt_layer_local_spec(normalization=spec.normalization)
    if spec.alibi:
        from workflow.model.alibi import ALiBiDotProductAttention  # torch: not at DAG parse

        base = _with_core_attention(base, ALiBiDotProductAttention)
    elif not use_te:
        from workflow.model.sdpa_attention import SDPADotProductAttention  # megatron: not at DAG parse

        base = _with_core_attention(base, SDPADotProductAttention)
    return base


def _with_core_attention(base, core_attention):
    """A copy of a TransformerLayer spec whose self-attention uses another core attention."""
    import copy

    new = copy.deepcopy(base)
    new.submodules.self_attention.submodules.core_attention = core_attention
    return new


def build_gpt_model(spec: ModelSpec, tp: int = 1, pp: int = 1, bf16: bool = False, use_te: bool | None = False):
    """A GPTModel for this pipeline stage (parallel_state must be initialised).

    `use_te=None`: the Transformer-Engine spec (flash attention, fused kernels) when on a GPU with TE
    installed, else Megatron's local spec."""
    from megatron.core import parallel_state  # megatron: not at DAG parse
    from megatron.core.models.gpt import GPTModel  # megatron: not at DAG parse

    if use_te is None:
        use_te = transformer_engine_available()
    if use_te and not transformer_engine_available():
        raise ScaleDAGError("use_te: Transformer Engine layers need a GPU and the transformer_engine package")
    config = transformer_config(spec, tp=tp, pp=pp, bf16=bf16, fused=bool(use_te))
    model_class = GPTModel
    if spec.embedding_layernorm:
        from workflow.model.embedding_norm import EmbeddingNormGPTModel  # megatron: not at DAG parse

        model_class = EmbeddingNormGPTModel
    model = model_class(
        config=config,
        transformer_layer_spec=layer_spec(spec, use_te=use_te),
        vocab_size=spec.vocab_size,
        max_sequence_length=spec.seq_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=spec.tied_embeddings,
        position_embedding_type=_POSITION_EMBEDDINGS[spec.position_embedding],
        rotary_percent=spec.rotary_percent,
    )
    return model
