"""BLOOM ablations (arXiv 2210.15424): one architecture or data choice moved at a time from a baseline,
compared by average zero-shot accuracy, as the paper compares them, and by bits per byte on one
English text (`language_eval`), which a CPU-sized model can move where zero-shot sits at chance.

The runs are studies.bloom_ablations.runs x sizes; each variant names the `axis` it moves (config),
and the variant without one is the baseline. The runs go through the shared stages (pretrain,
evaluate_loss, the zero-shot suite); this module writes the study's table, one row per run:

  zeroshot_avg, zeroshot_avg_se   mean accuracy over the tasks, and its standard error from item
                                  sampling alone (workflow.evaluate.downstream.average_se)
  delta_zeroshot, delta_se        the difference from the baseline of the same size, and
                                  sqrt(se_run^2 + se_base^2), conservative for the paired items
  resolved                        |delta| > 2 delta_se: larger than item noise. It cannot see seed
                                  noise, so `resolved` is necessary, not sufficient, for a real
                                  difference: with `seeds` set, --variants-out gives each variant's
                                  mean and 95% interval over seeds and its difference from the
                                  baseline with Welch's interval (analysis/seeds.py)
  valid_loss, valid_bpb           held-out loss in nats per token and bits per byte (own corpus)
  delta_valid_loss                validation loss minus the baseline's; empty for the corpus and
                                  multilingual variants, whose held-out text is another corpus
  bpb_<tag>                       bits per byte on the study's `language_eval` text of each tag
                                  (language), every run with its own tokenizer: one text for all,
                                  so the multilingual and English-only models compare on the same
                                  English bytes, and the multilingual model's per-language loss shows
  delta_bpb_en, delta_bpb_en_se   English bits per byte minus the baseline's, and its standard error
                                  over documents (paired: both models read the same documents);
                                  resolved_bpb_en: |delta| > 2 SE. Again item noise only, not seed noise
  paper_finding                   what the paper found on that axis, beside ours

e.g. `python -m analysis.bloom_ablations table --runs '{...}' --zeroshot zs.csv --evals a/eval_loss.json --out t.csv`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.seeds import variant_table
from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.evaluate.downstream import eval_bpb, eval_losses, run_columns
from workflow.io import write_csv

# The paper's findings (Le Scao et al. 2022, §4, 1.3B models on 112B tokens, EAI-harness average),
# keyed by the `axis` a variant declares in config.yaml.
PAPER_FINDINGS = {
    "position embedding": "ALiBi clearly beats learned and rotary position embeddings",
    "activation": "SwiGLU looked promising against GeLU; BLOOM kept GeLU",
    "embedding LayerNorm": "embedding LayerNorm hurts zero-shot accuracy; BLOOM kept it for training stability",
    "corpus": "diverse cross-domain corpora (The Pile) beat a web crawl alone (OSCAR)",
    "multilingual": "at equal compute the multilingual model is worse than the English-only one on English zero-shot tasks",
}
ENGLISH = "en"  # the language_eval tag the English comparison reads


def language_evals(evals: list[str]) -> dict[str, dict]:
    """Run name -> tag -> its language_eval result (none where the study declares no language_eval)."""
    out = {}
    for p in evals:
        result = json.loads(Path(p).read_text())
        if "language_eval" in result:
            out[Path(p).parent.name] = result["language_eval"]["tags"]
    return out


def paired_bpb_difference(run: dict, base: dict) -> tuple[float, float]:
    """Bits per byte of `run` minus `base` on the same documents, and its standard error over them.

    Both read one tag's documents in the same order; the last one each read may be cut by
    max_tokens at different places, so the comparison uses the documents both read whole (all but
    the last of the shorter list). Each bpb is a ratio sum(nats) / (ln 2 sum(bytes)); the standard
    error of the difference is the delta method's: the documents' influences
    u_d = (n_d - bpb ln2 b_d) / (ln2 B) summed per model, differenced, sqrt(D/(D-1) sum u_d^2)."""
    d = min(len(run["document_nats"]), len(base["document_nats"])) - 1
    if d < 2:
        return float("nan"), float("nan")
    influences, bpbs = [], []
    for r in (run, base):
        nats = np.asarray(r["document_nats"][:d], dtype=float)
        nbytes = np.asarray(r["document_bytes"][:d], dtype=float)
        bpb = nats.sum() / math.log(2) / nbytes.sum()
        bpbs.append(bpb)
        influences.append((nats - bpb * math.log(2) * nbytes) / (math.log(2) * nbytes.sum()))
    u = influences[0] - influences[1]
    return bpbs[0] - bpbs[1], math.sqrt(d / (d - 1) * float((u**2).sum()))


def ablation_table(runs: dict, zeroshot: str, evals: list[str]) -> pd.DataFrame:
    zs = pd.read_csv(zeroshot).set_index("run")
    loss = eval_losses(evals)
    languages = language_evals(evals)
    bpb = eval_bpb(evals)
    # each run is read against the baseline of its size and seed (the same data order)
    base = {(spec["shape_name"], spec.get("seed")): run for run, spec in runs.items() if not spec.get("axis")}
    rows = []
    for run in sorted(runs, key=lambda r: (runs[r]["shape_name"], bool(runs[r].get("axis")), r)):
        spec = runs[run]
        key = (spec["shape_name"], spec.get("seed"))
        if key not in base:
            raise ScaleDAGError(
                f"--runs: size {key[0]}"
                + (f", seed {key[1]}" if key[1] is not None else "")
                + " has no baseline (a variant without an `axis`)"
            )
        b = base[key]
        row = {
            "run": run,
            **run_columns(run, runs),
            "axis": spec.get("axis") or "baseline",
            "valid_loss": loss.get(run),
            "valid_bpb": bpb.get(run),
            "zeroshot_avg": _zs(zs, run, "average"),
            "zeroshot_avg_se": _zs(zs, run, "average_se"),
            **{f"bpb_{tag}": r["bits_per_byte"] for tag, r in languages.get(run, {}).items()},
        }
        if run != b:
            row["delta_zeroshot"] = _sub(row["zeroshot_avg"], _zs(zs, b, "average"))
            se = [row["zeroshot_avg_se"], _zs(zs, b, "average_se")]
            row["delta_se"] = math.hypot(*se) if None not in se else None
            row["resolved"] = (
                None
                if None in (row["delta_zeroshot"], row["delta_se"])
                else abs(row["delta_zeroshot"]) > 2 * row["delta_se"]
            )
            if not spec.get("corpus"):
                row["delta_valid_loss"] = _sub(row["valid_loss"], loss.get(b))
            if ENGLISH in languages.get(run, {}) and ENGLISH in languages.get(b, {}):
                delta, se = paired_bpb_difference(languages[run][ENGLISH], languages[b][ENGLISH])
                row["delta_bpb_en"], row["delta_bpb_en_se"] = delta, se
                row["resolved_bpb_en"] = None if math.isnan(se) else abs(delta) > 2 * se
            row["paper_finding"] = PAPER_FINDINGS.get(row["axis"], "")
        rows.append(row)
    rows.append({"run": "random", "axis": "chance", "zeroshot_avg": _zs(zs, "random", "average")})
    return pd.DataFrame(rows)


def seed_table(table: pd.DataFrame, runs: dict) -> pd.DataFrame:
    """Each variant over its seeds (analysis/seeds.py) against the baseline; a variant on another
    corpus gets no validation-loss difference (its held-out text is another), only bpb_en's."""
    own_corpus = {s["variant"]: ("valid_loss", "valid_bpb") for s in runs.values() if s.get("corpus")}
    return variant_table(table, comparable=own_corpus)


def _zs(zs: pd.DataFrame, run: str, column: str):
    if run not in zs.index or column not in zs.columns or pd.isna(zs.loc[run, column]):
        return None
    return float(zs.loc[run, column])


def _sub(a, b):
    return None if a is None or b is None else a - b


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="BLOOM's ablation table: each variant against the baseline")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("--runs", required=True, help="the study's runs (JSON, workflow.config.study_runs)")
    t.add_argument("--zeroshot", required=True, help="tables/zeroshot.csv")
    t.add_argument("--evals", nargs="+", required=True, help="each run's eval_loss.json")
    t.add_argument("--out", required=True)
    t.add_argument("--variants-out", help="each variant over its seeds vs the baseline (analysis/seeds.py)")
    args = parser.parse_args(argv)
    runs = json_option("--runs", args.runs)
    df = ablation_table(runs, args.zeroshot, args.evals)
    write_csv(df, args.out, float_format="%.4f")
    print(df.to_string(index=False))
    if args.variants_out:
        variants = seed_table(df, runs)
        write_csv(variants, args.variants_out, float_format="%.5f")
        print(variants.to_string(index=False))


if __name__ == "__main__":
    main()
