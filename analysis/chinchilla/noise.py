"""Run-to-run loss noise of an IsoFLOP sweep: one sweep run trained again under other seeds.

Every interval of the fits rests on how much a run's final loss moves when only the seed (init and
data order) changes; the bootstrap over runs sees that noise only through the scatter of the
points. `isoflop.<scale>.noise_seeds` retrains the sweep's middle run under each seed
(workflow/studies/isoflop.py, noise_plan), and this module writes tables/seed_noise.csv: one row
per run (its seed and final validation loss, the last `valid` row of metrics.jsonl, as the fits
read it), then a row `all` with the mean, the sample standard deviation (ddof 1) and the relative
one. With 3 runs the standard deviation itself is uncertain by about +-50% (chi-square, 2 degrees
of freedom), so read it as an order of magnitude.

e.g. `python -m analysis.chinchilla.noise --base a/metrics.jsonl --replicates b/metrics.jsonl c/metrics.jsonl --seeds 1 2 3 --out t.csv`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import write_csv
from workflow.train.metrics import read_metrics


def final_valid_loss(metrics: str | Path) -> float:
    valid = [r for r in read_metrics(metrics) if r.get("kind") == "valid"]
    if not valid:
        raise ScaleDAGError(f"{metrics}: no validation rows")
    return float(valid[-1]["loss"])


def seed_noise(base: str, replicates: list[str], seeds: list[int]) -> pd.DataFrame:
    paths = [base, *replicates]
    if len(seeds) != len(paths):
        raise ScaleDAGError(f"seed noise: {len(seeds)} seeds for {len(paths)} runs (the base's, then each replicate's)")
    rows = [{"run": Path(p).parent.name, "seed": k, "loss": final_valid_loss(p)} for p, k in zip(paths, seeds)]
    losses = np.array([r["loss"] for r in rows])
    sd = float(losses.std(ddof=1)) if len(losses) > 1 else float("nan")
    rows.append({"run": "all", "n": len(losses), "mean": losses.mean(), "sd": sd, "rel_sd": sd / losses.mean()})
    return pd.DataFrame(rows, columns=["run", "seed", "loss", "n", "mean", "sd", "rel_sd"])


@main_guard
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="metrics.jsonl of the sweep run")
    p.add_argument("--replicates", nargs="+", required=True, help="metrics.jsonl of its seed replicates")
    p.add_argument("--seeds", nargs="+", type=int, required=True, help="the base's seed, then each replicate's")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    table = seed_noise(args.base, args.replicates, args.seeds)
    write_csv(table, args.out)
    last = table.iloc[-1]
    print(
        f"seed noise over {int(last['n'])} runs: sd {last['sd']:.4g} nats ({last['rel_sd']:.2%} of {last['mean']:.4g})"
    )


if __name__ == "__main__":
    main()
