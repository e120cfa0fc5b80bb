"""ALiBi (Press et al., arXiv 2108.12409) as a Megatron-core core-attention module.

megatron-core 0.16.1 has no ALiBi: its local ``DotProductAttention`` asserts ``attention_bias is
None``.  ``ALiBiDotProductAttention`` is a drop-in ``core_attention`` for Megatron's
``SelfAttentionSubmodules`` (same constructor and forward signature as ``DotProductAttention``,
which it subclasses), plugged in through the layer spec by ``workflow.model.gpt.layer_spec`` — no
Megatron source is changed.  It computes

    softmax(Q Kᵀ / sqrt(d) + causal mask − m_h · (i − j)) V

with ``torch.nn.functional.scaled_dot_product_attention`` and an additive float bias (i: query
position, j: key position, m_h: the head's slope).  BLOOM adds ``m_h · j`` instead, which differs
from ``−m_h · (i − j)`` by a per-row constant and therefore gives the same softmax.

Tensor parallelism: rank r of a TP group of size tp holds heads [r·n/tp, (r+1)·n/tp) (Megatron's
column-parallel QKV split is head-contiguous), so it uses exactly those slopes
(``alibi_slopes_for_rank``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "alibi_slopes",
    "alibi_slopes_for_rank",
    "alibi_bias",
    "ALiBiDotProductAttention",
]


def _power_of_2_slopes(n: int) -> list[float]:
    # m_h = 2^(-8h/n), h = 1..n
    return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """The standard ALiBi slopes (fp32, shape [num_heads]), as in Press et al.'s / BLOOM's ``get_slopes``.

    For n a power of two, m_h = 2^(-8h/n) for h = 1..n.  Otherwise take the slopes of the closest
    smaller power of two c, then the odd-indexed (every other, starting at the first) slopes of 2c
    for the remaining n - c heads."""
    n = int(num_heads)
    if n < 1:
        raise ValueError(f"num_heads must be >= 1, got {num_heads}")
    closest = 2 ** int(math.floor(math.log2(n)))
    slopes = _power_of_2_slopes(closest)
    if closest != n:
        slopes += alibi_slopes(2 * closest).tolist()[0::2][: n - closest]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_slopes_for_rank(num_heads: int, tp_rank: int, tp_size: int) -> torch.Tensor:
    """Slopes of the heads held by tensor-parallel rank `tp_rank`: heads [r·n/tp, (r+1)·n/tp)."""
    if tp_size < 1 or num_heads % tp_size:
        raise ValueError(f"tensor parallel size {tp_size} must divide the number of heads ({num_heads})")
    if not 0 <= tp_rank < tp_size:
        raise ValueError(f"tensor parallel rank {tp_rank} out of range for size {tp_size}")
    per_rank = num_heads // tp_size
    return alibi_slopes(num_heads)[tp_rank * per_rank : (tp_rank + 1) * per_rank]


def alibi_bias(
    num_heads: int,
    seq: int,
    *,
    key_seq: int | None = None,
    slopes: Tensor | None = None,
    causal: bool = True,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Additive attention bias of shape [num_heads, seq, key_seq]: −m_h·(i−j), plus −inf where j > i
    when `causal`.  `slopes` (shape [num_heads]) defaults to ``alibi_slopes(num_heads)``.

    Query positions are aligned to the end of the keys (i runs over the last `seq` of `key_seq`
    positions), so a shorter query block (incremental decoding) gets the right distances."""
    key_seq = seq if key_seq is None else int(key_seq)
    if slopes is None:
        slopes = alibi_slopes(num_heads)
    if slopes.numel() != num_heads:
        raise ValueError(f"got {slopes.numel()} slopes for {num_heads} heads")
    i = torch.arange(key_seq - seq, key_seq, device=device, dtype=torch.float32).view(-1, 1)
    j = torch.arange(key_seq, device=device, dtype=torch.float32).view(1, -1)
    distance = i - j  # [seq, key_seq], >= 0 on and below the diagonal
    bias = -slopes.to(device=device, dtype=torch.float32).view(-1, 1, 1) * distance
    if causal:
        bias = bias.masked_fill(distance < 0, float("-inf"))
    return bias.to(dtype)


def _dot_product_attention_base():
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    return DotProductAttention


class ALiBiDotProductAttention(_dot_product_attention_base()):
    """Causal SDPA core attention with a per-head linear ALiBi bias; TP-aware slopes.

    Inputs query/key/value are [s, b, heads_per_partition (or groups), head_dim]; output is
    [sq, b, heads_per_partition · head_dim], exactly like ``DotProductAttention``.  An
    ``attention_mask`` given by the caller (Megatron convention: bool, True = masked, broadcastable
    to [b, np, sq, sk]) is applied on top of the causal mask.  Dropout: ``attention_dropout`` if
    given, else ``config.attention_dropout``, applied only in training.
    """

    def __init__(
        self,
        config,
        layer_number,
        attn_mask_type,
        attention_type,
        attention_dropout=None,
        softmax_scale=None,
        cp_comm_type=None,
        pg_collection=None,
    ):
        super().__init__(
            config=config,
            layer_number=layer_number,
            attn_mask_type=attn_mask_type,
            attention_type=attention_type,
            attention_dropout=attention_dropout,
            softmax_scale=softmax_scale,
            cp_comm_type=cp_comm_type,
            pg_collection=pg_collection,
        )
        if self.config.softmax_type != "vanilla":
            raise ValueError(f"ALiBi attention supports softmax_type 'vanilla' only, got {self.config.softmax_type!r}")
        if self.config.window_size is not None:
            raise ValueError("ALiBi attention does not support sliding-window attention (window_size)")
        # DotProductAttention divides softmax_scale by the layer number under
        # apply_query_key_layer_scaling and multiplies it back inside its fused softmax;
        # SDPA applies the scale once, so undo the division.
        if self.config.apply_query_key_layer_scaling:
            self.softmax_scale *= self.layer_number
        self.dropout_p = float(self.config.attention_dropout if attention_dropout is None else attention_dropout)
        self.tp_rank = self.tp_group.rank() if self.tp_group is not None else 0
        self.tp_size = self.tp_group.size() if self.tp_group is not None else 1
        slopes = alibi_slopes_for_rank(self.config.num_attention_heads, self.tp_rank, self.tp_size)
        assert slopes.numel() == self.num_attention_heads_per_partition
        # Not a parameter and not persistent: recomputed from the config, never checkpointed.
        self.register_buffer("alibi_slopes", slopes, persistent=False)
        self._bias_cache: dict = {}

    def _bias(self, sq: int, sk: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (sq, sk, dtype, device)
        bias = self._bias_cache.get(key)
        if bias is None:
            bias = alibi_bias(
                self.num_attention_heads_per_partition,
                sq,
                key_seq=sk,
                slopes=self.alibi_slopes,
                causal=True,
                dtype=dtype,
                device=device,
            )
            self._bias_cache = {key: bias}  # keep only the latest shape
        return bias

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        attn_mask_type=None,
        attention_bias: Tensor | None = None,
        packed_seq_params=None,
    ) -> Tensor:
        if packed_seq_params is not None:
            raise NotImplementedError("packed sequences are not supported by ALiBiDotProductAttention")
        sq, b, np_, hn = query.shape
        sk = key.size(0)
        # GQA: expand the key/value groups to the query heads, as DotProductAttention does.
        groups = key.size(2)
        if np_ // groups > 1:
            key = key.repeat_interleave(np_ // groups, dim=2)
            value = value.repeat_interleave(np_ // groups, dim=2)

        # [s, b, n, h] -> [b, n, s, h]
        q = query.permute(1, 2, 0, 3)
        k = key.permute(1, 2, 0, 3)
        v = value.permute(1, 2, 0, 3)

        bias = self._bias(sq, sk, q.dtype, q.device).unsqueeze(0)  # [1, np, sq, sk]
        if attention_mask is not None:
            bias = bias.masked_fill(attention_mask.to(torch.bool), float("-inf"))
        if attention_bias is not None:
            bias = bias + attention_bias.to(bias.dtype)

        dropout_p = self.dropout_p if self.training else 0.0
        if dropout_p > 0.0 and not self.config.sequence_parallel:
            from megatron.core import tensor_parallel

            with tensor_parallel.get_cuda_rng_tracker().fork():
                context = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=self.softmax_scale
                )
        else:
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=self.softmax_scale
            )

        # [b, np, sq, hn] -> [sq, b, np * hn]
        return context.permute(2, 0, 1, 3).reshape(sq, b, np_ * hn)
