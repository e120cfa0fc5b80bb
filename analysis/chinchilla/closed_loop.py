"""Closing the scaling loop: train the model a fit predicts, and check the prediction.

Chinchilla did not stop at its fit: it trained the predicted compute-optimal model (70B) at
Gopher's budget beside the 4x larger Gopher. This module does the same for any IsoFLOP study:

    python -m analysis.chinchilla.closed_loop plan --settings JSON --fit scaling_fit.json --out plan.json \
        --size-choice size_choice.csv --size-config size_choice.yaml
    python -m analysis.chinchilla.closed_loop report --plan plan.json --fit scaling_fit.json \
        --metrics M... --summaries S... --table closed_loop.csv --png F.png --pdf F.pdf

`plan`: for each target budget C* (beyond the sweep), each approach's compute-optimal N becomes
a concrete shape by the sweep's own aspect-ratio rule, trained on D = C* / FLOPs per token; beside
them an over-sized run (size_factor x N, Gopher's side of the comparison) and an under-sized one
(N / size_factor), both sized from approach 3. Runs that two roles map to the same shape are
trained once. It also answers "which model for X GPU-hours": GPU-hours x the device's sustained
FLOP/s (a measured TFLOP/s, or MFU x the published peak) = C, then (N, D, shape) per approach.

`report`: per run, approach 3's predicted loss at the run's actual (N, D) with bootstrap
intervals (10-90 % and 2.5-97.5 %), the achieved final validation loss, whether it lies inside
each interval, and whether the predicted optimum beat the over- and under-sized runs. The
intervals are the fit's uncertainty only: run-to-run noise (seed, data order) is not in them, so
a miss by less than that noise is not evidence against the law.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.chinchilla.approaches import power_law_allocation
from analysis.chinchilla.fit import ParametricFit, frontier, write_table
from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.io import atomic_write_json, atomic_write_text, save_figure
from workflow.studies.isoflop import MIN_ITERATIONS, fit_params, loop_candidates, loop_run
from workflow.telemetry.mfu import peak_flops
from workflow.train.metrics import read_metrics

APPROACHES = ("approach1", "approach2", "approach3")
INTERVALS = {"80": (10.0, 90.0), "95": (2.5, 97.5)}


def _fit3(fit: dict) -> ParametricFit | None:
    return ParametricFit.from_law(fit.get("approach3"))


def optimal_params(fit: dict, budget: float) -> dict[str, float]:
    """Each approach's compute-optimal N at `budget` (approaches whose fit failed are left out)."""
    out = {}
    for name in ("approach1", "approach2"):
        res = fit.get(name)
        if res and all(np.isfinite(res[k]) for k in ("a", "N_coef")):
            out[name] = float(power_law_allocation(res, budget)[0])
    f3 = _fit3(fit)
    if f3 is not None and np.isfinite(f3.G):
        out["approach3"] = float(frontier(f3, budget)[0])
    return {k: v for k, v in out.items() if np.isfinite(v) and v > 0}


def smoke_held(settings: dict, n_opt: dict[str, float], where: str, notes: list[str]) -> dict[str, float]:
    """A smoke run's optima held to the sweep's sampled sizes (its fit is of two-step models), each
    change noted; outside a smoke run, `n_opt` unchanged."""
    bounds = settings.get("smoke_params_range")
    if not bounds:
        return n_opt
    held = {k: min(max(n, bounds[0]), bounds[1]) for k, n in n_opt.items()}
    for k, n in n_opt.items():
        if held[k] != n:
            notes.append(f"smoke: {where}: {k}'s {n:.3g} parameters held to {held[k]:.3g}, inside the sweep's sizes")
    return held


def plan_runs(settings: dict, fit: dict) -> dict:
    """The closed-loop runs: one per distinct shape, with every role it plays."""
    targets, notes = [], []
    for budget in settings["budgets"]:
        n_opt = smoke_held(settings, optimal_params(fit, budget), f"budget {budget:.3g}", notes)
        if not n_opt:
            notes.append(f"budget {budget:.3g}: no approach has a finite optimum; nothing to train")
            continue
        ref = "approach3" if "approach3" in n_opt else sorted(n_opt)[0]
        f = settings["size_factor"]
        roles = [(name, n) for name, n in n_opt.items()] + [("over", n_opt[ref] * f), ("under", n_opt[ref] / f)]
        targets += [(budget, role, n, ref) for role, n in roles]
    runs: dict[str, dict] = {}
    if targets:
        candidates = loop_candidates(settings, max(t[2] for t in targets))
        for budget, role, n, ref in targets:
            run = loop_run(settings, budget, n, candidates)
            if run["iterations"] < MIN_ITERATIONS:
                notes.append(
                    f"budget {budget:.3g}: {role} ({run['shape_name']}, {n:.3g} parameters) gets only "
                    f"{run['iterations']} steps; not trained"
                )
                continue
            if role in ("over", "under") and run["run"] in runs and ref in runs[run["run"]]["roles"]:
                notes.append(
                    f"budget {budget:.3g}: the {role}-sized target ({n:.3g} parameters) maps to the "
                    f"optimum's own shape {run['shape_name']} (the shape rule has nothing "
                    f"{'larger' if role == 'over' else 'smaller'} that is closer)"
                )
            entry = runs.setdefault(run["run"], {**run, "roles": [], "targets": {}, "reference": ref})
            entry["roles"].append(role)
            entry["targets"][role] = n
    return {
        "budgets": settings["budgets"],
        "size_factor": settings["size_factor"],
        "runs": list(runs.values()),
        "params_counting": settings["iso"]["params_counting"],
        "notes": notes,
    }


# -- which model for a budget of GPU-hours --------------------------------------------------------


def sustained_flops(choice: dict, peaks: dict | None) -> tuple[float, str]:
    """FLOP/s one device sustains in training, and where the number comes from."""
    if choice.get("achieved_tflops"):
        return float(choice["achieved_tflops"]) * 1e12, f"measured {choice['achieved_tflops']} TFLOP/s per device"
    peak = peak_flops(choice["device"], choice["dtype"], peaks)
    if peak is None:
        raise ScaleDAGError(
            f"size_choice: no published {choice['dtype']} peak for device "
            f"{choice['device']!r}; give achieved_tflops or add it to device_peaks"
        )
    return peak * float(choice["mfu"]), f"MFU {choice['mfu']} x {peak / 1e12:g} TFLOP/s peak of {choice['device']}"


def size_choice(settings: dict, fit: dict) -> tuple[pd.DataFrame, str]:
    """(table, config snippet): per GPU-hour budget and approach, C, N_opt, D_opt and the shape."""
    choice = settings.get("size_choice")
    columns = [
        "gpu_hours",
        "flops",
        "approach",
        "N_opt",
        "D_opt",
        "shape",
        "layers",
        "hidden",
        "heads",
        "params",
        "tokens",
        "predicted_loss",
        "throughput",
    ]
    if not choice:
        return pd.DataFrame(columns=columns), "# no size_choice configured at this scale\n"
    rate, source = sustained_flops(choice, settings.get("device_peaks"))
    rows, snippet = (
        [],
        [f"# Shapes chosen for GPU-hour budgets ({source}); paste under `shapes:` in config.yaml.", "shapes:"],
    )
    f3 = _fit3(fit)
    for hours in choice["gpu_hours"]:
        c = float(hours) * 3600.0 * rate
        n_opt = smoke_held(settings, optimal_params(fit, c), f"{hours:g} GPU-hours", [])
        candidates = loop_candidates(settings, max(n_opt.values())) if n_opt else []
        for approach, n in n_opt.items():
            run = loop_run(settings, c, n, candidates)
            shape = run["shape"]
            loss = float(f3.predict(run["n"], run["tokens"])) if f3 is not None else math.nan
            rows.append(
                {
                    "gpu_hours": hours,
                    "flops": c,
                    "approach": approach,
                    "N_opt": n,
                    "D_opt": c / (6 * n),
                    "shape": run["shape_name"],
                    "layers": shape["layers"],
                    "hidden": shape["hidden"],
                    "heads": shape["heads"],
                    "params": run["n"],
                    "tokens": run["tokens"],
                    "predicted_loss": loss,
                    "throughput": source,
                }
            )
            snippet.append(
                f"  {settings['study']}-{hours:g}gpuh-{approach}: {{layers: {shape['layers']}, hidden: "
                f"{shape['hidden']}, heads: {shape['heads']}, seq_length: {shape['seq_length']}}}"
                f"  # train {run['tokens']:.3g} tokens"
            )
    return pd.DataFrame(rows, columns=columns), "\n".join(snippet) + "\n"


# -- the report: prediction against outcome ---------------------------------------------------------


def _samples(fit: dict) -> list[ParametricFit]:
    return [ParametricFit.from_law(s) for s in fit.get("approach3_samples") or []]


def _final_loss(metrics: str) -> float:
    valid = [r for r in read_metrics(metrics) if r.get("kind") == "valid"]
    if not valid:
        raise ScaleDAGError(f"{metrics}: no validation rows")
    return float(valid[-1]["loss"])


def report_table(plan: dict, fit: dict, metrics: list[str], summaries: list[str]) -> pd.DataFrame:
    by_run = {Path(p).parent.name: p for p in metrics}
    sums = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in summaries}
    f3, samples = _fit3(fit), _samples(fit)
    rows = []
    for r in plan["runs"]:
        if r["run"] not in by_run or r["run"] not in sums:
            raise ScaleDAGError(f"report: no metrics/summary given for planned run {r['run']!r}")
        n = float(fit_params(sums[r["run"]], plan["params_counting"]))
        d = float(sums[r["run"]]["tokens"])
        row = {
            "budget": r["budget"],
            "run": r["run"],
            "roles": "+".join(r["roles"]),
            "params": n,
            "tokens": d,
            "achieved_loss": _final_loss(by_run[r["run"]]),
            "predicted_loss": float(f3.predict(n, d)) if f3 is not None else math.nan,
        }
        draws = np.array([s.predict(n, d) for s in samples]) if samples else np.array([])
        for name, (lo, hi) in INTERVALS.items():
            lo_v, hi_v = np.percentile(draws, [lo, hi]) if draws.size >= 2 else (math.nan, math.nan)
            row[f"predicted_lo_{name}"], row[f"predicted_hi_{name}"] = float(lo_v), float(hi_v)
            row[f"inside_{name}"] = bool(lo_v <= row["achieved_loss"] <= hi_v) if draws.size >= 2 else None
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["beats_over"] = table["beats_under"] = None
    for budget, group in table.groupby("budget"):
        ref = next((r["reference"] for r in plan["runs"] if r["budget"] == budget), "approach3")
        best = group[group["roles"].str.split("+").map(lambda roles, ref=ref: ref in roles)]
        for side in ("over", "under"):
            other = group[group["roles"].str.split("+").map(lambda roles, side=side: side in roles)]
            if len(best) and len(other) and best.index[0] != other.index[0]:  # one shape: nothing to compare
                beats = bool(best["achieved_loss"].iloc[0] < other["achieved_loss"].iloc[0])
                table.loc[best.index, f"beats_{side}"] = beats
    return table


def draw(table: pd.DataFrame, fit: dict, png: str, pdf: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    samples, f3 = _samples(fit), _fit3(fit)
    for budget, group in table.groupby("budget") if not table.empty else []:
        n_grid = np.geomspace(group["params"].min() / 2, group["params"].max() * 2, 60)
        # D along the curve as the runs were budgeted (C / FLOPs per token of their shape, which is
        # well above 6N for small models): log D linear in log N through the trained runs, so the
        # curve passes through the (N, D) each error bar is predicted at. C / 6N would draw it ~0.06
        # nats low at mini scale and make every run look worse than predicted.
        if group["params"].nunique() >= 2:
            slope, icpt = np.polyfit(np.log(group["params"]), np.log(group["tokens"]), 1)
            d_grid = np.exp(icpt + slope * np.log(n_grid))
        else:
            d_grid = budget / (6 * n_grid)
        if f3 is not None:
            (line,) = ax.plot(n_grid, f3.predict(n_grid, d_grid), label=f"approach 3 at C={budget:.2g}")
            if len(samples) >= 2:
                draws = np.array([s.predict(n_grid, d_grid) for s in samples])
                lo, hi = np.percentile(draws, INTERVALS["95"], axis=0)
                ax.fill_between(n_grid, lo, hi, color=line.get_color(), alpha=0.2, label="2.5-97.5 % (fit only)")
        for _, r in group.iterrows():
            ax.errorbar(
                r["params"],
                r["predicted_loss"],
                yerr=[[r["predicted_loss"] - r["predicted_lo_95"]], [r["predicted_hi_95"] - r["predicted_loss"]]],
                fmt="none",
                ecolor="grey",
                capsize=3,
            )
            ax.scatter(r["params"], r["achieved_loss"], marker="o", zorder=3, color="black")
            ax.annotate(
                r["roles"], (r["params"], r["achieved_loss"]), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("Predicted compute-optimal model vs outcome (dots: trained)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, png, pdf)
    plt.close(fig)


def _read_json(path: str, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ScaleDAGError(f"{path}: cannot read the {what} ({exc})") from None


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.chinchilla.closed_loop", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="the runs that test the fit's prediction, and the GPU-hour size choice")
    p.add_argument("--settings", required=True, help="JSON from workflow.studies.isoflop.closed_loop_settings")
    p.add_argument("--fit", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size-choice", required=True, help="CSV: N, D and shape per GPU-hour budget and approach")
    p.add_argument("--size-config", required=True, help="YAML: the chosen shapes as config entries")
    r = sub.add_parser("report", help="predicted vs achieved loss of the planned runs")
    r.add_argument("--plan", required=True)
    r.add_argument("--fit", required=True)
    r.add_argument("--metrics", nargs="*", default=[])
    r.add_argument("--summaries", nargs="*", default=[])
    r.add_argument("--table", required=True)
    r.add_argument("--png", required=True)
    r.add_argument("--pdf", required=True)
    args = parser.parse_args(argv)
    fit = _read_json(args.fit, "scaling fit")
    if args.command == "plan":
        settings = json_option("--settings", args.settings)
        plan = plan_runs(settings, fit)
        for note in plan["notes"]:
            print(f"note: {note}")
        table, snippet = size_choice(settings, fit)
        write_table(table, args.size_choice)
        atomic_write_text(args.size_config, snippet)
        atomic_write_json(args.out, plan)
        print(
            f"{len(plan['runs'])} closed-loop runs: "
            + ", ".join(f"{r['run']} ({'+'.join(r['roles'])})" for r in plan["runs"])
        )
        return 0
    plan = _read_json(args.plan, "closed-loop plan")
    table = report_table(plan, fit, args.metrics, args.summaries)
    write_table(table, args.table)
    draw(table, fit, args.png, args.pdf)
    print(table.to_string(index=False) if not table.empty else "no closed-loop runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
