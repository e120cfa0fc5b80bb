"""Training throughput of a workload (GPT-2 on text, GenSLM on codons) through the ScaleDAG training
loop, for a fixed number of steps.

Run as `python -m workflow.bench.train --spec JSON --out rows.jsonl` (under torchrun or srun for
several devices: every rank runs, rank 0 writes). Each point builds the real `workflow.train.pretrain.Trainer`
(Megatron GPTModel, DDP, gradient accumulation through `num_microbatches`, Megatron AdamW, the
scheduler, GPTDataset batches) and times whole training steps — forward, backward, gradient
all-reduce and optimizer — `warmup_steps` untimed then `steps` timed; the median step gives
tokens/s. No evaluation or checkpointing: this measures the step, not the run.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
from functools import partial

import torch

from workflow.bench.block import Timer, run_environment, unless_oom
from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.hpc.launch import shutdown
from workflow.io import atomic_write_text
from workflow.model import megatron_cpu
from workflow.telemetry.mfu import throughput_metrics
from workflow.train.pretrain import Trainer


def trainer_spec(spec: dict, point: dict) -> dict:
    """The Trainer run spec of one point: the scale's training settings, this point's batch and length."""
    shape = dict(spec["shapes"][point["size"]], seq_length=point["seq_length"])
    n_steps = spec["warmup_steps"] + spec["steps"]
    gbs = point["micro_batch_size"] * point["grad_accum"] * point["devices"]
    train = {
        **spec["train"],
        "micro_batch_size": point["micro_batch_size"],
        "global_batch_size": gbs,
        "tokens": n_steps * gbs * point["seq_length"],
        "eval_iters": 1,
    }
    return {
        "run_id": f"{spec['scale']}.{spec['study']}.{spec['workload']}.{spec['job']}",
        "study": spec["study"],
        "run": spec["job"],
        "arch": spec["arch"],
        "arch_overrides": spec.get("overrides", {}),
        "shape": dict(shape, name=point["size"]),
        "vocab_size": spec["vocab_size"],
        "data": spec["data"],
        "train": train,
        "parallel": {"tp": 1, "pp": 1},
        "bf16": bool(spec.get("bf16")),
        "threads": spec.get("threads"),
        "out_dir": spec["scratch"],
        "wandb": False,
    }


def measure(spec: dict, point: dict) -> dict:
    tr = Trainer(trainer_spec(spec, point))
    if tr.dp != point["devices"]:
        raise ScaleDAGError(f"point wants {point['devices']} data-parallel devices but the launch has {tr.dp}")
    if tr.num_microbatches != point["grad_accum"]:
        raise ScaleDAGError(
            f"point wants {point['grad_accum']} micro-batches per step, the Trainer made {tr.num_microbatches}"
        )
    timer = Timer()
    it = iter(range(tr.train_iters))
    for _ in range(spec["warmup_steps"]):
        tr._step(next(it))  # the training loop's own step (workflow.train.pretrain.Trainer._step)
    times = [timer(lambda: tr._step(next(it))) for _ in range(spec["steps"])]  # noqa: F821 - pyflakes misreads the `del tr` below
    step_ms = statistics.median(times)
    tokens = tr.global_batch * tr.seq

    m = throughput_metrics(
        tokens,
        step_ms / 1e3,
        tr.flops_per_token_chinchilla,
        tr.flops_per_token_6n,
        tr.world_size,
        tr.device_name,
        "bf16" if tr.bf16 else "fp32",
    )
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    out = {
        "parameters": tr.n_params,
        "global_batch_size": tr.global_batch,
        "step_ms": step_ms,
        "step_ms_all": times,
        "tokens_per_step": tokens,
        "peak_memory_mb": peak,
        **m,
    }
    del tr
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return out


def run(spec: dict, out: str) -> list[dict]:
    megatron_cpu.activate()
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))

    env = run_environment()
    rows = []
    try:
        for i, point in enumerate(spec["points"]):
            m, oom = unless_oom(partial(measure, spec, point))
            shape = spec["shapes"][point["size"]]
            rows.append(
                {
                    **env,
                    "study": spec["study"],
                    "scale": spec["scale"],
                    "workload": spec["workload"],
                    "corpus": spec["corpus"],
                    "job": spec["job"],
                    "arch": spec["arch"],
                    **point,
                    "layers": shape["layers"],
                    "hidden": shape["hidden"],
                    "heads": shape["heads"],
                    "warmup_steps": spec["warmup_steps"],
                    "steps": spec["steps"],
                    "status": "oom" if oom else "ok",
                    "reason": oom,
                    **(m or {}),
                }
            )
            if torch.distributed.get_rank() == 0:
                print(
                    f"[{i + 1}/{len(spec['points'])}] {point['sweep']} {point['size']} seq {point['seq_length']} "
                    f"micro {point['micro_batch_size']} x{point['grad_accum']} on {point['devices']}: "
                    + (oom or f"{m['tokens_per_s']:,.0f} tok/s"),
                    flush=True,
                )
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    finally:
        shutdown()
    if rank == 0:
        atomic_write_text(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return rows


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON from workflow.studies.benchmarks.train_spec")
    parser.add_argument("--out", required=True, help="JSONL, one row per point")
    args = parser.parse_args(argv)
    spec = json_option(
        "--spec",
        args.spec,
        required=("workload", "corpus", "points", "shapes", "warmup_steps", "steps", "data", "train", "job"),
    )
    run(spec, args.out)


if __name__ == "__main__":
    sys.exit(main())
