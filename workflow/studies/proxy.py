"""Architecture design by proxy (MatGPT): choose a model's shape from short runs.

For a parameter budget (non-embedding parameters, Kaplan's N, so the budget does not depend on the
vocabulary), candidate shapes are enumerated (hidden a multiple of `hidden_multiple`, heads from
the allowed head sizes, heads divisible by TP, layers giving N within `tolerance` of the budget).
Every candidate gets the same compute C = 6 * budget * tokens: its full run trains
D_i = C / (6 N_i) tokens, its proxy run `fraction` * D_i, so proxy runs are at equal compute too.
The proxy's final validation loss is the predicted loss at equal compute (lower is better) and the
proxy run's own step time gives each shape's throughput on the device it ran on. Full runs of the
top and bottom candidates (all at `tiny`) give the actual ranking; the report is the Spearman rank
correlation between the two and the proxy's cost as a fraction of the full runs'.

Runs (generator `proxy`) are `proxy_<shape>` and `full_<shape>`, shape `L<layers>-H<hidden>-A<heads>`,
trained by the ordinary `pretrain` rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from workflow import schema
from workflow.errors import ScaleDAGError
from workflow.model.flops import Shape, param_count
from workflow.model.gpt import make_model_spec
from workflow.train.metrics import read_metrics

if TYPE_CHECKING:
    import numpy as np


def proxy_settings(config: dict, study: str) -> dict:
    st = config["studies"][study]
    p = st.get("proxy")
    if not p or config["scale"] not in p:
        raise ScaleDAGError(f"config: studies.{study}.proxy.{config['scale']}: not declared")
    return {**p[config["scale"]], "arch": p["arch"], "overrides": p["overrides"]}


def non_embedding_params(arch: str, overrides: dict, layers: int, hidden: int, heads: int, seq: int) -> int:
    m = make_model_spec(arch, {"layers": layers, "hidden": hidden, "heads": heads, "seq_length": seq}, 1, overrides)
    return param_count(
        Shape.of(m),  # m was built with a 1-token vocabulary: no embedding parameters counted
        include_embeddings=False,
        biases=m.bias,
    )


def shape_name(layers: int, hidden: int, heads: int) -> str:
    return f"L{layers}-H{hidden}-A{heads}"


def with_defaults(s: dict) -> dict:
    """Proxy settings with the schema's defaults ($defs.proxy_scale) under what `s` sets: settings
    from config arrive filled, ones written by hand (tests, notebooks) get them here."""
    return {**schema.defaults("proxy_scale"), **s}


def enumerate_candidates(s: dict, tp: int = 1) -> list[dict]:
    """One candidate per (hidden, heads): the layer count whose N is nearest the budget, kept if
    within tolerance; then `max_candidates` spread evenly over the hidden-size order."""
    s = with_defaults(s)
    budget, tol = float(s["parameters"]), float(s["tolerance"])
    mult = int(s["hidden_multiple"])
    out = []
    for hidden in range(int(s.get("min_hidden", mult)), int(s.get("max_hidden", 64 * mult)) + 1, mult):
        if hidden % mult:
            continue
        for head_dim in sorted(s["head_dims"]):
            if hidden % head_dim or (hidden // head_dim) % tp:
                continue
            heads = hidden // head_dim
            per_layer = non_embedding_params(s["arch"], s["overrides"], 1, hidden, heads, s["seq_length"])
            layers = max(1, min(int(s["max_layers"]), round(budget / per_layer)))
            n = non_embedding_params(s["arch"], s["overrides"], layers, hidden, heads, s["seq_length"])
            if abs(n - budget) <= tol * budget:
                out.append(
                    {
                        "name": shape_name(layers, hidden, heads),
                        "layers": layers,
                        "hidden": hidden,
                        "heads": heads,
                        "seq_length": s["seq_length"],
                        "non_embedding_params": n,
                    }
                )
    k = int(s.get("max_candidates", len(out)))
    if len(out) > k:
        out = [out[i] for i in spread_indices(len(out), k)]
    if len(out) < int(s["min_candidates"]):
        raise ScaleDAGError(
            f"proxy: only {len(out)} candidate shapes within {tol:.0%} of {budget:.3g} parameters; widen tolerance, head_dims or max_hidden"
        )
    return out


def spread_indices(n: int, k: int) -> list[int]:
    """`k` of the indices 0..n-1 spread evenly, both ends kept: numpy.linspace(0, n - 1, k) rounded
    (the same floats: i * step, last = n - 1), in plain Python so the DAG needs no numpy."""
    if k < 2:
        return [0] * k
    step = (n - 1) / (k - 1)
    return sorted({round(i * step) for i in range(k - 1)} | {n - 1})


def full_tokens(s: dict, n: int) -> int:
    """Equal compute: D_i = budget * tokens / N_i (so 6 N_i D_i = 6 * budget * tokens)."""
    return int(round(float(s["tokens"]) * float(s["parameters"]) / n))


def proxy_runs(config: dict, study: str) -> dict[str, dict]:
    """Generator `proxy`: a proxy and a full run for every candidate (the DAG asks only for the
    full runs the ranking selects)."""
    s = proxy_settings(config, study)
    tp = config["scales"][config["scale"]]["parallel"]["tp"]
    runs = {}
    for c in enumerate_candidates(s, tp):
        d_full = full_tokens(s, c["non_embedding_params"])
        for variant, tokens in (("proxy", max(1, int(round(s["fraction"] * d_full)))), ("full", d_full)):
            runs[f"{variant}_{c['name']}"] = {
                "variant": variant,
                "arch": s["arch"],
                "overrides": dict(s["overrides"]),
                "shape_name": c["name"],
                "shape": {k: c[k] for k in ("layers", "hidden", "heads", "seq_length")},
                "train": {"tokens": tokens, **s.get("train", {})},
            }
    return runs


def full_selection(s: dict) -> dict | None:
    """None: every candidate runs in full; else {top: k, bottom: k}."""
    f = with_defaults(s)["full"]
    return None if f == "all" else f


# -- statistics ------------------------------------------------------------------------------------


def rankdata(values) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    import numpy as np  # numpy: report-time statistics (rule proxy_report), not at DAG parse

    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    sorted_v = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x, y) -> float | None:
    """Spearman rank correlation (Pearson of the average ranks); None with < 3 points or no spread."""
    import numpy as np  # numpy: report-time statistics (rule proxy_report), not at DAG parse

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) != len(y):
        raise ScaleDAGError(f"spearman: {len(x)} predictions but {len(y)} actual values")
    if len(x) < 3:
        return None
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


# -- ranking and report ---------------------------------------------------------------------------


def _final_valid_loss(metrics_path: str | Path) -> float:
    valid = [r for r in read_metrics(metrics_path) if r["kind"] == "valid"]
    if not valid:
        raise ScaleDAGError(f"{metrics_path}: no validation rows")
    return float(valid[-1]["loss"])


def _run_name(path: str | Path) -> str:
    return Path(path).parent.name


def rank_candidates(proxy_metrics: list[str], proxy_summaries: list[str], s: dict) -> dict:
    """Ranking from the proxy runs, and which shapes run in full."""
    summaries = {_run_name(p): json.loads(Path(p).read_text()) for p in proxy_summaries}
    rows = []
    for path in proxy_metrics:
        run = _run_name(path)
        if run not in summaries:
            raise ScaleDAGError(f"{path}: no summary.json given for run {run!r}")
        sm = summaries[run]
        m = sm["model"]
        n = non_embedding_params(s["arch"], s["overrides"], m["layers"], m["hidden"], m["heads"], m["seq_length"])
        d_full = full_tokens(s, n)
        tps = sm.get("train_tokens_per_s")
        rows.append(
            {
                "shape": run.split("_", 1)[1],
                "layers": m["layers"],
                "hidden": m["hidden"],
                "heads": m["heads"],
                "non_embedding_params": n,
                "parameters": sm["parameters"],
                "proxy_tokens": sm["tokens"],
                "full_tokens": d_full,
                "predicted_loss": _final_valid_loss(path),
                "tokens_per_s": tps,
                "predicted_full_hours": d_full / tps / 3600 if tps else None,
                "proxy_wall_seconds": sm["wall_seconds"],
                "device": sm["device"],
            }
        )
    rows.sort(key=lambda r: r["predicted_loss"])
    for i, r in enumerate(rows, 1):
        r["predicted_rank"] = i
    sel = full_selection(s)
    if sel is None:
        chosen = [r["shape"] for r in rows]
    else:
        top, bottom = int(sel["top"]), int(sel["bottom"])
        chosen = [r["shape"] for r in rows[:top]] + [r["shape"] for r in rows[max(top, len(rows) - bottom) :]]
    return {"candidates": rows, "full": chosen}


def proxy_report(ranking: dict, full_metrics: list[str], full_summaries: list[str]) -> dict:
    """Spearman(proxy ranking, full final losses) and proxy cost / full cost (FLOPs and wall time)."""
    by_shape = {r["shape"]: r for r in ranking["candidates"]}
    summaries = {_run_name(p).split("_", 1)[1]: json.loads(Path(p).read_text()) for p in full_summaries}
    rows = []
    for path in full_metrics:
        shape = _run_name(path).split("_", 1)[1]
        if shape not in by_shape:
            raise ScaleDAGError(f"{path}: shape {shape!r} is not in the proxy ranking")
        rows.append(
            {
                **by_shape[shape],
                "actual_loss": _final_valid_loss(path),
                "full_wall_seconds": summaries[shape]["wall_seconds"],
            }
        )
    actual_rank = rankdata([r["actual_loss"] for r in rows])
    for r, a in zip(rows, actual_rank):
        r["actual_rank"] = float(a)
    rho = spearman([r["predicted_loss"] for r in rows], [r["actual_loss"] for r in rows])
    flops = lambda n, d: 6.0 * n * d  # noqa: E731 -- 6ND with non-embedding N, as the budget
    proxy_flops = sum(flops(r["non_embedding_params"], r["proxy_tokens"]) for r in ranking["candidates"])
    full_flops_all = sum(flops(r["non_embedding_params"], r["full_tokens"]) for r in ranking["candidates"])
    ran = {r["shape"] for r in rows}
    proxy_sec_ran = sum(r["proxy_wall_seconds"] for r in ranking["candidates"] if r["shape"] in ran)
    full_sec = sum(r["full_wall_seconds"] for r in rows)
    return {
        "spearman": rho,
        "n_full": len(rows),
        "n_candidates": len(ranking["candidates"]),
        "proxy_flops_fraction": proxy_flops / full_flops_all,
        "proxy_flops_fraction_of_runs_done": proxy_flops
        / sum(flops(r["non_embedding_params"], r["full_tokens"]) for r in rows)
        if rows
        else None,
        "proxy_seconds_fraction": proxy_sec_ran / full_sec if full_sec else None,
        "best_predicted": ranking["candidates"][0]["shape"],
        "best_actual": min(rows, key=lambda r: r["actual_loss"])["shape"] if rows else None,
        "rows": sorted(rows, key=lambda r: r["predicted_rank"]),
    }
