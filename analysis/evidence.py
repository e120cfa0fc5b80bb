"""The evidence report: one row per paper finding, ours beside it, and a verdict computed from intervals.

Reads the study tables the DAG wrote at one scale (a study absent there adds no rows) and writes
`results/<scale>/evidence.csv` and `evidence.md`. Every row holds the paper's claim with its source,
our estimate with an interval, what that interval covers, and a verdict:

  agrees        the interval lies on the paper's side (a sign, a range, a parity margin)
  disagrees     the interval excludes the paper's claim
  inconclusive  the interval cannot tell, or the row lacks what a verdict needs: fewer than
                MIN_SEEDS seeds (the interval then holds item sampling only, not seed noise), a
                zero-shot score within 2 SE of chance, a fit that did not converge

Verdicts are computed, never edited: a disagreement honestly measured is a result. The rules:
- Chinchilla's exponents (Table 2): agrees when our 10-90% bootstrap interval overlaps the paper's
  and excludes Kaplan et al.'s a = 0.73 / b = 0.27 (the claim Chinchilla overturned); disagrees
  when it is disjoint from the paper's; else inconclusive.
- The three approaches agree with each other: pairwise overlap of the a intervals.
- The closed loop (Chinchilla section 4): the achieved loss inside the prediction's 80% interval,
  widened in quadrature by the 80% half-width of the measured seed noise (one run's loss moves by it);
  the predicted optimum beating the 4x over- and under-sized models at equal compute by more than
  2 sqrt(2) x the measured seed noise (tables/seed_noise.csv; unmeasured: inconclusive).
- BLOOM's axes: the difference from the baseline has the paper's sign at 95%: Welch's interval over
  seeds (analysis/seeds.py; zero-shot adds the items' binomial noise); with one seed a side, the
  documents' or items' SE only, and the verdict waits for MIN_SEEDS.
- MatGPT's near-parity: the 95% interval of LLaMA minus NeoX inside +-PARITY_MARGIN (zero-shot), and
  inside +-BPB_PARITY of NeoX's held-out bits per byte (our margin: the paper compared benchmarks).
- The proxy ranking: Spearman rho's 10-90% bootstrap interval (over candidates) above 0.

e.g. `python -m analysis.evidence --scale mini --results results/mini --out-csv e.csv --out-md e.md`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import seeds
from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_write_text, write_csv

MIN_SEEDS = 3
NOT_MEASURED = "not measured"  # the interval of a finding whose runs this scale does not have
Z95 = 1.96
Z80 = 1.2816  # two-sided 80%: the closed loop's intervals are 10-90%
PARITY_MARGIN = 0.02  # zero-shot accuracy points that count as "near parity" (2 points of the average)
BPB_PARITY = 0.02  # held-out bits per byte within 2% of NeoX's count as near parity (our margin, not the paper's)
CHANCE_SE = 2.0  # a zero-shot average within this many SE of chance says nothing about the model
KAPLAN = {"a": 0.73, "b": 0.27}  # Kaplan et al. 2020, the allocation Chinchilla overturned
# Hoffmann et al. 2022, Table 2: estimate and 10th-90th percentile interval.
CHINCHILLA_TABLE2 = {
    "approach1": {"a": (0.50, 0.488, 0.502), "b": (0.50, 0.501, 0.512)},
    "approach2": {"a": (0.49, 0.462, 0.534), "b": (0.51, 0.483, 0.529)},
    "approach3": {"a": (0.46, 0.454, 0.455), "b": (0.54, 0.542, 0.543)},
}
COLUMNS = ["study", "finding", "source", "paper", "metric", "ours", "lo", "hi", "interval", "seeds", "verdict", "note"]


def sign_verdict(lo: float, hi: float, expect: str) -> str:
    """`expect` '<0' or '>0': agrees when the whole interval is on that side, disagrees when the whole
    interval is on the other."""
    if not seeds.finite(lo, hi):
        return "inconclusive"
    below, above = hi < 0, lo > 0
    if (expect == "<0" and below) or (expect == ">0" and above):
        return "agrees"
    return "disagrees" if (below or above) else "inconclusive"


def range_verdict(lo: float, hi: float, paper: tuple[float, float], alternative: float) -> str:
    """Agrees: overlaps the paper's interval and excludes the alternative; disagrees: disjoint from it."""
    if not seeds.finite(lo, hi):
        return "inconclusive"
    if hi < paper[0] or lo > paper[1]:
        return "disagrees"
    return "inconclusive" if lo <= alternative <= hi else "agrees"


def parity_verdict(lo: float, hi: float, margin: float) -> str:
    if not seeds.finite(lo, hi):
        return "inconclusive"
    if -margin <= lo and hi <= margin:
        return "agrees"
    return "disagrees" if (lo > margin or hi < -margin) else "inconclusive"


def _row(study, finding, source, paper, metric, ours, lo, hi, interval, verdict, seeds=None, note=""):
    return dict(zip(COLUMNS, [study, finding, source, paper, metric, ours, lo, hi, interval, seeds, verdict, note]))


def _seed_cap(row: dict) -> dict:
    """A difference between single runs has no seed interval: its verdict waits for MIN_SEEDS seeds."""
    if row["seeds"] is not None and row["seeds"] < MIN_SEEDS and row["verdict"] != "inconclusive":
        row["note"] = (
            f"{row['note']}; " if row["note"] else ""
        ) + f"interval would say {row['verdict']}, but {row['seeds']} seed(s) < {MIN_SEEDS}: seed noise unmeasured"
        row["verdict"] = "inconclusive"
    return row


# -- Chinchilla ----------------------------------------------------------------------------------------


def chinchilla_rows(tables: Path) -> list[dict]:
    rows = []
    ex = pd.read_csv(tables / "scaling_exponents.csv").set_index("approach")
    flags = {a: str(n) for a, n in ex["note"].items() if isinstance(n, str) and n}  # the fit's own warnings
    for approach, paper in CHINCHILLA_TABLE2.items():
        if approach not in ex.index:
            continue
        r = ex.loc[approach]
        for k in ("a", "b"):
            est, plo, phi = paper[k]
            lo, hi, ours = (float(r.get(f"{k}_lo", np.nan)), float(r.get(f"{k}_hi", np.nan)), float(r.get(k, np.nan)))
            verdict = range_verdict(lo, hi, (plo, phi), KAPLAN[k])
            note = flags.get(approach, "")
            if note and verdict != "inconclusive":  # an extrapolated vertex or an edge minimum: the design missed
                note, verdict = f"interval would say {verdict}, but the fit flags: {note}", "inconclusive"
            rows.append(
                _row(
                    "chinchilla",
                    f"{approach}: {k} ≈ 0.5 ({'N' if k == 'a' else 'D'}_opt ∝ C^{k}), not Kaplan's {KAPLAN[k]}",
                    "Hoffmann et al. 2022, Table 2",
                    f"{est} [{plo}, {phi}]",
                    k,
                    ours,
                    lo,
                    hi,
                    "10-90% bootstrap over runs",
                    verdict,
                    note=note,
                )
            )
    fitted = {
        a: (float(ex.loc[a, "a_lo"]), float(ex.loc[a, "a_hi"]))
        for a in ex.index
        if seeds.finite(ex.loc[a, "a_lo"], ex.loc[a, "a_hi"]) and not flags.get(a)
    }
    if len(fitted) < 2:
        verdict, lo, hi = "inconclusive", math.nan, math.nan
        note = f"only {sorted(fitted) or 'no approach'} fitted without a flag (see the rows above)"
    else:
        lo, hi = max(v[0] for v in fitted.values()), min(v[1] for v in fitted.values())
        verdict = "agrees" if lo <= hi else "disagrees"
        note = f"{len(fitted)} approaches; lo/hi: the intersection of their a intervals (empty when lo > hi)"
    rows.append(
        _row(
            "chinchilla",
            "the three approaches agree on a",
            "Hoffmann et al. 2022, section 3.4",
            "0.46-0.50",
            "a",
            math.nan,
            lo,
            hi,
            "10-90% bootstrap",
            verdict,
            note=note,
        )
    )
    noise_path = tables / "seed_noise.csv"
    sd = math.nan
    if noise_path.exists():
        last = pd.read_csv(noise_path).iloc[-1]
        sd = float(last["sd"])
        for r in rows:
            r["note"] = (f"{r['note']}; " if r["note"] else "") + (
                f"seed noise {last['rel_sd']:.2%} of the loss ({int(last['n'])} seeds of one run)"
            )
    loop_path = tables / "closed_loop.csv"
    if loop_path.exists():
        rows += closed_loop_rows(pd.read_csv(loop_path), sd)
    return rows


def closed_loop_rows(loop: pd.DataFrame, seed_sd: float = math.nan) -> list[dict]:
    """Prediction vs outcome per trained optimum, and whether it beat the over- and under-sized runs:
    a margin below 2 sqrt(2) x the seed noise's sd (the SD of a difference of two runs, twice) is
    not resolved; with no seed noise measured the verdict is inconclusive."""
    rows = []
    for _, r in loop.iterrows():
        roles = str(r["roles"])
        if roles in ("over", "under"):
            continue
        pred, lo, hi = (float(r[k]) for k in ("predicted_loss", "predicted_lo_80", "predicted_hi_80"))
        interval = "80%: the fit's bootstrap"
        if seeds.finite(seed_sd):  # one run's loss also moves by the seed noise: add its 80% half-width in quadrature
            lo = pred - math.hypot(pred - lo, Z80 * seed_sd)
            hi = pred + math.hypot(hi - pred, Z80 * seed_sd)
            interval += " and the seed noise, in quadrature"
        achieved = float(r["achieved_loss"])
        verdict = "agrees" if lo <= achieved <= hi else "disagrees"
        if not seeds.finite(pred, lo, hi):
            verdict = "inconclusive"
        rows.append(
            _row(
                "chinchilla",
                f"the {roles} optimum at C = {r['budget']:.3g} reaches the loss its fit predicts",
                "Hoffmann et al. 2022, section 4 (Chinchilla at Gopher's budget)",
                "achieved ≈ predicted",
                "valid loss (nats/token)",
                achieved,
                lo,
                hi,
                interval,
                verdict,
                note=f"predicted {pred:.4g}; the fit's own 80% interval [{float(r['predicted_lo_80']):.4g}, "
                f"{float(r['predicted_hi_80']):.4g}]",
            )
        )
        if not pd.isna(r.get("beats_over")) and r.get("beats_over") != "":
            over = loop[loop["roles"] == "over"]
            under = loop[loop["roles"] == "under"]
            beats = str(r["beats_over"]) == "True" and str(r["beats_under"]) == "True"
            margin = min(
                abs(float(over["achieved_loss"].min()) - float(r["achieved_loss"])),
                abs(float(under["achieved_loss"].min()) - float(r["achieved_loss"])),
            )
            resolved = seeds.finite(seed_sd) and margin > 2 * math.sqrt(2) * seed_sd
            verdict = ("agrees" if beats else "disagrees") if resolved else "inconclusive"
            noise = (
                f"smallest margin {margin:.3g} vs 2√2 × seed sd = {2 * math.sqrt(2) * seed_sd:.3g}"
                if seeds.finite(seed_sd)
                else "seed noise not measured (isoflop.<scale>.noise_seeds)"
            )
            rows.append(
                _row(
                    "chinchilla",
                    f"the {roles} optimum beats a 4x larger and a 4x smaller model at C = {r['budget']:.3g}",
                    "Hoffmann et al. 2022, section 4 (Chinchilla 70B vs Gopher 280B)",
                    "optimum lowest",
                    "valid loss (nats/token)",
                    float(r["achieved_loss"]),
                    math.nan,
                    math.nan,
                    "margin against the seed noise",
                    verdict,
                    note=f"over {float(over['achieved_loss'].min()):.4g}, under {float(under['achieved_loss'].min()):.4g}; {noise}",
                )
            )
    return rows


# -- BLOOM ablations -------------------------------------------------------------------------------------

# (finding, variant, other variant or None for the baseline, metric column, expected sign of ours - other)
BLOOM_FINDINGS = [
    ("ALiBi beats rotary (the baseline)", "alibi", None, "bpb_en", "<0"),
    ("ALiBi beats rotary (the baseline)", "alibi", None, "zeroshot", ">0"),
    ("ALiBi beats learned position embeddings", "alibi", "learned", "bpb_en", "<0"),
    ("SwiGLU beats GeLU", "swiglu", None, "bpb_en", "<0"),
    ("SwiGLU beats GeLU", "swiglu", None, "zeroshot", ">0"),
    ("rotary beats learned position embeddings", "learned", None, "bpb_en", ">0"),
    ("embedding LayerNorm hurts zero-shot", "embed-ln", None, "zeroshot", "<0"),
    (
        "embedding LayerNorm hurts",
        "embed-ln",
        None,
        "bpb_en",
        ">0",
        "the paper measured zero-shot at 1.3B; held-out bits per byte is our reading of the same claim, and early in"
        " training a normalised embedding may speed learning whatever it does to generalisation",
    ),
    ("the more diverse corpus beats the narrower one", "corpus-mix", None, "zeroshot", ">0"),
    ("multilingual is worse on English at equal compute", "multilingual", None, "zeroshot", "<0"),
    ("multilingual is worse on English at equal compute", "multilingual", None, "bpb_en", ">0"),
]
BLOOM_SOURCE = "Le Scao et al. 2022, section 4"


def _variant_runs(t: pd.DataFrame, variant: str | None) -> pd.DataFrame:
    """A variant's runs (one per seed) in a per-run table; None: the baseline's."""
    if variant is None:
        return t[t["axis"] == "baseline"] if "axis" in t.columns else t.iloc[0:0]
    return t[t["variant"] == variant]


def _difference(t: pd.DataFrame, variant: str, other: str | None, metric: str) -> dict | None:
    """`variant` minus `other` (None: the baseline) in English bits per byte (`bpb_en`) or zero-shot
    average (`zeroshot`): {diff, lo, hi, n seeds, covers}. With >= 2 seeds a side, Welch's 95%
    interval over seeds (+ item noise for zero-shot, analysis/seeds.py); with one, the per-run table's
    paired standard error (documents or items), which cannot see seed noise."""
    v, o = _variant_runs(t, variant), _variant_runs(t, other)
    if v.empty or o.empty:
        return None
    col = "bpb_en" if metric == "bpb_en" else "zeroshot_avg"
    if min(len(v), len(o)) >= 2 and col in t.columns:
        d = seeds.difference(v, o, col)
        return {**d, "covers": f"95%: {d['covers']}"}
    dcol, se = ("delta_bpb_en", "delta_bpb_en_se") if metric == "bpb_en" else ("delta_zeroshot", "delta_se")
    if dcol not in t.columns or se not in t.columns:
        return None
    x = v.iloc[0]
    d, s = float(x.get(dcol, np.nan)), float(x.get(se, np.nan))
    if other is not None:  # both against the same baseline: their difference
        y = o.iloc[0]
        d, s = d - float(y[dcol]), math.hypot(s, float(y[se]))
    return {
        "diff": d,
        "lo": d - Z95 * s,
        "hi": d + Z95 * s,
        "n": 1,
        "covers": "95%: documents (bpb) or items (zero-shot) sampled, one seed",
    }


def bloom_rows(table: pd.DataFrame, skipped: dict[str, str] | None = None) -> list[dict]:
    """BLOOM's findings from the per-run ablation table (tables/downstream.csv), one row per seed.

    A finding whose variant has no result still gets its row, marked not measured and why (`skipped`:
    variant -> the config's `skip.<scale>` reason), so a reader sees a finding was not tested rather
    than miss it."""
    rows, skipped = [], skipped or {}
    chance = table.loc[table["run"] == "random", "zeroshot_avg"]
    chance = float(chance.iloc[0]) if len(chance) else math.nan
    for finding, variant, other, metric, expect, *note in BLOOM_FINDINGS:
        got = _difference(table, variant, other, metric)
        if got is None or not seeds.finite(got["diff"]):
            absent = [x for x in (variant, other) if _variant_runs(table, x).empty]
            whys = [
                f"variant {x or 'baseline'} "
                + (f"is skipped ({skipped[x]})" if x in skipped else "has no runs in tables/downstream.csv")
                for x in absent
            ]
            rows.append(
                _row(
                    "bloom_ablations",
                    finding,
                    BLOOM_SOURCE,
                    f"{variant} - {other or 'baseline'} {expect}",
                    "English bits per byte" if metric == "bpb_en" else "zero-shot average accuracy",
                    math.nan,
                    math.nan,
                    math.nan,
                    NOT_MEASURED,
                    "inconclusive",
                    note="not measured at this scale: "
                    + ("; ".join(whys) or f"no {metric} result for {variant} in tables/downstream.csv"),
                )
            )
            continue
        row = _row(
            "bloom_ablations",
            finding,
            BLOOM_SOURCE,
            f"{variant} - {other or 'baseline'} {expect}",
            "English bits per byte" if metric == "bpb_en" else "zero-shot average accuracy",
            got["diff"],
            got["lo"],
            got["hi"],
            got["covers"],
            sign_verdict(got["lo"], got["hi"], expect),
            seeds=got["n"],
            note=note[0] if note else "",
        )
        if metric == "zeroshot":
            row = _chance_cap(row, table, [variant, other], chance)
        rows.append(_seed_cap(row))
    return rows


def _chance_cap(row: dict, table: pd.DataFrame, variants: list, chance: float) -> dict:
    """A difference between scores at chance measures nothing: inconclusive, with the scores named
    (each variant's mean over its seeds, and one run's item SE)."""
    base = table[table["axis"] == "baseline"]["variant"].dropna().unique().tolist()
    names = [v for v in variants if v] + ([] if all(variants) else base)
    at_chance = []
    for name in names:
        r = table[table["variant"] == name]
        if r.empty or not seeds.finite(chance):
            continue
        acc, se = float(r["zeroshot_avg"].mean()), float(r["zeroshot_avg_se"].mean())
        if acc - CHANCE_SE * se <= chance:
            at_chance.append(f"{name} {acc:.3f}±{se:.3f}")
    if at_chance:
        row["note"] = f"within {CHANCE_SE:g} SE of chance ({chance:.3f}): {', '.join(at_chance)}"
        row["verdict"] = "inconclusive"
    return row


# -- MatGPT ------------------------------------------------------------------------------------------------

ARCHS = ("gpt-neox", "llama")


def matgpt_rows(table: pd.DataFrame) -> list[dict]:
    """LLaMA minus GPT-NeoX per size, from the per-run table (one row per seed): zero-shot average
    (the paper's near-parity) and held-out bits per byte (ours: the metric a CPU-sized model moves)."""
    rows = []
    runs = table[table["arch"].isin(ARCHS)]
    chance = table.loc[table["run"] == "random", "zeroshot_avg"]
    chance = float(chance.iloc[0]) if len(chance) else math.nan
    for size, group in runs.groupby("size"):
        neox, llama = group[group["arch"] == "gpt-neox"], group[group["arch"] == "llama"]
        if neox.empty or llama.empty:
            continue
        n = min(len(neox), len(llama))
        if n >= 2:
            zs = seeds.difference(llama, neox, "zeroshot_avg")
            covers = f"95%: {zs['covers']}"
        else:  # one run a side: item noise only
            d = float(llama["zeroshot_avg"].iloc[0]) - float(neox["zeroshot_avg"].iloc[0])
            se = math.hypot(float(llama["zeroshot_avg_se"].iloc[0]), float(neox["zeroshot_avg_se"].iloc[0]))
            zs, covers = {"diff": d, "lo": d - Z95 * se, "hi": d + Z95 * se}, "95%: items sampled, one seed"
        row = _row(
            "matgpt",
            f"GPT-NeoX and LLaMA near parity on general zero-shot benchmarks ({size})",
            "Yin et al. 2024 (MatGPT), zero-shot evaluation",
            f"|LLaMA - NeoX| <= {PARITY_MARGIN}",
            "zero-shot average accuracy",
            zs["diff"],
            zs["lo"],
            zs["hi"],
            covers,
            parity_verdict(zs["lo"], zs["hi"], PARITY_MARGIN),
            seeds=n,
        )
        table_view = group.assign(variant=group["arch"], axis="run")
        rows.append(_seed_cap(_chance_cap(row, table_view, list(ARCHS), chance)))
        if "valid_bpb" in group.columns and group["valid_bpb"].notna().all():
            bpb = seeds.difference(llama, neox, "valid_bpb")
            margin = BPB_PARITY * float(neox["valid_bpb"].mean())
            rows.append(
                _seed_cap(
                    _row(
                        "matgpt",
                        f"GPT-NeoX and LLaMA near parity in held-out bits per byte ({size})",
                        "Yin et al. 2024 (MatGPT): near parity on benchmarks; the loss margin is ours",
                        f"|LLaMA - NeoX| <= {BPB_PARITY:.0%} of NeoX's ({margin:.3f})",
                        "validation bits per byte",
                        bpb["diff"],
                        bpb["lo"],
                        bpb["hi"],
                        f"95%: {bpb['covers']}",
                        parity_verdict(bpb["lo"], bpb["hi"], margin),
                        seeds=n,
                        note="the paper compared benchmarks, not loss: a difference here says which architecture "
                        "learns this corpus faster at this size, not that the paper's parity fails",
                    )
                )
            )
    return rows


def bandgap_rows(bandgap: pd.DataFrame) -> list[dict]:
    """Embedding features vs the mean predictor, one row per architecture x size over its seeds.

    Each variant's head is the text-only head with the lowest MAE averaged over its seeds (one head
    per variant, so no seed picks its own). The interval is +-2 Matbench fold standard deviations
    (each run's over its 5 folds, averaged over seeds, and the dummy's, in quadrature), widened in
    quadrature by the seeds' 95% t half-width when there are >= 2 seeds."""
    rows = []
    dummy = bandgap[bandgap["method"] == "dummy"]
    if dummy.empty:
        return rows
    d_mae, d_std = float(dummy["mae"].iloc[0]), float(dummy["mae_std"].iloc[0])
    text_only = bandgap["arch"].notna() & ~bandgap["method"].str.contains("composition")  # the embeddings alone
    rf = bandgap.loc[bandgap["method"].str.startswith("rf"), "mae"]
    for (arch, size), group in bandgap[text_only].groupby(["arch", "size"]):
        head = group.groupby("method")["mae"].mean().idxmin()
        runs = group[group["method"] == head]
        diffs = [float(m) - d_mae for m in runs["mae"]]
        diff, lo, hi = seeds.t_interval(diffs)
        seed_half = (hi - diff) if seeds.finite(hi) else 0.0
        half = math.hypot(2 * math.hypot(float(runs["mae_std"].mean()), d_std), seed_half)
        n = len(diffs)
        rows.append(
            _row(
                "matgpt",
                f"band gap from {arch} {size} embeddings beats the mean predictor",
                "Yin et al. 2024 (MatGPT), band-gap task (the paper: state of the art with a GNN; here: any signal)",
                "MAE(embeddings) - MAE(dummy) < 0",
                "MAE (eV)",
                diff,
                diff - half,
                diff + half,
                "±2 fold SDs (Matbench folds)" + (" + seeds (t)" if n > 1 else ""),
                sign_verdict(diff - half, diff + half, "<0"),
                seeds=n,
                note=f"text-only head {head}: {diff + d_mae:.3f} vs dummy {d_mae:.3f} eV (mean of {n} run(s))"
                + (f"; composition random forest {float(rf.iloc[0]):.3f} eV" if len(rf) else "")
                + "; the head with the lowest mean MAE is chosen on the same folds, a mild optimism",
            )
        )
    return rows


# -- architecture design by proxy --------------------------------------------------------------------------


def spearman(x, y) -> float:
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def proxy_rows(proxy: pd.DataFrame, replicates: int = 1000, seed: int = 0) -> list[dict]:
    full = proxy.dropna(subset=["actual_loss"])
    n = len(full)
    x, y = full["predicted_loss"].to_numpy(), full["actual_loss"].to_numpy()
    rho = spearman(x, y) if n >= 2 else math.nan
    lo = hi = math.nan
    if n >= 4:
        rng = np.random.default_rng(seed)
        draws = [spearman(x[i], y[i]) for i in (rng.integers(0, n, n) for _ in range(replicates))]
        draws = np.array([d for d in draws if math.isfinite(d)])
        lo, hi = np.quantile(draws, [0.1, 0.9]) if len(draws) else (math.nan, math.nan)
    saved = ""
    if {"proxy_wall_seconds", "full_wall_seconds"} <= set(proxy.columns):
        saved = f"proxies cost {proxy['proxy_wall_seconds'].sum():.0f} s vs {full['full_wall_seconds'].sum():.0f} s of full runs"
    return [
        _row(
            "arch_proxy",
            "proxy runs rank candidate shapes as the full runs do",
            "Yin et al. 2024 (MatGPT), architecture design by proxy",
            "Spearman rho > 0",
            "Spearman rho (proxy vs full loss)",
            rho,
            float(lo),
            float(hi),
            f"10-90% bootstrap over {n} candidates",
            sign_verdict(float(lo), float(hi), ">0") if n >= 4 else "inconclusive",
            note=(saved if n >= 4 else f"{n} fully trained candidates: too few for an interval; {saved}").strip("; "),
        )
    ]


# -- the report ------------------------------------------------------------------------------------------------


def evidence_table(results: Path, skipped: dict[str, str] | None = None) -> pd.DataFrame:
    """Every finding whose study wrote its tables under `results` (one scale's results root); the
    seeds behind a comparison are counted from its per-run table. `skipped`: BLOOM variants the scale
    does not run, with the reason (see bloom_rows)."""
    rows: list[dict] = []
    tables = {s: results / s / "tables" for s in ("chinchilla", "bloom_ablations", "matgpt", "arch_proxy")}
    if (tables["chinchilla"] / "scaling_exponents.csv").exists():
        rows += chinchilla_rows(tables["chinchilla"])
    if (tables["bloom_ablations"] / "downstream.csv").exists():
        rows += bloom_rows(pd.read_csv(tables["bloom_ablations"] / "downstream.csv"), skipped)
    if (tables["matgpt"] / "downstream.csv").exists():
        rows += matgpt_rows(pd.read_csv(tables["matgpt"] / "downstream.csv"))
    if (tables["matgpt"] / "bandgap.csv").exists():
        rows += bandgap_rows(pd.read_csv(tables["matgpt"] / "bandgap.csv"))
    if (tables["arch_proxy"] / "proxy.csv").exists():
        rows += proxy_rows(pd.read_csv(tables["arch_proxy"] / "proxy.csv"))
    return pd.DataFrame(rows, columns=COLUMNS)


def _fmt(x) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"


def verdict_counts(table: pd.DataFrame) -> tuple[dict[str, int], int]:
    """Verdicts of the measured findings, and how many findings were not measured at this scale."""
    unmeasured = table["interval"] == NOT_MEASURED
    return table.loc[~unmeasured, "verdict"].value_counts().to_dict(), int(unmeasured.sum())


def markdown(table: pd.DataFrame, scale: str) -> str:
    counts, not_measured = verdict_counts(table)
    lines = [
        f"# Evidence at scale `{scale}`",
        "",
        "Computed by `analysis/evidence.py` from this scale's tables; a verdict comes from the interval "
        "and the rules in that module's docstring, never by hand. "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in ("agrees", "disagrees", "inconclusive"))
        + (f"; {not_measured} not measured at this scale (their rows say why)" if not_measured else "")
        + ".",
        "",
        "| study | finding | source | paper | ours | interval | verdict | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        interval = (
            f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}] ({r['interval']})" if seeds.finite(r["lo"], r["hi"]) else r["interval"]
        )
        n_seeds = "" if pd.isna(r["seeds"]) else f", {int(r['seeds'])} seed(s)"
        lines.append(
            f"| {r['study']} | {r['finding']} | {r['source']} | {r['paper']} | {_fmt(r['ours'])} {r['metric']} | "
            f"{interval}{n_seeds} | **{r['verdict']}** | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


@main_guard
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="one scale's results root, e.g. results/mini")
    p.add_argument("--scale", required=True)
    p.add_argument(
        "--inputs", nargs="*", default=[], help="the tables read (listed for Snakemake; found under --results)"
    )
    p.add_argument(
        "--skipped",
        nargs="*",
        default=[],
        metavar="VARIANT=REASON",
        help="BLOOM variants this scale does not run (the config's skip.<scale>), reported as not measured",
    )
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    args = p.parse_args(argv)
    skipped = {}
    for item in args.skipped:
        variant, sep, reason = item.partition("=")
        if not sep or not variant:
            raise ScaleDAGError(f"evidence --skipped: {item!r} is not VARIANT=REASON")
        skipped[variant] = reason
    table = evidence_table(Path(args.results), skipped)
    write_csv(table, args.out_csv)
    atomic_write_text(args.out_md, markdown(table, args.scale))
    counts, not_measured = verdict_counts(table)
    print(f"evidence: {len(table)} findings -> {args.out_md}: {counts}, {not_measured} not measured", flush=True)


if __name__ == "__main__":
    main()
