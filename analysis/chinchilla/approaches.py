"""The Chinchilla study's tables from an IsoFLOP sweep's runs (Hoffmann et al. 2022, arXiv 2203.15556).

Why separate from `analysis.chinchilla.fit`: that module is the fitting library (and a CLI for any CSV);
this one knows the DAG's run outputs and writes the study's tables, so the rules stay one line:

    python -m analysis.chinchilla.approaches points --budgets JSON --metrics ... --summaries ... --points CSV --curves CSV
    python -m analysis.chinchilla.approaches fit --points CSV --curves CSV --target-budget C --table-budgets C... --out-dir DIR

`points`: one row per run (final validation loss, parameters with and without embeddings, tokens,
FLOPs by both counts) and one row per intermediate validation point (approach 1's curves).
`fit`: approaches 1-3 -> `scaling_exponents.csv` (Table 2), `compute_optimal_allocation.csv`
(Table 3 / A3), `target_prediction.csv` (the optimal N, D at one budget: how BLOOM sized its
model), `isoflop_minima.csv`, `approach1_envelope.csv` and `scaling_fit.json` (everything, for
the figures). N counts all parameters (Chinchilla's convention); the non-embedding count is
recorded beside it.

An approach that cannot be fitted on the sweep (e.g. approach 2 with no convex IsoFLOP profile)
gets a row of NaNs and a `note` saying why, rather than stopping the DAG: a small sweep may
honestly not bracket its optimum, and the tables should say so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.chinchilla.fit import (
    DEFAULT_PERCENTILES,
    WIDE_PERCENTILES,
    approach1,
    approach2,
    bootstrap,
    fit_parametric,
    frontier,
    table_exponents,
    write_table,
)
from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.io import atomic_write_json
from workflow.model.flops import Shape, table_a4_training_flops_per_token
from workflow.studies.isoflop import fit_params
from workflow.train.metrics import read_metrics

APPROACHES = ("approach1", "approach2", "approach3")


# --------------------------------------------------------------------------------------------
# Points: the sweep's runs as rows
# --------------------------------------------------------------------------------------------


def _embedding_params(model: dict) -> int:
    """Input + output embedding (and learned positions): what `params_non_embedding` leaves out."""
    d, v = int(model["hidden"]), int(model["vocab_size"])
    n = v * d * (1 if model.get("tied_embeddings") else 2)
    if model.get("position_embedding") == "learned":
        n += int(model["seq_length"]) * d
    return n


def _flops_per_token(summary: dict, counting: str) -> float:
    """A run's training FLOPs per token under `counting`; Table A4's appendix-F reading is
    recomputed from the shape (the trainer records the full count and 6N)."""
    if counting in summary["flops_per_token"]:
        return float(summary["flops_per_token"][counting])

    m = summary["model"]
    return table_a4_training_flops_per_token(
        Shape(
            m["layers"],
            m["hidden"],
            m["heads"],
            m["ffn_hidden"],
            m["vocab_size"],
            m["seq_length"],
            glu=m.get("activation") == "swiglu",
        )
    )


def collect_points(
    budgets: dict[str, float],
    metrics: list[str],
    summaries: list[str],
    flops_per_token: str = "chinchilla",
    params_counting: str = "one_embedding",
    curve_metrics: list[str] | None = None,
    curve_summaries: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(final points, curves) from each run's summary.json and metrics.jsonl.

    `params` is N as `params_counting` says (workflow.studies.isoflop.fit_params); `params_all` is every
    parameter Megatron built. FLOPs per token come from the summary under the sweep's counting.
    With `curve_metrics`/`curve_summaries` (dedicated approach-1 runs at several cosine horizons)
    the curves come from those runs instead of the IsoFLOP runs.

    The run name is the run directory's name; `budgets` maps it to its nominal budget C. FLOPs
    are the tokens actually trained (whole global batches) times the run's FLOPs per token in the
    counting the sweep used, so `flops` may exceed `budget` by up to one batch.
    """
    by_run = {Path(p).parent.name: p for p in metrics}
    final, curves = [], []
    for path in summaries:
        run = Path(path).parent.name
        if run not in budgets:
            raise ScaleDAGError(f"{path}: run {run!r} is not in the sweep; expected one of {sorted(budgets)}")
        if run not in by_run:
            raise ScaleDAGError(f"{path}: no metrics.jsonl given for run {run!r}")
        s = json.loads(Path(path).read_text())
        fpt = _flops_per_token(s, flops_per_token)
        valid = [r for r in read_metrics(by_run[run]) if r.get("kind") == "valid"]
        if not valid:
            raise ScaleDAGError(f"{by_run[run]}: no validation rows")
        m = s["model"]
        base = {
            "run": run,
            "budget": float(budgets[run]),
            "layers": m["layers"],
            "hidden": m["hidden"],
            "heads": m["heads"],
            "params": fit_params(s, params_counting),
            "params_all": int(s["parameters"]),
            "params_non_embedding": int(s["parameters"]) - _embedding_params(m),
        }
        final.append(
            {
                **base,
                "tokens": int(s["tokens"]),
                "flops": s["tokens"] * fpt,
                "flops_6n": s["tokens"] * float(s["flops_per_token"]["6n"]),
                "loss": float(valid[-1]["loss"]),
                "final_train_loss": float(s["final_train_loss"]),
            }
        )
        curves += [
            {**base, "step": r["step"], "tokens": r["tokens"], "flops": r["tokens"] * fpt, "loss": r["loss"]}
            for r in valid
            if r["tokens"] > 0
        ]
    missing = sorted(set(budgets) - {Path(p).parent.name for p in summaries})
    if missing:
        raise ScaleDAGError(f"points: no summary.json given for run(s) {missing}")
    if curve_summaries:
        horizons = {Path(p).parent.name: float("nan") for p in curve_summaries}
        _, curves = collect_points(horizons, curve_metrics or [], curve_summaries, flops_per_token, params_counting)
    return (
        pd.DataFrame(final).sort_values(["budget", "params"], ignore_index=True),
        pd.DataFrame(curves).sort_values(["run", "step"], ignore_index=True),
    )


# --------------------------------------------------------------------------------------------
# Fit: the three approaches and the study's tables
# --------------------------------------------------------------------------------------------


def _try(name: str, func, notes: dict):
    try:
        return func()
    except ScaleDAGError as exc:
        notes[name] = str(exc)
        return None


def fit_study(
    points: pd.DataFrame, curves: pd.DataFrame, bootstrap_k: int = 100, seed: int = 0, starts: int | None = 100
) -> dict:
    """Approaches 1-3 on the sweep; a failed approach is None with its reason in `notes`.
    `starts`: approach 3's L-BFGS runs from the best of the paper's 4500 initialisations."""
    notes: dict[str, str] = {}
    res1 = _try("approach1", lambda: approach1(curves, bootstrap_k=bootstrap_k, seed=seed), notes)
    res2 = _try("approach2", lambda: approach2(points, bootstrap_k=bootstrap_k, seed=seed), notes)
    N, D, L = (points[c].to_numpy(float) for c in ("params", "tokens", "loss"))
    fit = _try("approach3", lambda: fit_parametric(N, D, L, starts=starts), notes)
    iv3 = None
    if fit is not None and bootstrap_k >= 2:
        iv3 = _try("approach3", lambda: bootstrap(N, D, L, k=bootstrap_k, seed=seed, full_fit=fit), notes)
    notes.update(edge_notes(res1, res2))
    return {"approach1": res1, "approach2": res2, "approach3": fit, "approach3_intervals": iv3, "notes": notes}


def edge_notes(res1: dict | None, res2: dict | None) -> dict[str, str]:
    """Where the design could not locate an optimum: an approach-2 vertex outside the sampled
    sizes (extrapolated) or a lowest loss at the window's edge, and an approach-1 envelope won by
    fewer than 3 distinct sizes (too few to fit a power law to anything but noise)."""
    notes = {}
    if res2 is not None:
        m = res2["minima"]
        said = []
        outside = m[m["ok"] & ~m["inside"].astype(bool)]["budget"].tolist()
        if outside:
            said.append(f"parabola vertex outside the sampled sizes (extrapolated) at budget(s) {outside}")
        for side in ("smallest", "largest"):
            at = m[m["edge"] == side]["budget"].tolist()
            if at:
                said.append(f"lowest loss at the {side} sampled size at budget(s) {at} (widen the size window)")
        if said:
            notes["approach2"] = "; ".join(said)
    if res1 is not None:
        sizes = res1["envelope"].query("used")["params"].nunique()
        if sizes < 3:
            notes["approach1"] = (
                f"envelope won by only {sizes} distinct model size(s) (< 3): the exponent rests on too few sizes"
            )
    return notes


def exponents_table(study: dict) -> pd.DataFrame:
    """Table 2: a (N_opt ∝ C^a) and b (D_opt ∝ C^b) per approach, 10th-90th (the paper's) and
    2.5th-97.5th percentile intervals."""
    rows = {}
    for name in APPROACHES:
        res = study[name]
        if res is None:
            continue
        if name == "approach3":
            iv = study["approach3_intervals"]
            rows[name] = {
                "fit": res,
                "intervals": {k: iv[k] for k in ("a", "b")} if iv else {},
                "intervals_95": {k: iv["intervals_95"][k] for k in ("a", "b")} if iv else {},
            }
        else:
            rows[name] = res
    table = table_exponents(rows).set_index("approach").reindex(list(APPROACHES)).reset_index()
    table["note"] = [study["notes"].get(a, "") for a in table["approach"]]
    return table


def power_law_allocation(res: dict, budgets) -> tuple[np.ndarray, np.ndarray]:
    """Approach 1 or 2's compute-optimal (N, D) at `budgets`: N_coef C^a, D_coef C^b."""
    budgets = np.asarray(budgets, float)
    return res["N_coef"] * budgets ** res["a"], res["D_coef"] * budgets ** res["b"]


def allocation_table(study: dict, budgets) -> pd.DataFrame:
    """Table 3 / A3: compute-optimal N and D per budget and approach (approach 3 also gives the
    predicted loss and, from the bootstrap fits, 10th-90th and 2.5th-97.5th percentile intervals on N)."""
    budgets = np.asarray(budgets, float).ravel()
    rows = []
    for name in APPROACHES:
        res = study[name]
        n_lo = n_hi = n_lo95 = n_hi95 = np.full(budgets.size, np.nan)
        loss = np.full(budgets.size, np.nan)
        if res is None:
            n_opt = d_opt = np.full(budgets.size, np.nan)
        elif name == "approach3":
            n_opt, d_opt = frontier(res, budgets)
            loss = res.predict(n_opt, d_opt)
            iv = study["approach3_intervals"]
            if iv is not None:
                s = iv["samples"]
                alpha, beta, A, B = (s[k].to_numpy()[:, None] for k in ("alpha", "beta", "A", "B"))
                G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
                n_s = G * (budgets[None, :] / 6) ** (beta / (alpha + beta))
                n_lo, n_hi = np.percentile(n_s, DEFAULT_PERCENTILES, axis=0)
                n_lo95, n_hi95 = np.percentile(n_s, WIDE_PERCENTILES, axis=0)
        else:
            n_opt, d_opt = power_law_allocation(res, budgets)
        for i, c in enumerate(budgets):
            rows.append(
                {
                    "approach": name,
                    "budget": c,
                    "N_opt": n_opt[i],
                    "D_opt": d_opt[i],
                    "tokens_per_param": d_opt[i] / n_opt[i],
                    "loss": loss[i],
                    "N_opt_lo": n_lo[i],
                    "N_opt_hi": n_hi[i],
                    "N_opt_lo95": n_lo95[i],
                    "N_opt_hi95": n_hi95[i],
                }
            )
    return pd.DataFrame(rows)


def write_study_tables(
    study: dict,
    points: pd.DataFrame,
    out_dir: str | Path,
    target_budget: float,
    table_budgets,
    conventions: dict | None = None,
) -> dict[str, Path]:
    out = Path(out_dir)
    paths = {
        k: out / f"{k}.{ext}"
        for k, ext in (
            ("scaling_exponents", "csv"),
            ("compute_optimal_allocation", "csv"),
            ("target_prediction", "csv"),
            ("isoflop_minima", "csv"),
            ("approach1_envelope", "csv"),
            ("scaling_fit", "json"),
        )
    }
    exponents = exponents_table(study)
    for key, value in (conventions or {}).items():  # every table row says how N, C and the curves were counted
        exponents[key] = value
    write_table(exponents, paths["scaling_exponents"])
    write_table(allocation_table(study, table_budgets), paths["compute_optimal_allocation"])
    write_table(allocation_table(study, [target_budget]), paths["target_prediction"])
    res2, res1 = study["approach2"], study["approach1"]
    minima = (
        res2["minima"]
        if res2 is not None
        else pd.DataFrame(
            columns=["budget", "N_opt", "D_opt", "loss_opt", "n_points", "ok", "inside", "edge", "p2", "p1", "p0"]
        )
    )
    write_table(minima, paths["isoflop_minima"])
    env = (
        res1["envelope"]
        if res1 is not None
        else pd.DataFrame(columns=["flops", "loss", "run", "params", "tokens", "used"])
    )
    write_table(env, paths["approach1_envelope"])
    fit = study["approach3"]
    summary = {
        "n_points": int(len(points)),
        "budgets": sorted(float(b) for b in points["budget"].unique()),
        "target_budget": float(target_budget),
        "notes": study["notes"],
        "approach3": fit.to_dict() if fit is not None else None,
        "approach3_intervals": (
            {k: list(v) for k, v in study["approach3_intervals"].items() if k not in ("samples", "intervals_95")}
            if study["approach3_intervals"] is not None
            else None
        ),
        "approach3_intervals_95": (
            {k: list(v) for k, v in study["approach3_intervals"]["intervals_95"].items()}
            if study["approach3_intervals"] is not None
            else None
        ),
        "interval_percentiles": list(DEFAULT_PERCENTILES),
        "interval_95_percentiles": list(WIDE_PERCENTILES),
        "conventions": dict(conventions or {}),
        # every bootstrap refit, so later steps (the closed loop) can put intervals on predictions
        "approach3_samples": (
            study["approach3_intervals"]["samples"][["E", "A", "B", "alpha", "beta"]].to_dict("records")
            if study["approach3_intervals"] is not None
            else []
        ),
    }
    for name in ("approach1", "approach2"):
        res = study[name]
        summary[name] = None if res is None else {k: res[k] for k in ("a", "b", "N_coef", "D_coef")}
        for key in ("intervals", "intervals_95"):
            if res is not None and key in res:
                summary[name][key] = {k: list(v) for k, v in res[key].items()}
    atomic_write_json(paths["scaling_fit"], summary)
    return paths


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _read_csv(path: str, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ScaleDAGError(f"{path}: cannot read the {what} CSV ({' '.join(str(exc).split())})") from None


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.chinchilla.approaches", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("points", help="collect the sweep's runs into points and curves CSVs")
    p.add_argument("--budgets", required=True, help="JSON object: run name -> budget (FLOPs)")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--summaries", nargs="+", required=True)
    p.add_argument("--flops-per-token", choices=["chinchilla", "chinchilla_a4", "6n"], default="chinchilla")
    p.add_argument("--params-counting", choices=["one_embedding", "all"], default="one_embedding")
    p.add_argument("--curve-metrics", nargs="*", default=[], help="approach-1 runs (several cosine horizons per size)")
    p.add_argument("--curve-summaries", nargs="*", default=[])
    p.add_argument("--points", required=True)
    p.add_argument("--curves", required=True)
    f = sub.add_parser("fit", help="approaches 1-3 and the study's tables")
    f.add_argument("--points", required=True)
    f.add_argument("--curves", required=True)
    f.add_argument("--target-budget", type=float, required=True)
    f.add_argument("--table-budgets", type=float, nargs="+", required=True)
    f.add_argument("--bootstrap", type=int, default=100, metavar="K")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--starts", type=int, default=100, help="approach 3: L-BFGS from the best K grid inits (0 = all)")
    f.add_argument("--out-dir", required=True)
    f.add_argument(
        "--conventions", default="{}", help="JSON: how N, FLOPs and approach 1's curves were counted (recorded)"
    )
    args = parser.parse_args(argv)
    if args.command == "points":
        budgets = json_option("--budgets", args.budgets)
        points, curves = collect_points(
            budgets,
            args.metrics,
            args.summaries,
            args.flops_per_token,
            args.params_counting,
            args.curve_metrics,
            args.curve_summaries,
        )
        write_table(points, args.points)
        write_table(curves, args.curves)
        print(f"{len(points)} runs, {len(curves)} intermediate points")
        return 0
    points, curves = _read_csv(args.points, "points"), _read_csv(args.curves, "curves")
    print(f"fitting {len(points)} runs ({points['budget'].nunique()} budgets), bootstrap {args.bootstrap}", flush=True)
    study = fit_study(points, curves, bootstrap_k=args.bootstrap, seed=args.seed, starts=args.starts or None)
    paths = write_study_tables(
        study,
        points,
        args.out_dir,
        args.target_budget,
        args.table_budgets,
        json_option("--conventions", args.conventions),
    )
    for name, note in study["notes"].items():
        print(f"{name}: {note}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
