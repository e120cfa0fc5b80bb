"""Causal core attention through torch's fused `scaled_dot_product_attention`, for the local spec.

Megatron's local ``DotProductAttention`` materialises the scores (baddbmm, mask fill, softmax, bmm);
SDPA fuses them (flash/memory-efficient kernels on GPU, a fused kernel on CPU). Used as the local
spec's ``core_attention`` when neither ALiBi nor Transformer Engine is in play; anything it does
not cover (an explicit mask or bias, packed sequences, attention dropout) falls back to Megatron's
own implementation, so behaviour is unchanged — only faster.
"""

from __future__ import annotations

import torch.nn.functional as F
from megatron.core.transformer.enums import AttnMaskType

from workflow.model.alibi import _dot_product_attention_base


class SDPADotProductAttention(_dot_product_attention_base()):
    def forward(
        self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None, packed_seq_params=None
    ):
        dropout = self.config.attention_dropout if self.training else 0.0
        causal = self.attn_mask_type == AttnMaskType.causal and query.size(0) == key.size(0)
        if (
            not causal
            or attention_mask is not None
            or attention_bias is not None
            or packed_seq_params is not None
            or dropout > 0
        ):
            return super().forward(
                query,
                key,
                value,
                attention_mask,
                attn_mask_type=attn_mask_type,
                attention_bias=attention_bias,
                packed_seq_params=packed_seq_params,
            )
        sq, b, heads, head_dim = query.shape
        groups = key.size(2)
        if heads // groups > 1:  # grouped-query attention: expand key/value groups to the heads
            key = key.repeat_interleave(heads // groups, dim=2)
            value = value.repeat_interleave(heads // groups, dim=2)
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))  # [s, b, n, h] -> [b, n, s, h]
        scale = self.softmax_scale * (self.layer_number if self.config.apply_query_key_layer_scaling else 1)
        context = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        return context.permute(2, 0, 1, 3).reshape(sq, b, heads * head_dim)
