"""Megatron's optimizer and LR schedule, with the cosine length equal to the run's token budget."""
from __future__ import annotations

import torch


def build_optimizer(model_chunks, train: dict, bf16: bool = False):
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    name = train.get("optimizer", "adamw")
    config = OptimizerConfig(
        optimizer={"adamw": "adam", "adam": "adam", "lamb": "lamb"}[name],
        lr=float(train["lr"]),
        min_lr=float(train["lr"]) * float(train.get("min_lr_ratio", 0.1)),
        weight_decay=float(train.get("weight_decay", 0.1)),
        adam_beta1=float(train.get("adam_beta1", 0.9)),
        adam_beta2=float(train.get("adam_beta2", 0.95)),
        adam_eps=float(train.get("adam_eps", 1e-8)),
        clip_grad=float(train.get("grad_clip", 1.0)),
        bf16=bf16,
        params_dtype=torch.bfloat16 if bf16 else torch.float32,
        use_distributed_optimizer=False,  # its checkpoints fail on CPU (see megatron-core-cpu.md)
    )
    return get_megatron_optimizer(config, model_chunks)


def build_scheduler(optimizer, train: dict, total_samples: int):
    """Warmup + cosine decay measured in samples, so the decay ends exactly at the token budget.

    Chinchilla (Fig. A1) shows a cosine longer than the run overestimates the loss; here
    lr_decay_steps = total samples = tokens / seq_length."""
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    warmup = int(round(float(train.get("warmup_fraction", 0.05)) * total_samples))
    lr = float(train["lr"])
    wd = float(train.get("weight_decay", 0.1))
    return OptimizerParamScheduler(
        optimizer,
        init_lr=0.0,
        max_lr=lr,
        min_lr=lr * float(train.get("min_lr_ratio", 0.1)),
        lr_warmup_steps=warmup,
        lr_decay_steps=total_samples,
        lr_decay_style="cosine",
        start_wd=wd,
        end_wd=wd,
        wd_incr_steps=total_samples,
        wd_incr_style="constant",
    )
