"""BLOOM ablations (arXiv 2210.15424): one architecture or data choice moved at a time from a baseline,
compared by average zero-shot accuracy, as the paper compares them.

The runs are studies.bloom_ablations.runs x sizes; each variant names the `axis` it moves (config),
and the variant without one is the baseline. The runs go through the shared stages (pretrain,
evaluate_loss, the zero-shot suite); this module writes the study's table, one row per run:

  zeroshot_avg, zeroshot_avg_se   mean accuracy over the tasks, and its standard error from item
                                  sampling alone (workflow.evaluate.downstream.average_se)
  delta_zeroshot, delta_se        the difference from the baseline of the same size, and
                                  sqrt(se_run^2 + se_base^2), conservative for the paired items
  resolved                        |delta| > 2 delta_se: larger than item noise. It cannot see seed
                                  noise (one seed per variant), so `resolved` is necessary, not
                                  sufficient, for a real difference
  delta_valid_loss                validation loss minus the baseline's; empty for the corpus
                                  ablation, whose held-out text is another corpus
  paper_finding                   what the paper found on that axis, beside ours

e.g. `python -m analysis.bloom_ablations table --runs '{...}' --zeroshot zs.csv --evals a/eval_loss.json --out t.csv`.
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.evaluate.downstream import eval_losses, run_columns
from workflow.io import write_csv

# The paper's findings (Le Scao et al. 2022, §4, 1.3B models on 112B tokens, EAI-harness average),
# keyed by the `axis` a variant declares in config.yaml.
PAPER_FINDINGS = {
    "position embedding": "ALiBi clearly beats learned and rotary position embeddings",
    "activation": "SwiGLU looked promising against GeLU; BLOOM kept GeLU",
    "embedding LayerNorm": "embedding LayerNorm hurts zero-shot accuracy; BLOOM kept it for training stability",
    "corpus": "diverse cross-domain corpora (The Pile) beat a web crawl alone (OSCAR)",
}


def ablation_table(runs: dict, zeroshot: str, evals: list[str]) -> pd.DataFrame:
    zs = pd.read_csv(zeroshot).set_index("run")
    loss = eval_losses(evals)
    base = {spec["shape_name"]: run for run, spec in runs.items() if not spec.get("axis")}
    rows = []
    for run in sorted(runs, key=lambda r: (runs[r]["shape_name"], bool(runs[r].get("axis")), r)):
        spec = runs[run]
        if spec["shape_name"] not in base:
            raise ScaleDAGError(f"--runs: size {spec['shape_name']} has no baseline (a variant without an `axis`)")
        b = base[spec["shape_name"]]
        row = {
            "run": run,
            **run_columns(run, runs),
            "axis": spec.get("axis") or "baseline",
            "valid_loss": loss.get(run),
            "zeroshot_avg": _zs(zs, run, "average"),
            "zeroshot_avg_se": _zs(zs, run, "average_se"),
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
            row["paper_finding"] = PAPER_FINDINGS.get(row["axis"], "")
        rows.append(row)
    rows.append({"run": "random", "axis": "chance", "zeroshot_avg": _zs(zs, "random", "average")})
    return pd.DataFrame(rows)


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
    args = parser.parse_args(argv)
    df = ablation_table(json_option("--runs", args.runs), args.zeroshot, args.evals)
    write_csv(df, args.out, float_format="%.4f")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
