"""MatGPT (arXiv 2402.00691): GPT-NeoX vs LLaMA on one materials-science corpus, side by side.

The runs (studies.matgpt.runs x sizes) go through the shared stages: pretrain, evaluate_loss, the
zero-shot suite and the band-gap regression (workflow/evaluate/). This module writes the study's own
table, one row per architecture and size:

  valid_loss      nats/token on the held-out split. Both architectures share one tokenizer, so the
                  comparison is fair across them (not across corpora or vocabularies)
  zeroshot_avg    the mean accuracy over the zero-shot tasks, with average_se (item sampling only)
                  and the random baseline's row below
  bandgap_mae     the best text-only regression head, and the best head with element fractions

  valid_bpb       the same loss in bits per byte (tokenizer-independent)

With `studies.matgpt.seeds` set, every architecture trains under each seed and --variants-out writes
each one's mean and 95% interval over seeds and LLaMA minus GPT-NeoX (the first variant listed)
with Welch's interval (analysis/seeds.py). With one seed a loss gap has no seed interval at all, and
a zero-shot gap smaller than about 2 x average_se says nothing.

e.g. `python -m analysis.matgpt table --runs '{...}' --zeroshot zs.csv --evals a/eval_loss.json --out t.csv`.
"""

from __future__ import annotations

import argparse

import pandas as pd

from analysis.seeds import variant_table
from workflow.errors import json_option, main_guard
from workflow.evaluate.downstream import eval_bpb, eval_losses, run_columns
from workflow.io import write_csv


def architecture_table(runs: dict, zeroshot: str, evals: list[str], bandgap: str | None) -> pd.DataFrame:
    """arch, size, valid loss, zero-shot average (+ SE), band-gap MAE per run; baselines' rows below."""
    zs = pd.read_csv(zeroshot).set_index("run")
    loss, bpb = eval_losses(evals), eval_bpb(evals)
    bg = pd.read_csv(bandgap) if bandgap else None
    rows = []
    for run in sorted(runs):
        row = {"run": run, **run_columns(run, runs), "valid_loss": loss.get(run), "valid_bpb": bpb.get(run)}
        if run in zs.index:
            row["zeroshot_avg"] = zs.loc[run, "average"]
            row["zeroshot_avg_se"] = zs.loc[run, "average_se"] if "average_se" in zs.columns else None
        if bg is not None:
            row.update(best_bandgap(bg[bg["model"] == run]))
        rows.append(row)
    if bg is not None:  # the dummy (mean) and composition-only baselines the embeddings must beat
        for _, b in bg[bg["arch"].isna()].iterrows():
            rows.append({"run": b["model"], "bandgap_mae": float(b["mae"]), "bandgap_method": b["method"]})
    rows.append({"run": "random", "zeroshot_avg": zs.loc["random", "average"] if "random" in zs.index else None})
    return pd.DataFrame(rows)


def best_bandgap(mine: pd.DataFrame) -> dict:
    """The lowest-MAE text-only head, and the lowest MAE with element fractions appended."""
    out = {}
    with_comp = mine["method"].str.contains(r"\+composition")
    if (~with_comp).any():
        best = mine[~with_comp].loc[mine[~with_comp]["mae"].idxmin()]
        out.update(bandgap_mae=float(best["mae"]), bandgap_method=best["method"])
    if with_comp.any():
        out["bandgap_mae_with_composition"] = float(mine[with_comp]["mae"].min())
    return out


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="MatGPT's architecture comparison table")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--runs", required=True, help="the study's runs (JSON, workflow.config.study_runs)")
    t.add_argument("--zeroshot", required=True, help="tables/zeroshot.csv")
    t.add_argument("--evals", nargs="+", required=True, help="each run's eval_loss.json")
    t.add_argument("--bandgap", help="tables/bandgap.csv (when the study regresses band gap)")
    t.add_argument("--out", required=True)
    t.add_argument("--variants-out", help="each architecture over its seeds vs the first (analysis/seeds.py)")
    args = parser.parse_args(argv)
    runs = json_option("--runs", args.runs)
    df = architecture_table(runs, args.zeroshot, args.evals, args.bandgap)
    write_csv(df, args.out, float_format="%.4f")
    print(df.to_string(index=False))
    if args.variants_out:
        first = next(iter(runs.values()))["variant"] if runs else None
        variants = variant_table(df, baseline=first)
        write_csv(variants, args.variants_out, float_format="%.5f")
        print(variants.to_string(index=False))


if __name__ == "__main__":
    main()
