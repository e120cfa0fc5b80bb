"""Transformer-block micro-benchmark: one Megatron-core TransformerLayer, forward + backward.

Run as `python -m workflow.bench.block --spec JSON --out rows.jsonl`. For every point of the sweep
(hidden x seq length x micro-batch) it times `warmup` untimed then `repeats` timed iterations and
keeps the median (CUDA events + synchronise on GPU, perf_counter on CPU). Each row names the device
read at run time and the software versions, so files from several machines concatenate into one
table. With `sparsity` each point is measured again with 2:4 sparse weights, or recorded
`unsupported` with the reason (workflow.bench.sparsity).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

from workflow.bench.sparsity import semi_structured_support, sparsify_block
from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.hpc.launch import init_distributed, shutdown
from workflow.io import atomic_write_text
from workflow.model import megatron_cpu
from workflow.model.flops import Shape, chinchilla_flops_breakdown
from workflow.model.gpt import layer_spec, make_model_spec, transformer_config


def device_name() -> str:
    """The same label the training loop writes into summary.json (workflow.train.pretrain)."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"


def run_environment() -> dict:
    """Device and software labels every benchmark row carries."""
    from importlib.metadata import version

    return {
        "device": device_name(),
        "device_type": "cuda" if torch.cuda.is_available() else "cpu",
        "host": platform.node(),
        "torch": torch.__version__,
        "megatron_core": version("megatron-core"),
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "python": platform.python_version(),
    }


class Timer:
    """Milliseconds of one call: CUDA events on GPU (device time), perf_counter on CPU."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()

    def __call__(self, fn) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def median_ms(fn, warmup: int, repeats: int, timer: Timer | None = None) -> tuple[float, list[float]]:
    """Median of `repeats` timed calls after `warmup` untimed ones (warm-up never counted)."""
    if repeats < 1:
        raise ScaleDAGError(f"repeats must be >= 1, got {repeats}")
    timer = timer or Timer()
    for _ in range(warmup):
        fn()
    times = [timer(fn) for _ in range(repeats)]
    return statistics.median(times), times


class PeakMemory:
    """Peak memory of one call. GPU: allocator peak. CPU (Linux): the resident-set high-water mark
    (VmHWM, reset through /proc/self/clear_refs) minus the resident set before the call."""

    def measure(self, fn) -> tuple[float | None, str]:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20, "cuda max_memory_allocated - allocated before"
        try:
            before = self._status("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")
        except OSError as exc:
            fn()
            return None, f"unavailable: {exc.strerror or exc}"
        fn()
        return (self._status("VmHWM") - before) / 1024, "cpu VmHWM - VmRSS before (KiB->MiB)"

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise OSError(f"{key} not in /proc/self/status")


def activation_mb(fn) -> float:
    """Bytes autograd saves for backward during `fn` (device-independent activation memory)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total / 2**20


def block_flops(spec, micro: int) -> dict:
    """Forward and training FLOPs of one layer (Chinchilla appendix F: attention + dense; x3 to train)."""
    t = chinchilla_flops_breakdown(Shape(1, spec.hidden, spec.heads, spec.ffn_hidden, 1, spec.seq_length, glu=spec.glu))
    fwd = micro * (t["attention"] + t["dense"])
    return {"forward": fwd, "training": 3 * fwd}


def build_layer(spec, bf16: bool):
    from megatron.core.transformer.spec_utils import build_module

    layer = build_module(layer_spec(spec), config=transformer_config(spec, bf16=bf16), layer_number=1)
    return layer.cuda() if torch.cuda.is_available() else layer


def rotary(spec):
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

    emb = RotaryEmbedding(kv_channels=spec.hidden // spec.heads, rotary_percent=spec.rotary_percent)(spec.seq_length)
    return emb.cuda() if torch.cuda.is_available() else emb


def measure_point(layer, spec, micro: int, warmup: int, repeats: int, dtype: torch.dtype) -> dict:
    """Median fwd (no grad) and fwd+bwd times, tokens/s, TFLOP/s, peak and activation memory."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(spec.seq_length, micro, spec.hidden, device=dev, dtype=dtype, requires_grad=True)
    grad = torch.randn_like(x)
    rope = rotary(spec)

    def forward():
        return layer(x, attention_mask=None, rotary_pos_emb=rope)[0]

    def fwd_only():
        with torch.no_grad():
            forward()

    def fwd_bwd():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        forward().backward(grad)

    fwd_ms, _ = median_ms(fwd_only, warmup, repeats)
    step_ms, times = median_ms(fwd_bwd, warmup, repeats)
    peak, source = PeakMemory().measure(fwd_bwd)
    act = activation_mb(forward)
    flops = block_flops(spec, micro)
    tokens = spec.seq_length * micro
    return {
        "fwd_ms": fwd_ms,
        "fwd_bwd_ms": step_ms,
        "fwd_bwd_ms_all": times,
        "tokens_per_s": tokens / (step_ms / 1e3),
        "tflops": flops["training"] / (step_ms / 1e3) / 1e12,
        "fwd_tflops": flops["forward"] / (fwd_ms / 1e3) / 1e12,
        "flops_training": flops["training"],
        "peak_memory_mb": peak,
        "peak_memory_source": source,
        "activation_mb": act,
    }


def unless_oom(fn):
    """(result, None), or (None, reason) when the device runs out of memory: the point is recorded
    as `oom` and the sweep goes on (long sequences of big layers do not fit every device)."""
    try:
        return fn(), None
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        # CUDA raises OutOfMemoryError; the CPU allocator a RuntimeError "... can't allocate memory"
        if not isinstance(exc, torch.OutOfMemoryError) and "can't allocate memory" not in str(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None, "OutOfMemoryError: " + " ".join(str(exc).split())[:200]


def run(spec: dict, out: str) -> list[dict]:
    megatron_cpu.activate()
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))

    init_distributed(1, 1)
    megatron_cpu.initialize_rng(1234)
    bf16 = bool(spec.get("bf16")) and torch.cuda.is_available()
    dtype = torch.bfloat16 if bf16 else torch.float32
    env = run_environment()
    rows = []
    try:
        points = spec["points"]
        for i, p in enumerate(points):
            mspec = make_model_spec(
                spec["arch"],
                {"layers": 1, "hidden": p["hidden"], "heads": p["heads"], "seq_length": p["seq_length"]},
                vocab_size=1,
            )
            base = {
                **env,
                "study": spec["study"],
                "scale": spec["scale"],
                "arch": spec["arch"],
                **p,
                "ffn_hidden": mspec.ffn_hidden,
                "dtype": str(dtype).replace("torch.", ""),
                "warmup": spec["warmup"],
                "repeats": spec["repeats"],
            }
            layer = build_layer(mspec, bf16)
            dense, oom = unless_oom(
                partial(measure_point, layer, mspec, p["micro_batch_size"], spec["warmup"], spec["repeats"], dtype)
            )
            rows.append({**base, "mode": "dense", "status": "oom" if oom else "ok", "reason": oom, **(dense or {})})
            print(
                f"[{i + 1}/{len(points)}] {spec['arch']} h={p['hidden']} s={p['seq_length']} b={p['micro_batch_size']}: "
                + (oom or f"{dense['tokens_per_s']:,.0f} tok/s {dense['tflops']:.4f} TFLOP/s"),
                flush=True,
            )
            if spec.get("sparsity"):  # the DAG passes the study's `sparsity` (schema default true)
                ok, reason = semi_structured_support(layer, dtype)
                row = {**base, "mode": "sparse24", "status": "ok" if ok else "unsupported", "reason": reason}
                if ok:
                    sparsify_block(layer)
                    sparse, oom = unless_oom(
                        partial(
                            measure_point, layer, mspec, p["micro_batch_size"], spec["warmup"], spec["repeats"], dtype
                        )
                    )
                    if oom:
                        row.update(status="oom", reason=oom)
                    else:
                        row.update(sparse)
                        if dense:
                            row.update(
                                speedup_fwd=dense["fwd_ms"] / sparse["fwd_ms"],
                                speedup_fwd_bwd=dense["fwd_bwd_ms"] / sparse["fwd_bwd_ms"],
                            )
                else:
                    print(f"    sparse 2:4 unsupported: {reason}", flush=True)
                rows.append(row)
            del layer
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    finally:
        shutdown()
    atomic_write_text(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return rows


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON from workflow.studies.benchmarks.block_spec")
    parser.add_argument("--out", required=True, help="JSONL, one row per point and mode")
    args = parser.parse_args(argv)
    spec = json_option("--spec", args.spec, required=("arch", "points", "warmup", "repeats", "study", "scale"))
    run(spec, args.out)


if __name__ == "__main__":
    sys.exit(main())
