"""MFU of a LLaMA-style 1.3B model (bf16, seq 2048, one GPU): ScaleDAG's loop vs HF transformers.

ScaleDAG side: `workflow.train.pretrain.Trainer` exactly as a run uses it (Megatron-core GPTModel with the
Transformer-Engine spec and flash attention when TE is installed, bf16 params with fp32 main params,
Megatron's AdamW, gradient accumulation through `get_forward_backward_func`) on random tokens.
Reference: HF `LlamaForCausalLM` holding the same weights (`workflow.export.hf`), SDPA (flash)
attention, bf16 autocast over fp32 weights, fused torch AdamW, the same micro-batches and
accumulation. The two alternate in rounds in one process; FLOPs per token are Chinchilla's
appendix-F count (and 6N) of the same shape for both, MFU against the device's dense bf16 peak
(`workflow.telemetry.mfu`, 989 TFLOP/s on H100 SXM). Goals: MFU >= 50% and >= 1.3x HF's tokens/s.
Writes benchmarks/results/train_gpu.json with the device name. Needs a CUDA GPU: exits 2 without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

SHAPE = {"layers": 24, "hidden": 2048, "heads": 16, "seq_length": 2048}  # BLOOM-1.3B's shape, LLaMA-style
VOCAB = 32000


def _sync() -> None:
    torch.cuda.synchronize()


class HFLoop:
    """The reference: HF LlamaForCausalLM, same weights, bf16 autocast, textbook accumulation."""

    def __init__(self, trainer, train: dict, attn: str):
        import transformers

        from workflow.export.hf import convert_state_dict, hf_config

        state = {
            k: v.detach().float().cpu()
            for k, v in trainer.model.module.state_dict().items()
            if isinstance(v, torch.Tensor) and not k.endswith("_extra_state")
        }
        state = _local_names(state)
        config = hf_config(trainer.model_spec, "LlamaForCausalLM", 0)
        config._attn_implementation = attn
        self.model = transformers.LlamaForCausalLM(config)
        self.model.load_state_dict(convert_state_dict(state, trainer.model_spec, "LlamaForCausalLM"), strict=True)
        self.model.cuda().train()
        self.opt = torch.optim.AdamW(
            self.model.parameters(),
            lr=float(train["lr"]),
            betas=(0.9, 0.95),
            weight_decay=float(train.get("weight_decay", 0.1)),
            fused=True,
        )
        self.clip = float(train.get("grad_clip", 1.0))
        self.batches = trainer._batches

    def step(self, iteration: int) -> float:
        micro = self.batches(iteration)
        self.opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device="cuda")
        for b in micro:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = self.model(input_ids=b["tokens"], position_ids=b["position_ids"]).logits
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), b["labels"].reshape(-1)
            )
            (loss / len(micro)).backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        return float(total) / len(micro)


def _local_names(state: dict) -> dict:
    """Transformer-Engine layers fuse the pre-attention / pre-MLP norms into the next GEMM; rename
    their weights to the local spec's names the exporter reads."""
    out = {}
    for k, v in state.items():
        k = k.replace("self_attention.linear_qkv.layer_norm_weight", "input_layernorm.weight")
        k = k.replace("mlp.linear_fc1.layer_norm_weight", "pre_mlp_layernorm.weight")
        out[k] = v
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--global-batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps-per-round", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--hf-attention", default="sdpa", help="HF attn_implementation (sdpa, flash_attention_2)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_gpu.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            "error: benchmarks/train_gpu.py needs a CUDA GPU and none is visible; nothing was measured", file=sys.stderr
        )
        raise SystemExit(2)

    from workflow.hpc.launch import shutdown
    from workflow.io import atomic_write_json
    from workflow.model.gpt import transformer_engine_available
    from workflow.telemetry.mfu import peak_flops
    from workflow.train.pretrain import Trainer

    steps = args.warmup + args.rounds * args.steps_per_round + 1
    train = {
        "tokens": steps * args.global_batch_size * SHAPE["seq_length"],
        "micro_batch_size": args.micro_batch_size,
        "global_batch_size": args.global_batch_size,
        "lr": 2e-4,
        "min_lr_ratio": 0.1,
        "warmup_fraction": 0.01,
        "weight_decay": 0.1,
        "grad_clip": 1.0,
        "optimizer": "adamw",
        "seed": 1234,
        "log_interval": 10**9,
        "eval_interval": 10**9,
        "eval_iters": 1,
        "save_interval": 10**9,
    }
    with tempfile.TemporaryDirectory(prefix="scaledag-train-gpu-") as tmp:
        spec = {
            "run_id": "bench.train_gpu.llama_1.3b",
            "study": "bench",
            "run": "llama_1.3b",
            "arch": "llama",
            "arch_overrides": {},
            "shape": SHAPE,
            "vocab_size": VOCAB,
            "data": {"random_tokens": True},
            "train": train,
            "parallel": {"tp": 1, "pp": 1},
            "bf16": True,
            "out_dir": tmp,
        }
        trainer = Trainer(spec)
        hf = HFLoop(trainer, train, args.hf_attention)
        first = {"scaledag": trainer._step(0)[0], "hf": hf.step(0)}
        it = 1
        for _ in range(args.warmup):  # compile/autotune/allocator warm-up for both
            trainer._step(it)
            hf.step(it)
            it += 1
        tokens = args.global_batch_size * SHAPE["seq_length"] * args.steps_per_round
        rows = []
        for r in range(args.rounds):
            times = {}
            for name in ("scaledag", "hf") if r % 2 == 0 else ("hf", "scaledag"):
                _sync()
                t0 = time.perf_counter()
                for i in range(it, it + args.steps_per_round):
                    trainer._step(i) if name == "scaledag" else hf.step(i)
                _sync()
                times[name] = time.perf_counter() - t0
            it += args.steps_per_round
            rows.append(
                {
                    "round": r,
                    "scaledag_tokens_per_s": tokens / times["scaledag"],
                    "hf_tokens_per_s": tokens / times["hf"],
                }
            )
            print(
                f"round {r}: scaledag {rows[-1]['scaledag_tokens_per_s']:,.0f} tok/s, hf {rows[-1]['hf_tokens_per_s']:,.0f} tok/s",
                flush=True,
            )
        device = torch.cuda.get_device_name()
        peak = peak_flops(device, "bf16")
        fpt = {"chinchilla": trainer.flops_per_token_chinchilla, "6n": trainer.flops_per_token_6n}
        rate = {name: statistics.median(r[f"{name}_tokens_per_s"] for r in rows) for name in ("scaledag", "hf")}
        mfu = {name: ({k: rate[name] * f / peak for k, f in fpt.items()} if peak else None) for name in rate}
        result = {
            "benchmark": "train_gpu",
            "device": device,
            "peak_bf16_flops": peak,
            "model": trainer.model_spec.to_dict(),
            "parameters": trainer.n_params,
            "micro_batch_size": args.micro_batch_size,
            "global_batch_size": args.global_batch_size,
            "layer_spec": "transformer_engine" if trainer.use_te else "local",
            "transformer_engine": transformer_engine_available(),
            "hf_attention": args.hf_attention,
            "first_step_loss": first,
            "tokens_per_s_median": rate,
            "speedup_vs_hf": rate["scaledag"] / rate["hf"],
            "flops_per_token": fpt,
            "mfu": mfu,
            "goals": {"mfu": 0.5, "speedup_vs_hf": 1.3},
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "per_round": rows,
            "torch": torch.__version__,
        }
        shutdown()
    if abs(first["scaledag"] - first["hf"]) > 0.05:  # bf16: same model, not bit-identical
        print(f"warning: first losses differ ({first}); check the weight export", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_round", "model")}, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
