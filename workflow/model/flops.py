"""FLOP and parameter counting for decoder-only transformers.

Why one module: token budgets (C = 6 N D), MFU and the scaling study must all agree on what a
model of a given shape costs, so they all count from the same `Shape` with these functions.

Two FLOP conventions are provided:

- `flops_6nd`: the usual C ~= 6 N D approximation (2 N per token forward, 4 N backward).
- `chinchilla_forward_flops_per_sequence` / `chinchilla_flops_breakdown`: the exact per-term
  count of Hoffmann et al. 2022 (Chinchilla, arXiv 2203.15556), Appendix F, which also counts
  the embedding, the attention logits/reduction (which grow with seq^2) and the softmax.
  Training = 3 x forward (the backward pass is taken to cost 2 x forward).
- `table_a4_training_flops_per_token`: the same count without the embedding and final-logit
  terms. Chinchilla's Table A4 (ratio to 6N of 0.99-1.10) is reproduced only this way (nanoGPT's
  reading of it); with those terms the ratio is 1.06-1.35 on Table A9's configurations.

A multiply-accumulate counts as 2 FLOPs throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow.errors import ScaleDAGError


@dataclass(frozen=True)
class Shape:
    """The dimensions of a decoder-only transformer.

    `glu=True` means a gated FFN (SwiGLU): three hidden x ffn_hidden matrices (gate, up, down)
    instead of two. `kv_channels` is the per-head key/value size ("key_size" in Chinchilla);
    it defaults to hidden // heads.
    """

    layers: int
    hidden: int
    heads: int
    ffn_hidden: int
    vocab_size: int
    seq_length: int
    glu: bool = False
    kv_channels: int | None = None

    @classmethod
    def of(cls, spec) -> Shape:
        """The counted dimensions of a built model's spec (a `workflow.model.gpt.ModelSpec`)."""
        return cls(
            spec.layers, spec.hidden, spec.heads, spec.ffn_hidden, spec.vocab_size, spec.seq_length, glu=spec.glu
        )

    def __post_init__(self):
        for name in ("layers", "hidden", "heads", "ffn_hidden", "vocab_size", "seq_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ScaleDAGError(f"Shape.{name}: expected a positive integer, got {value!r}")
        if self.kv_channels is None and self.hidden % self.heads:
            raise ScaleDAGError(
                f"Shape: hidden ({self.hidden}) must be divisible by heads ({self.heads}) unless kv_channels is given"
            )
        if self.kv_channels is not None and (not isinstance(self.kv_channels, int) or self.kv_channels <= 0):
            raise ScaleDAGError(f"Shape.kv_channels: expected a positive integer, got {self.kv_channels!r}")

    @property
    def key_size(self) -> int:
        """Per-head query/key/value size."""
        return self.kv_channels if self.kv_channels is not None else self.hidden // self.heads

    @property
    def attn_width(self) -> int:
        """key_size * heads: the width of Q, K, V and of the attention output."""
        return self.key_size * self.heads

    @property
    def ffn_matrices(self) -> int:
        """Number of hidden x ffn_hidden matrices in the FFN: 3 for GLU, else 2."""
        return 3 if self.glu else 2


def param_count(
    shape: Shape,
    tied_embeddings: bool = False,
    include_embeddings: bool = True,
    biases: bool = True,
    learned_positions: bool = False,
    embedding_norm: bool = False,
) -> int:
    """Number of trainable parameters of a pre-norm GPT with this shape.

    Counted, per layer:
      - attention: QKV weight d x 3w and output weight w x d (w = key_size * heads);
      - FFN: 2 (or 3 with glu) matrices of d x ffn_hidden;
      - two LayerNorms (weight d each; with biases=False this is also an RMSNorm count);
      - with `biases`: QKV bias 3w, output bias d, FFN biases (ffn_hidden per up/gate matrix,
        d for the down matrix) and the LayerNorm biases (d each).
    Plus a final LayerNorm (d, + d bias with `biases`).

    Embeddings (counted only with `include_embeddings`): the input embedding vocab x d and the
    output (unembedding) matrix vocab x d, which has no bias and is not counted again when
    `tied_embeddings`. Position embeddings are excluded (rotary / none) unless
    `learned_positions`, which adds seq_length x d (it is an embedding, so it also needs
    `include_embeddings`). `embedding_norm` (BLOOM's LayerNorm after the embedding, always with a
    bias: workflow/model/embedding_norm.py) adds 2 d, counted with the embeddings. `include_embeddings=False` gives
    Kaplan-style "non-embedding" N.
    """
    d, f, w = shape.hidden, shape.ffn_hidden, shape.attn_width
    attention = d * 3 * w + w * d
    ffn = shape.ffn_matrices * d * f
    norms = 2 * d
    if biases:
        attention += 3 * w + d
        ffn += (shape.ffn_matrices - 1) * f + d
        norms += 2 * d
    per_layer = attention + ffn + norms
    total = shape.layers * per_layer + (2 * d if biases else d)  # + final norm
    if include_embeddings:
        total += shape.vocab_size * d * (1 if tied_embeddings else 2)
        if learned_positions:
            total += shape.seq_length * d
        if embedding_norm:
            total += 2 * d
    return int(total)


def flops_6nd(n_params: float, tokens: float) -> float:
    """Training FLOPs by the C = 6 N D approximation (forward 2 N, backward 4 N per token)."""
    return 6.0 * float(n_params) * float(tokens)


def chinchilla_flops_breakdown(shape: Shape) -> dict[str, int]:
    """Forward FLOPs of one sequence, term by term, as in Chinchilla Appendix F.

    Per-layer terms (attention and dense) are for ONE layer; `forward` and `training` are the
    totals: forward = embeddings + layers * (attention + dense) + final_logits,
    training = 3 * forward.
    """
    s, d, v, h = shape.seq_length, shape.hidden, shape.vocab_size, shape.heads
    w = shape.attn_width  # key_size * heads
    terms = {
        "embeddings": 2 * s * v * d,
        "attention_qkv": 2 * 3 * s * d * w,
        "attention_logits": 2 * s * s * w,
        "attention_softmax": 3 * h * s * s,
        "attention_reduction": 2 * s * s * w,
        "attention_project": 2 * s * w * d,
        # 2 matrices of d x ffw; a GLU has 3 (x 1.5).
        "dense": 2 * s * d * shape.ffn_hidden * shape.ffn_matrices,
        "final_logits": 2 * s * d * v,
    }
    terms["attention"] = (
        terms["attention_qkv"]
        + terms["attention_logits"]
        + terms["attention_softmax"]
        + terms["attention_reduction"]
        + terms["attention_project"]
    )
    terms["forward"] = (
        terms["embeddings"] + shape.layers * (terms["attention"] + terms["dense"]) + terms["final_logits"]
    )
    terms["training"] = 3 * terms["forward"]
    return terms


def chinchilla_forward_flops_per_sequence(shape: Shape) -> int:
    """Chinchilla Appendix F forward FLOPs for one sequence of `shape.seq_length` tokens."""
    return chinchilla_flops_breakdown(shape)["forward"]


def chinchilla_training_flops_per_token(shape: Shape) -> float:
    """Chinchilla training FLOPs per token: 3 x forward-per-sequence / seq_length."""
    return chinchilla_flops_breakdown(shape)["training"] / shape.seq_length


def table_a4_training_flops_per_token(shape: Shape) -> float:
    """Appendix F's training FLOPs per token without the embedding and final-logit terms: the
    count under which Table A4's ratios to 6N (0.99-1.10) come out."""
    t = chinchilla_flops_breakdown(shape)
    return 3 * shape.layers * (t["attention"] + t["dense"]) / shape.seq_length
