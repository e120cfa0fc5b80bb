"""Let megatron-core 0.16.1 train on a CPU-only torch, in one place and only when no GPU exists.

megatron-core assumes CUDA in a few spots (measured, see ../shared/notes/megatron-core-cpu.md):
  (a) ``torch.cuda.current_device()`` (~30 call sites, e.g. rotary embeddings) must name the CPU;
  (b) ``torch.cuda.synchronize()`` (dist_checkpointing) must be a no-op;
  (c) hard-coded ``device="cuda"``, ``Tensor.cuda()`` and ``'torch.cuda.FloatTensor'`` type checks in
      the optimizer, grad clipping and schedules must be redirected to the CPU.
(a) and (b) are patched on ``torch.cuda``; (c) is a ``TorchFunctionMode`` that rewrites device
arguments, so no Megatron source is touched.  On a machine with a GPU ``activate()`` does nothing
and the code path is Megatron's own.

Two costs of the CPU path are removed here too, because the training loop must keep up with a plain
PyTorch loop (issue #20, benchmarks/train_cpu.py):
  - the mode is a Python hop on every torch call. The model's forward makes no CUDA placement
    request (its only one, ``torch.cuda.current_device()``, is (a)), so ``model_compute()`` lifts the
    mode there; backward ops never pass through it. Measured: 129.7 -> 126.6 ms per tiny micro-batch.
  - Megatron's unfused RoPE (the path without Transformer Engine) ends with
    ``cat((rotated, pass_through))`` even when the pass-through slice is empty (rotary_percent 1),
    one full copy of q and of k per layer, forward and backward. ``_rope_bshd`` is the same
    arithmetic without that copy when nothing passes through, and Megatron's own function
    otherwise. Measured: 126.6 -> 124.7 ms per micro-batch (HF LLaMA, same weights: 126.1).
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode

MEGATRON_CORE_VERSION = "0.16.1"  # the version these fixes were measured against

_ACTIVE_MODE: CudaToCpuMode | None = None
_ORIGINALS: dict = {}


def _is_cuda(device) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return False


class CudaToCpuMode(TorchFunctionMode):
    """Rewrites CUDA placement requests made inside Megatron into CPU ones."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        # Every torch call of forward and backward passes through here; almost none carries a
        # device, so those go straight through without building a kwargs dict.
        if not kwargs and func not in _REWRITTEN:
            return func(*args)
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.cuda:
            return args[0]
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            # clip_grads asserts grad.type() == 'torch.cuda.FloatTensor'
            name = func(*args)
            return name.replace("torch.", "torch.cuda.", 1) if not name.startswith("torch.cuda.") else name
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        if func in (torch.Tensor.to,) and args and len(args) > 1 and _is_cuda(args[1]):
            args = (args[0], "cpu") + tuple(args[2:])
        return func(*args, **kwargs)


_REWRITTEN = frozenset({torch.Tensor.cuda, torch.Tensor.type, torch.Tensor.to})


def _rope_bshd(t, freqs, rotary_interleaved=False, multi_latent_attention=False, mscale=1.0):
    """Megatron's ``_apply_rotary_pos_emb_bshd`` without concatenating an empty pass-through slice.

    The rotation itself is Megatron's ``_rotate_half``; only partial RoPE (a non-empty pass-through
    slice) and MLA's re-ordering go to Megatron's own function."""
    if multi_latent_attention or freqs.shape[-1] != t.shape[-1]:
        return _ORIGINALS["rope_bshd"](t, freqs, rotary_interleaved, multi_latent_attention, mscale)
    cos_ = (torch.cos(freqs) * mscale).to(t.dtype)
    sin_ = (torch.sin(freqs) * mscale).to(t.dtype)
    return t * cos_ + _ORIGINALS["rotate_half"](t, rotary_interleaved) * sin_


def cpu_mode_needed() -> bool:
    return not torch.cuda.is_available()


def activate() -> bool:
    """Install the CPU shims if (and only if) there is no GPU. Idempotent; returns whether active."""
    global _ACTIVE_MODE
    if not cpu_mode_needed():
        return False
    if _ACTIVE_MODE is not None:
        return True
    _ORIGINALS["current_device"] = torch.cuda.current_device
    _ORIGINALS["synchronize"] = torch.cuda.synchronize
    torch.cuda.current_device = lambda: torch.device("cpu")
    torch.cuda.synchronize = lambda *a, **k: None
    from megatron.core.models.common.embeddings import rope_utils

    _ORIGINALS["rope_bshd"] = rope_utils._apply_rotary_pos_emb_bshd
    _ORIGINALS["rotate_half"] = rope_utils._rotate_half
    rope_utils._apply_rotary_pos_emb_bshd = _rope_bshd
    _ACTIVE_MODE = CudaToCpuMode()
    _ACTIVE_MODE.__enter__()
    return True


def deactivate() -> None:
    """Undo `activate` (used by tests to prove the shims are what make CPU training work)."""
    global _ACTIVE_MODE
    if _ACTIVE_MODE is None:
        return
    _ACTIVE_MODE.__exit__(None, None, None)
    _ACTIVE_MODE = None
    torch.cuda.current_device = _ORIGINALS.pop("current_device")
    torch.cuda.synchronize = _ORIGINALS.pop("synchronize")
    from megatron.core.models.common.embeddings import rope_utils

    rope_utils._apply_rotary_pos_emb_bshd = _ORIGINALS.pop("rope_bshd")
    _ORIGINALS.pop("rotate_half")


@contextlib.contextmanager
def model_compute():
    """Run a model forward without the device-rewriting mode (see the module docstring); a no-op
    when the shims are not active. A CUDA request inside would fail loudly, not run on a GPU."""
    if _ACTIVE_MODE is None:
        yield
        return
    _ACTIVE_MODE.__exit__(None, None, None)
    try:
        yield
    finally:
        _ACTIVE_MODE.__enter__()


def is_active() -> bool:
    return _ACTIVE_MODE is not None


def initialize_rng(seed: int) -> None:
    """Seed every RNG Megatron uses; on CPU use the tracker that needs no CUDA RNG state.

    ``model_parallel_cuda_manual_seed`` fails without CUDA; the inference tracker does not, at the
    price that dropout is not decorrelated across TP ranks, so CPU runs train with dropout 0."""
    import random

    import numpy as np
    from megatron.core import tensor_parallel

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        tensor_parallel.model_parallel_cuda_manual_seed(seed)
    else:
        tensor_parallel.random.initialize_rng_tracker(inference_rng_tracker=True, force_reset=True)
