"""Check workflow.model.flops against a real PyTorch decoder and torch's FlopCounterMode.

Which Chinchilla Appendix F terms are compared, and how:
  - The matmul terms (attention QKV, attention logits QK^T, attention reduction softmax.V,
    attention output projection, dense block, final logits) are compared with
    FlopCounterMode on a real forward + backward pass: training = 3 x forward for them,
    within 2%, at several shapes including a GLU one.
  - The softmax term (3 * heads * seq^2) is NOT counted by FlopCounterMode (it counts only
    matmul/conv-like ops), so it is excluded from the comparison.
  - The embedding term (2 * seq * vocab * d) is NOT counted by FlopCounterMode for an
    nn.Embedding lookup. It is checked separately, forward only, on a model whose embedding is
    a one-hot matmul. (Its backward is 1 x forward there, not 2 x, since the one-hot input
    needs no gradient; Chinchilla's "training = 3 x forward" applies the 3 x to it anyway.)
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workflow.errors import ScaleDAGError
from workflow.model.flops import (
    Shape,
    chinchilla_flops_breakdown,
    chinchilla_forward_flops_per_sequence,
    chinchilla_training_flops_per_token,
    flops_6nd,
    param_count,
)


class Block(nn.Module):
    """Pre-norm decoder block with explicit attention matmuls (so FlopCounterMode sees them)."""

    def __init__(self, shape: Shape, bias: bool):
        super().__init__()
        d, w, f = shape.hidden, shape.attn_width, shape.ffn_hidden
        self.heads, self.key_size, self.glu = shape.heads, shape.key_size, shape.glu
        self.norm1 = nn.LayerNorm(d, bias=bias)
        self.qkv = nn.Linear(d, 3 * w, bias=bias)
        self.proj = nn.Linear(w, d, bias=bias)
        self.norm2 = nn.LayerNorm(d, bias=bias)
        self.up = nn.Linear(d, f, bias=bias)
        self.gate = nn.Linear(d, f, bias=bias) if shape.glu else None
        self.down = nn.Linear(f, d, bias=bias)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, self.key_size).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(self.key_size)
        mask = torch.ones(s, s, dtype=torch.bool).triu(1)
        attn = logits.masked_fill(mask, float("-inf")).softmax(-1) @ v
        x = x + self.proj(attn.transpose(1, 2).reshape(b, s, -1))
        h = self.norm2(x)
        h = F.silu(self.gate(h)) * self.up(h) if self.glu else F.gelu(self.up(h))
        return x + self.down(h)


class GPT(nn.Module):
    """Minimal reference GPT; `one_hot_embedding` makes the embedding a matmul FlopCounterMode counts."""

    def __init__(self, shape: Shape, bias: bool = True, one_hot_embedding: bool = False):
        super().__init__()
        self.vocab_size, self.one_hot = shape.vocab_size, one_hot_embedding
        self.embed = nn.Embedding(shape.vocab_size, shape.hidden)
        self.blocks = nn.ModuleList(Block(shape, bias) for _ in range(shape.layers))
        self.norm = nn.LayerNorm(shape.hidden, bias=bias)
        self.out = nn.Linear(shape.hidden, shape.vocab_size, bias=False)

    def forward(self, tokens):
        if self.one_hot:
            x = F.one_hot(tokens, self.vocab_size).to(self.embed.weight.dtype) @ self.embed.weight
        else:
            x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))


SHAPES = [
    Shape(layers=2, hidden=64, heads=4, ffn_hidden=256, vocab_size=512, seq_length=32),
    Shape(layers=3, hidden=96, heads=3, ffn_hidden=384, vocab_size=1000, seq_length=128),
    Shape(layers=2, hidden=128, heads=8, ffn_hidden=344, vocab_size=777, seq_length=64, glu=True),
    Shape(layers=1, hidden=64, heads=4, ffn_hidden=128, vocab_size=300, seq_length=48, kv_channels=8),
]


def _count(model, tokens, backward: bool) -> int:
    with FlopCounterMode(display=False) as counter:
        logits = model(tokens)
        if backward:
            F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"L{s.layers}d{s.hidden}{'glu' if s.glu else ''}")
def test_matmul_terms_match_flop_counter(shape):
    torch.manual_seed(0)
    batch = 2
    model = GPT(shape)
    tokens = torch.randint(0, shape.vocab_size, (batch, shape.seq_length))
    counted = _count(model, tokens, backward=True)

    t = chinchilla_flops_breakdown(shape)
    matmul_per_layer = (
        t["attention_qkv"] + t["attention_logits"] + t["attention_reduction"] + t["attention_project"] + t["dense"]
    )
    expected = 3 * batch * (shape.layers * matmul_per_layer + t["final_logits"])
    assert counted == pytest.approx(expected, rel=0.02)
    # The full Chinchilla training count differs from the counter only by embeddings + softmax.
    not_counted = 3 * batch * (t["embeddings"] + shape.layers * t["attention_softmax"])
    assert batch * t["training"] - not_counted == pytest.approx(counted, rel=0.02)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=["small", "mid", "glu"])
def test_embedding_term_as_one_hot_matmul(shape):
    torch.manual_seed(0)
    tokens = torch.randint(0, shape.vocab_size, (1, shape.seq_length))
    with torch.no_grad():
        with_lookup = _count(GPT(shape), tokens, backward=False)
        with_matmul = _count(GPT(shape, one_hot_embedding=True), tokens, backward=False)
    t = chinchilla_flops_breakdown(shape)
    assert with_matmul - with_lookup == t["embeddings"]
    # Forward without the softmax term (which the counter does not see) matches exactly.
    assert with_matmul == pytest.approx(t["forward"] - shape.layers * t["attention_softmax"], rel=0.02)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"L{s.layers}d{s.hidden}{'glu' if s.glu else ''}")
def test_param_count_matches_model(shape, bias):
    model = GPT(shape, bias=bias)
    n_model = sum(p.numel() for p in model.parameters())
    assert param_count(shape, biases=bias) == n_model
    embeddings = model.embed.weight.numel() + model.out.weight.numel()
    assert param_count(shape, biases=bias, include_embeddings=False) == n_model - embeddings
    assert param_count(shape, biases=bias, tied_embeddings=True) == n_model - model.out.weight.numel()
    assert param_count(shape, biases=bias, learned_positions=True) == n_model + shape.seq_length * shape.hidden


def test_chinchilla_totals_and_6nd_are_consistent():
    shape = Shape(layers=24, hidden=2048, heads=16, ffn_hidden=8192, vocab_size=32000, seq_length=2048)
    t = chinchilla_flops_breakdown(shape)
    assert chinchilla_forward_flops_per_sequence(shape) == t["forward"]
    assert chinchilla_training_flops_per_token(shape) == pytest.approx(3 * t["forward"] / 2048)
    assert t["attention"] == sum(t[k] for k in t if k.startswith("attention_"))
    # For a mid-size model Chinchilla's count is within ~10% of 6 N D (the paper's Table A4 point).
    n = param_count(shape, include_embeddings=True)
    ratio = chinchilla_training_flops_per_token(shape) / flops_6nd(n, 1)
    assert 0.9 < ratio < 1.2
    glu = Shape(layers=24, hidden=2048, heads=16, ffn_hidden=8192, vocab_size=32000, seq_length=2048, glu=True)
    assert chinchilla_flops_breakdown(glu)["dense"] == 1.5 * t["dense"]
    assert flops_6nd(1e9, 2e10) == 1.2e20


@pytest.mark.parametrize(
    "kwargs",
    [dict(layers=0), dict(hidden=65), dict(heads=-1), dict(vocab_size=1.5), dict(kv_channels=0)],
)
def test_bad_shapes_raise(kwargs):
    base = dict(layers=2, hidden=64, heads=4, ffn_hidden=256, vocab_size=512, seq_length=32)
    with pytest.raises(ScaleDAGError):
        Shape(**{**base, **kwargs})
