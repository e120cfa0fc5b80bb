"""Validation loss and perplexity of a run's final checkpoint on the held-out split.

Reads the whole valid token stream (up to --max-tokens) in non-overlapping windows of the
model's sequence length, so the number does not depend on the training-time eval sample."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.hpc.launch import shutdown
from workflow.io import atomic_write_json
from workflow.model import megatron_cpu
from workflow.model.gpt import make_model_spec
from workflow.train.checkpoint import load_final_model


def token_windows(prefix: str, seq_length: int, max_tokens: int) -> np.ndarray:
    """[n, seq_length + 1] windows over the concatenated documents of an indexed dataset."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(prefix)
    chunks, total = [], 0
    for i in range(len(ds)):
        doc = np.asarray(ds[i], dtype=np.int64)
        chunks.append(doc)
        total += len(doc)
        if total >= max_tokens + 1:
            break
    stream = np.concatenate(chunks)[: max_tokens + 1]
    n = (len(stream) - 1) // seq_length
    if n == 0:
        raise ScaleDAGError(f"{prefix}: fewer than {seq_length + 1} tokens in the validation split")
    return np.stack([stream[j * seq_length : (j + 1) * seq_length + 1] for j in range(n)])


def load_model_for_eval(spec: dict):
    """Rebuild the run's model with the weights of its final checkpoint, verified first."""
    mspec = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec.get("arch_overrides"))
    model, iteration = load_final_model(spec["out_dir"], mspec)
    return model, mspec, iteration


@torch.no_grad()
def mean_loss(model, windows: np.ndarray, batch_size: int = 8) -> tuple[float, int]:
    total, count = 0.0, 0
    seq = windows.shape[1] - 1
    device = next(model.parameters()).device  # on a GPU Megatron initialises the weights there
    for start in range(0, len(windows), batch_size):
        w = torch.from_numpy(windows[start : start + batch_size]).to(device)
        tokens, labels = w[:, :-1], w[:, 1:]
        pos = torch.arange(seq, device=device).unsqueeze(0).expand_as(tokens)
        per_token = model(tokens, pos, None, labels=labels)
        total += float(per_token.double().sum())
        count += per_token.numel()
    return total / count, count


def evaluate(spec: dict, max_tokens: int) -> dict:
    megatron_cpu.activate()
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))

    try:
        model, mspec, iteration = load_model_for_eval(spec)
        windows = token_windows(spec["data"]["valid_prefix"], mspec.seq_length, max_tokens)
        loss, tokens = mean_loss(model, windows)
    finally:
        shutdown()
    return {
        "run_id": spec.get("run_id"),
        "iteration": iteration,
        "loss": loss,
        "perplexity": math.exp(loss),
        "tokens": tokens,
        "seq_length": mspec.seq_length,
    }


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="validation loss of a run's final checkpoint")
    parser.add_argument("--spec", required=True, help="resolved run spec (JSON)")
    parser.add_argument("--max-tokens", type=int, default=1_000_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = evaluate(json_option("--spec", args.spec), args.max_tokens)
    print(json.dumps(result))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
