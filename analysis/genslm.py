"""GenSLM (the accelerator paper's science workload): does a codon language model learn?

One GPT-NeoX run per GenSLM shape (studies.genslm) trains on genes through the shared stages. This
table sets each run's validation loss beside the loss of a model that learned only how often each
codon occurs: the cross-entropy of the validation tokens under the train split's token frequencies
(add-1/2 smoothing, end-of-document tokens included, as the model predicts them too). Both are nats
per token on the same tokens, so

  learned_nats = unigram_nats - valid_loss

is what the model knows beyond codon usage (family structure, position in the gene). A run that
stops near zero has learned only frequencies. One seed per shape: the table shows that the workload
learns and how loss moves with size, not a scaling law.

e.g. `python -m analysis.genslm table --train-tokens t.bin --valid-tokens v.bin --vocab 69 --evals ... --out t.csv`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import write_csv


def read_tokens(path: str, vocab: int) -> np.ndarray:
    """A Megatron .bin token file (dtype uint16 below 65,500 tokens, as workflow.data.tokenize writes)."""
    tokens = np.fromfile(path, dtype=np.uint16 if vocab < 65500 else np.int32)
    if tokens.size == 0:
        raise ScaleDAGError(f"{path}: no tokens")
    if int(tokens.max()) >= vocab:
        raise ScaleDAGError(f"{path}: token id {int(tokens.max())} is outside the vocabulary of {vocab}")
    return tokens


def unigram_nats(train: np.ndarray, valid: np.ndarray, vocab: int) -> float:
    """Cross-entropy (nats/token) of the valid tokens under the train split's smoothed frequencies."""
    counts = np.bincount(train, minlength=vocab).astype(float) + 0.5
    logp = np.log(counts / counts.sum())
    return float(-logp[valid].mean())


def codon_table(evals: list[str], summaries: list[str], unigram: float) -> pd.DataFrame:
    rows = []
    for ev, su in zip(evals, summaries):
        e, s = json.loads(Path(ev).read_text()), json.loads(Path(su).read_text())
        rows.append(
            {
                "run": Path(ev).parent.name,
                "parameters": s["parameters"],
                "tokens": s["tokens"],
                "valid_loss": e["loss"],
                "perplexity": math.exp(e["loss"]),
                "unigram_nats": unigram,
                "learned_nats": unigram - e["loss"],
                "tokens_per_s": s.get("train_tokens_per_s"),
            }
        )
    return pd.DataFrame(rows).sort_values("parameters").reset_index(drop=True)


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="GenSLM runs against the codon-frequency baseline")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--train-tokens", required=True, help="the gene corpus's train .bin")
    t.add_argument("--valid-tokens", required=True, help="its valid .bin")
    t.add_argument("--vocab", type=int, required=True)
    t.add_argument("--evals", nargs="+", required=True, help="each run's eval_loss.json")
    t.add_argument("--summaries", nargs="+", required=True, help="each run's summary.json, in the same order")
    t.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if len(args.evals) != len(args.summaries):
        raise ScaleDAGError(f"--evals ({len(args.evals)}) and --summaries ({len(args.summaries)}) differ in length")
    unigram = unigram_nats(
        read_tokens(args.train_tokens, args.vocab), read_tokens(args.valid_tokens, args.vocab), args.vocab
    )
    df = codon_table(args.evals, args.summaries, unigram)
    write_csv(df, args.out, float_format="%.4f")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
