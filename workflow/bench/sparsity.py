"""2:4 semi-structured sparse weights for the block micro-benchmark, or an honest "unsupported".

`torch.sparse.to_sparse_semi_structured` runs only on CUDA devices with sparse tensor cores
(compute capability >= 8.0, fp16/bf16, shape constraints). Support is decided by *trying* the
conversion and one sparse matmul on the benchmark's own weights: any failure (CPU, older GPU, ROCm
without hipSPARSELt, odd shapes) is returned as the reason and the point is recorded unsupported —
never silently benchmarked dense.

What is sparse: every Megatron linear of the block (QKV, attention projection, FC1, FC2) gets its
weight pruned 2:4 (two largest magnitudes of each group of four along the input dimension) and the
*forward* GEMM runs on the compressed weight. The backward needs W^T, whose rows are not 2:4, so
grad-input and grad-weight are dense GEMMs on the masked weight (grad-weight masked): the speed-up
of a training step is bounded by the forward's share of the GEMM FLOPs (about one third).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LINEAR_CLASSES = ("ColumnParallelLinear", "RowParallelLinear")


def mask_2to4(weight: torch.Tensor) -> torch.Tensor:
    """Boolean mask keeping the 2 largest-|w| of every 4 consecutive input-dim entries of each row."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        raise ValueError(f"2:4 pruning needs a 2-D weight with input dim divisible by 4, got {tuple(weight.shape)}")
    groups = weight.detach().abs().reshape(weight.shape[0], -1, 4)
    keep = groups.topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(weight.shape)


def prune_2to4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pruned weight, mask): exactly half the entries are zero, in the 2:4 pattern."""
    mask = mask_2to4(weight)
    return weight.detach() * mask, mask


def _compress(weight: torch.Tensor):
    from torch.sparse import to_sparse_semi_structured

    return to_sparse_semi_structured(weight)


class _SparseForwardLinear(torch.autograd.Function):
    """y = x W^T with W compressed for the forward; dense masked GEMMs for the backward."""

    @staticmethod
    def forward(ctx, x2d, weight, compressed, mask):
        ctx.save_for_backward(x2d, weight, mask)
        return F.linear(x2d, compressed)

    @staticmethod
    def backward(ctx, grad_out):
        x2d, weight, mask = ctx.saved_tensors
        grad_x = grad_out @ weight
        grad_w = (grad_out.t() @ x2d) * mask
        return grad_x, grad_w, None, None


class SemiStructuredLinear(torch.nn.Module):
    """Stands in for a Megatron Column/RowParallelLinear (TP=1): same (output, bias) return."""

    def __init__(self, linear: torch.nn.Module, compress: Callable = _compress):
        super().__init__()
        pruned, mask = prune_2to4(linear.weight)
        self.weight = torch.nn.Parameter(pruned)
        self.register_buffer("mask", mask, persistent=False)
        self.compressed = compress(pruned)
        self.bias = linear.bias if getattr(linear, "bias", None) is not None else None
        self.skip_bias_add = bool(getattr(linear, "skip_bias_add", False))

    def forward(self, input_, *args, **kwargs):
        shape = input_.shape
        out = _SparseForwardLinear.apply(input_.reshape(-1, shape[-1]), self.weight, self.compressed, self.mask)
        out = out.reshape(*shape[:-1], out.shape[-1])
        if self.bias is not None and not self.skip_bias_add:
            return out + self.bias, None
        return out, self.bias if self.skip_bias_add else None


def linear_modules(block: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in block.named_modules() if type(m).__name__ in LINEAR_CLASSES]


def semi_structured_support(block: torch.nn.Module, dtype: torch.dtype) -> tuple[bool, str | None]:
    """Try compressing each linear's weight and one sparse matmul; (supported, reason if not)."""
    linears = linear_modules(block)
    if not linears:
        return False, "block has no Megatron linear layers to sparsify"
    for name, lin in linears:
        w = lin.weight.detach()
        try:
            pruned, _ = prune_2to4(w.to(dtype))
            compressed = _compress(pruned)
            x = torch.randn(64, w.shape[1], device=w.device, dtype=dtype)
            F.linear(x, compressed)
        except Exception as exc:  # noqa: BLE001 -- any failure means "not supported here", with why
            msg = " ".join(str(exc).split())[:300]
            return (
                False,
                f"{name} {tuple(w.shape)} {w.device.type}/{str(dtype).replace('torch.', '')}: {type(exc).__name__}: {msg}",
            )
    return True, None


def sparsify_block(block: torch.nn.Module, compress: Callable = _compress) -> list[str]:
    """Replace every Megatron linear of `block` in place with a 2:4 SemiStructuredLinear."""
    replaced = []
    for name, lin in linear_modules(block):
        parent_name, _, child = name.rpartition(".")
        parent = block.get_submodule(parent_name) if parent_name else block
        setattr(parent, child, SemiStructuredLinear(lin, compress=compress))
        replaced.append(name)
    return replaced
