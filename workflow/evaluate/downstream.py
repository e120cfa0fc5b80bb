"""The downstream tables every `runs` study shares, built from the per-run results.

Settings: `zeroshot:` / `bandgap:` in config.yaml, read by `workflow.evaluate.settings` (kept apart,
without pandas, for the DAG; re-exported here); a study takes part by setting `zeroshot: true` /
`bandgap: true`. Tables (CSV): zero-shot per task + average with the random baseline beside (BLOOM's
tables) and the average's standard error from the item counts; band-gap MAE per model and method with
the dummy and composition baselines. Each study's own table that puts these side by side lives under
its name: analysis/matgpt.py, analysis/bloom_ablations.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from workflow.errors import json_option, main_guard
from workflow.evaluate.settings import (  # noqa: F401 (re-exported: the settings' old home)
    bandgap_rows,
    bandgap_settings,
    evaluates,
    missing_bandgap_data,
    missing_zeroshot_data,
    zeroshot_limit,
    zeroshot_settings,
)
from workflow.io import save_figure, write_csv


# -- tables ------------------------------------------------------------------------------------------
def _write_csv(df: pd.DataFrame, path: str) -> None:
    write_csv(df, path, float_format="%.4f")


def zeroshot_table(results: list[str], runs: dict) -> pd.DataFrame:
    """One row per run: acc per task (LAMBADA also perplexity) and the average acc; a `random` row."""
    rows, random_row = {}, {"run": "random"}
    tasks = []
    for path in results:
        r = json.loads(Path(path).read_text())
        task = r["task"]
        if task not in tasks:
            tasks.append(task)
        row = rows.setdefault(r["run"], {"run": r["run"], **run_columns(r["run"], runs)})
        row[task] = r["metrics"]["acc"]
        row.setdefault("_items", {})[task] = r.get("items")
        if "perplexity" in r["metrics"]:
            row[f"{task}_ppl"] = r["metrics"]["perplexity"]
        random_row[task] = r.get("random_acc")
    for row in rows.values():
        row["average"] = sum(row[t] for t in tasks) / len(tasks)
        row["average_se"] = average_se([row[t] for t in tasks], [row["_items"].get(t) for t in tasks])
        del row["_items"]
    random_row["average"] = sum(random_row[t] for t in tasks) / len(tasks)
    return pd.DataFrame([*sorted(rows.values(), key=lambda r: r["run"]), random_row])


def average_se(accs: list[float], items: list[int | None]) -> float | None:
    """Standard error of an average of T task accuracies from item sampling alone:
    sqrt(sum_t p_t (1 - p_t) / n_t) / T. At 16 items a task and p = 0.5 each task's SE is 0.125, so
    over 7 tasks the average's is 0.047: differences below ~0.1 are noise of the items, before any
    seed noise (which this cannot see). None when a task's item count is unknown."""
    if not accs or any(n is None or n <= 0 for n in items):
        return None
    return sum(p * (1 - p) / n for p, n in zip(accs, items)) ** 0.5 / len(accs)


def run_columns(run: str, runs: dict) -> dict:
    spec = runs.get(run, {})
    return {
        "variant": spec.get("variant"),
        "arch": spec.get("arch"),
        "size": spec.get("shape_name"),
        "seed": spec.get("seed"),  # set where the study trains several seeds (studies.<study>.seeds)
    }


def eval_losses(evals: list[str]) -> dict[str, float]:
    """Run name -> validation loss, from each run's eval_loss.json (runs/<run>/eval_loss.json)."""
    return {Path(p).parent.name: json.loads(Path(p).read_text())["loss"] for p in evals}


def eval_bpb(evals: list[str]) -> dict[str, float | None]:
    """Run name -> validation bits per byte (tokenizer-independent), where eval_loss.json has it."""
    return {Path(p).parent.name: json.loads(Path(p).read_text()).get("bits_per_byte") for p in evals}


def bandgap_table(fits: list[str], baselines: str, runs: dict) -> pd.DataFrame:
    """Long table: model (run or baseline), method, MAE ± std over Matbench's folds, rows used."""
    base = json.loads(Path(baselines).read_text())
    out = [
        {
            "model": name.split("[")[0],
            "method": name,
            "mae": v["mae"],
            "mae_std": v["mae_std"],
            "rmse": v["rmse"],
            "rows": base["rows"],
            "arch": None,
            "size": None,
        }
        for name, v in base["results"].items()
    ]
    for path in fits:
        r = json.loads(Path(path).read_text())
        run = r["run_id"].split(".")[-1]
        cols = run_columns(run, runs)
        for method, v in r["results"].items():
            out.append(
                {
                    "model": run,
                    "method": method,
                    "mae": v["mae"],
                    "mae_std": v["mae_std"],
                    "rmse": v["rmse"],
                    "rows": r["rows"],
                    "arch": cols["arch"],
                    "size": cols["size"],
                }
            )
    return pd.DataFrame(out)


def plot_bandgap(table: pd.DataFrame, title: str, png: str, pdf: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = table[table["arch"].notna()]
    methods = list(dict.fromkeys(runs["method"]))
    models = list(dict.fromkeys(runs["model"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(models) + 2), 4))
    width = 0.8 / max(1, len(methods))
    for k, method in enumerate(methods):
        sub = runs[runs["method"] == method].set_index("model").reindex(models)
        ax.bar([i + k * width for i in range(len(models))], sub["mae"], width, yerr=sub["mae_std"], label=method)
    for _, b in table[table["arch"].isna()].iterrows():
        ax.axhline(
            b["mae"],
            ls="--" if b["model"] == "dummy" else ":",
            color="k" if b["model"] == "dummy" else "C7",
            label=f"{b['method']} ({b['mae']:.2f} eV)",
        )
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(models))], models, rotation=20, ha="right")
    ax.set_ylabel("MAE (eV), Matbench 5-fold")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, png, pdf)
    plt.close(fig)


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="downstream tables and figures of a study")
    sub = parser.add_subparsers(dest="cmd", required=True)
    z = sub.add_parser("zeroshot-table")
    z.add_argument("--results", nargs="+", required=True)
    z.add_argument("--runs", required=True, help="the study's runs (JSON, workflow.config.study_runs)")
    z.add_argument("--out", required=True)
    b = sub.add_parser("bandgap-table")
    b.add_argument("--fits", nargs="+", required=True)
    b.add_argument("--baselines", required=True)
    b.add_argument("--runs", required=True)
    b.add_argument("--title", default="Band gap (Matbench expt_gap)")
    b.add_argument("--out", required=True)
    b.add_argument("--png", required=True)
    b.add_argument("--pdf", required=True)
    args = parser.parse_args(argv)
    runs = json_option("--runs", args.runs)
    if args.cmd == "zeroshot-table":
        df = zeroshot_table(args.results, runs)
        _write_csv(df, args.out)
    else:
        df = bandgap_table(args.fits, args.baselines, runs)
        _write_csv(df, args.out)
        plot_bandgap(df, args.title, args.png, args.pdf)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
