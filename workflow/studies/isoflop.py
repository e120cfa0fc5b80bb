"""IsoFLOP sweeps: the runs of a compute-optimal scaling study (Chinchilla, arXiv 2203.15556).

Why derived, not listed: a sweep is a grid of (compute budget C, model size N) pairs, and every
run's shape and token budget follow from them. Listing 81 runs by hand for the paper scale would
invite mistakes, so `studies.<s>.kind: isoflop` makes `isoflop_runs` derive them from
`studies.<s>.isoflop`:

- budgets: `<scale>.budgets` (FLOPs).
- sizes: `<scale>.sizes` is one of
    [N1, N2, ...]                      the same parameter counts at every budget;
    [[N...], [N...], ...]              one list per budget (a grid per budget);
    {count: k, min: N_lo, max: N_hi}   k log-spaced sizes, the same at every budget;
    {count: k, tokens_per_param: [r_lo, r_hi]}
                                       k log-spaced sizes per budget, from N = sqrt(C / (6 r_hi)) to
                                       sqrt(C / (6 r_lo)) (C = 6 N D, D = r N): a window that moves
                                       with the budget around the compute-optimal size, as the paper's
                                       IsoFLOP profiles do.
  N is counted as `params_counting` says (default `one_embedding`, Chinchilla's: one vocabulary
  matrix; `all`: every parameter Megatron builds).

Aspect-ratio rule (`shape_rule`): a target N becomes the (layers L, hidden d) whose parameter count
is closest to N in log space among all shapes with
    d a multiple of `hidden_multiple` (default 64) and of `head_size` x the scale's tensor-parallel
    size, heads = d / head_size (so TP divides heads),
    d / L within `aspect_ratio: [lo, hi]`;
ties go to the d / L nearest the geometric mean of [lo, hi]. So hidden is always a multiple of 64
(with the default) and of heads. Parameters are counted with `workflow.model.flops.param_count` for the
study's architecture (FFN width, GLU, biases, tied/learned embeddings), the count Megatron builds.

Token budget: D = C / FLOPs-per-token of that shape, counted as `flops_per_token` says
(`chinchilla`: appendix F, `6n`: 6 N), rounded up to whole global batches by the trainer. The
cosine schedule decays over `train.tokens` = D, so each run's schedule length equals its budget.
`evals_per_run` sets each run's eval_interval so approach 1 gets that many intermediate points.

Run names: `c<budget>_l<L>-h<d>` (e.g. `c3e12_l2-h128`), i.e. `<variant>_<shape>`.
"""

from __future__ import annotations

import bisect
import copy
import functools
import json
import math

from workflow.errors import ScaleDAGError
from workflow.model.flops import (
    Shape,
    chinchilla_training_flops_per_token,
    param_count,
    table_a4_training_flops_per_token,
)
from workflow.model.gpt import make_model_spec
from workflow.resolve import corpus_tokenizer, results_root, study_train

MIN_ITERATIONS = 10  # fewer optimizer steps than this is not a training run


def budget_tag(budget: float) -> str:
    """`c3e12` for 3e12, `c5.76e23` for 5.76e23: short, unique, valid in a run name."""
    mant, exp = f"{float(budget):.2e}".split("e")
    return f"c{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def _model_spec(iso: dict, shape: dict, vocab_size: int):
    return make_model_spec(iso["arch"], shape, vocab_size, iso.get("overrides"))


# How N is counted (`isoflop.params_counting`): `one_embedding` is Chinchilla's (one vocabulary
# matrix, as a model with tied embeddings has; an untied output matrix is left out), `all` counts
# every parameter Megatron builds. With a 2,048 vocabulary and hidden 64 the difference is 131k
# of ~300k parameters, and on the paper-scale sweep it shifts approach 2's a by -0.03 to -0.04.
PARAMS_COUNTINGS = ("one_embedding", "all")
# How FLOPs per token are counted (`isoflop.flops_per_token`): `chinchilla` is appendix F in full,
# `chinchilla_a4` appendix F without embedding and final-logit terms (Table A4's ratios), `6n` 6 N.
FLOP_COUNTINGS = ("chinchilla", "chinchilla_a4", "6n")


def counts(spec) -> dict:
    """Parameters (every one, Chinchilla's one-embedding count, non-embedding) and training FLOPs
    per token under each counting."""
    shape = Shape.of(spec)
    kw = dict(
        tied_embeddings=spec.tied_embeddings,
        biases=spec.bias,
        learned_positions=spec.position_embedding == "learned",
        embedding_norm=spec.embedding_layernorm,
    )
    total = param_count(shape, **kw)
    return {
        "params": total,
        "params_one_embedding": total - (0 if spec.tied_embeddings else spec.vocab_size * spec.hidden),
        "params_non_embedding": param_count(shape, include_embeddings=False, **kw),
        "flops_per_token_chinchilla": chinchilla_training_flops_per_token(shape),
        "flops_per_token_chinchilla_a4": table_a4_training_flops_per_token(shape),
        "flops_per_token_6n": 6.0 * total,
    }


def params_key(iso: dict) -> str:
    """The `counts` key N is read from under the study's `params_counting`."""
    return "params" if iso["params_counting"] == "all" else "params_one_embedding"


def fit_params(summary: dict, counting: str) -> int:
    """N of a trained run (its summary.json) as the study counts it: Megatron's count of every
    parameter, less the untied output matrix under `one_embedding`."""
    m = summary["model"]
    untied = 0 if m.get("tied_embeddings") else int(m["vocab_size"]) * int(m["hidden"])
    return int(summary["parameters"]) - (untied if counting == "one_embedding" else 0)


def study_iso(config: dict, study: str) -> dict:
    """The study's isoflop section with the selected scale's architecture `overrides` over its own
    (mini ties its embeddings; the other scales keep the study's)."""
    iso = config["studies"][study]["isoflop"]
    scale_overrides = iso.get(config["scale"], {}).get("overrides")
    return {**iso, "overrides": {**iso["overrides"], **scale_overrides}} if scale_overrides else iso


def warmup(config: dict, study: str, n: float, tokens: float) -> dict:
    """A run's train override capping its warmup at `warmup_tokens_per_param` x N tokens (Porian et
    al.: a warmup longer than ~N tokens hurts small models); {} when the scale sets no cap or the
    scale's own warmup_fraction is already shorter."""
    cap = config["studies"][study]["isoflop"][config["scale"]].get("warmup_tokens_per_param")
    if not cap:
        return {}
    fraction = study_train(config, study)["warmup_fraction"]
    capped = min(float(fraction), cap * n / tokens)
    return {"warmup_fraction": capped} if capped < fraction else {}


def study_corpus(config: dict, study: str) -> str | None:
    """The corpus the sweep trains on at this scale (`isoflop.<s>.corpus`), None for the scale's."""
    return config["studies"][study]["isoflop"][config["scale"]].get("corpus")


def study_vocab(config: dict, study: str) -> int:
    corpus = study_corpus(config, study)
    if corpus and corpus not in config["corpora"]:
        raise ScaleDAGError(
            f"config: studies.{study}.isoflop.{config['scale']}.corpus: {corpus!r} is not a corpus; "
            f"expected one of {sorted(config['corpora'])}"
        )
    return int(corpus_tokenizer(config, corpus)["vocab_size"])


def _json_memo(fn):
    """Memoise a pure function of plain (JSON) data on its arguments' JSON, handing each call its own
    copy of the answer (a JSON round trip), so a caller may change what it gets. The DAG's input
    functions ask for the same sweep hundreds of times (the paper dry run: 13.6 -> 9.0 s of CPU);
    writing the paper config's JSON takes 0.2 ms, building its sweep 12 ms.

    `fn.shared(*args)` returns the one parsed answer without a copy, for callers that only read it
    and need one entry (a run's spec per job): copying a whole 800-run sweep per job made the dry
    run quadratic in the number of runs."""

    @functools.lru_cache(maxsize=32)
    def cached(key: str) -> str:
        return json.dumps(fn(*json.loads(key)))

    @functools.lru_cache(maxsize=32)
    def parsed(key: str):
        return json.loads(cached(key))

    @functools.wraps(fn)
    def wrapper(*args):
        return json.loads(cached(json.dumps(args, sort_keys=True, default=str)))

    wrapper.shared = lambda *args: parsed(json.dumps(args, sort_keys=True, default=str))
    return wrapper


def shape_rule(iso: dict, scale: str) -> dict:
    """The aspect-ratio rule at this scale: defaults < study's shape_rule < the scale's own."""
    return {**iso["shape_rule"], **iso.get(scale, {}).get("shape_rule", {})}  # the study's keys, then the scale's


@_json_memo
def candidate_shapes(
    iso: dict, rule: dict, vocab_size: int, seq_length: int, max_params: float, tp: int = 1
) -> list[dict]:
    """Every shape the aspect-ratio rule allows (heads divisible by the tensor-parallel size `tp`),
    up to a little past `max_params`; "params" is N as the study counts it. Memoised (`_json_memo`):
    the paper DAG asks for the same ~740 shapes' counts 212 times."""
    lo, hi = rule["aspect_ratio"]
    step = math.lcm(int(rule["hidden_multiple"]), int(rule["head_size"]) * int(tp))
    out = []
    d = step
    while True:
        layers = range(max(1, math.ceil(d / hi)), math.floor(d / lo) + 1)
        smallest = None
        for L in layers:
            shape = {"layers": L, "hidden": d, "heads": d // int(rule["head_size"]), "seq_length": seq_length}
            n = counts(_model_spec(iso, shape, vocab_size))[params_key(iso)]
            smallest = n if smallest is None else min(smallest, n)
            out.append({"shape": shape, "params": n, "aspect": d / L})
        if smallest is not None and smallest > 2 * max_params:
            return out
        d += step
        if d > 1 << 17:
            raise ScaleDAGError(f"shape_rule: no shape reaches {max_params:.3g} parameters below hidden {1 << 17}")


def shape_for_params(target: float, candidates: list[dict], rule: dict) -> dict:
    """The candidate closest to `target` parameters in log space (ties: aspect nearest the middle)."""
    return ShapeIndex(candidates, rule).pick(target)


class ShapeIndex:
    """`shape_for_params` for many targets over one candidate list: candidates sorted by log
    parameters, so a pick bisects to the nearest and scores only the few within the rounding of
    the best distance. A sweep maps hundreds of targets over ~2,000 candidates (the 10x paper sweep:
    2M key evaluations, 4.6 s of a profiled dry run); the answer is the same as the full scan's."""

    def __init__(self, candidates: list[dict], rule: dict):
        lo, hi = rule["aspect_ratio"]
        self._mid = math.log(math.sqrt(lo * hi))
        self._by_size = sorted(candidates, key=lambda c: c["params"])
        self._logs = [math.log(c["params"]) for c in self._by_size]

    def _key(self, c: dict, target: float) -> tuple[float, float]:
        return (round(abs(math.log(c["params"] / target)), 9), abs(math.log(c["aspect"]) - self._mid))

    def pick(self, target: float) -> dict:
        t, logs = math.log(target), self._logs
        i = bisect.bisect_left(logs, t)
        best = min(abs(logs[j] - t) for j in (i - 1, i) if 0 <= j < len(logs))
        # every candidate whose rounded distance can equal the best one's lies within 1e-8 of it
        lo = bisect.bisect_left(logs, t - best - 1e-8)
        hi = bisect.bisect_right(logs, t + best + 1e-8)
        return min(self._by_size[lo:hi], key=lambda c: self._key(c, target))


def _sizes_per_budget(sizes, budgets: list[float], where: str) -> list[list[float]]:
    if isinstance(sizes, dict):
        import numpy as np  # numpy: only {count: ...} grids (small, paper) need geomspace; kept for its exact floats

        k = sizes["count"]
        if "tokens_per_param" in sizes:
            r_lo, r_hi = sizes["tokens_per_param"]
            if not 0 < r_lo < r_hi:
                raise ScaleDAGError(f"{where}.sizes.tokens_per_param: expected 0 < low < high, got {[r_lo, r_hi]}")
            return [list(np.geomspace(math.sqrt(c / (6 * r_hi)), math.sqrt(c / (6 * r_lo)), k)) for c in budgets]
        if not (0 < sizes["min"] < sizes["max"]):
            raise ScaleDAGError(f"{where}.sizes: expected 0 < min < max, got min={sizes['min']}, max={sizes['max']}")
        return [list(np.geomspace(sizes["min"], sizes["max"], k))] * len(budgets)
    if sizes and all(isinstance(s, list) for s in sizes):
        if len(sizes) != len(budgets):
            raise ScaleDAGError(
                f"{where}.sizes: one list per budget expected ({len(budgets)} budgets), got {len(sizes)} lists"
            )
        return [list(s) for s in sizes]
    if any(isinstance(s, list) for s in sizes):
        raise ScaleDAGError(f"{where}.sizes: either a list of parameter counts or a list of lists, not a mix")
    return [list(sizes)] * len(budgets)


def widen_grid(grid: list[float], k: int, where: str) -> list[float]:
    """`k` more sizes beyond each end of a budget's grid, at the grid's own log spacing (its
    geometric mean ratio of neighbours): the knob for a table that reports the lowest loss at the
    window's edge, so the next run brackets the minimum."""
    if not k:
        return grid
    grid = sorted(float(n) for n in grid)
    if len(grid) < 2:
        raise ScaleDAGError(f"{where}.widen: needs at least 2 sizes per budget to know the spacing")
    step = (grid[-1] / grid[0]) ** (1 / (len(grid) - 1))
    return [grid[0] / step**i for i in range(k, 0, -1)] + grid + [grid[-1] * step**i for i in range(1, k + 1)]


def isoflop_plan(config: dict, study: str) -> list[dict]:
    """One entry per (budget, size): budget, target params, shape, counts and token budget.

    Cached on the config sections it reads: Snakemake asks for a study's runs once per job."""
    st = config["studies"][study]
    scale = config["scale"]
    key = json.dumps([study, scale, st.get("isoflop"), config["scales"].get(scale)], sort_keys=True, default=str)
    return copy.deepcopy(_plan(key, config, study))


_PLANS: dict[str, list[dict]] = {}


def _plan(key: str, config: dict, study: str) -> list[dict]:
    if key not in _PLANS:
        _PLANS[key] = _build_plan(config, study)
    return _PLANS[key]


def _build_plan(config: dict, study: str) -> list[dict]:
    st = config["studies"][study]
    iso = st.get("isoflop")
    where = f"config: studies.{study}.isoflop"
    if not iso:
        raise ScaleDAGError(f"config: studies.{study}: kind 'isoflop' needs an 'isoflop' section")
    scale = config["scale"]
    if scale not in iso:
        scales = [k for k in config["scales"] if k in iso]
        raise ScaleDAGError(f"{where}: no entry for scale {scale!r}; expected one of {scales}")
    iso = study_iso(config, study)
    per = iso[scale]
    where = f"{where}.{scale}"
    sc = config["scales"][scale]
    rule = shape_rule(iso, scale)
    if rule["aspect_ratio"][0] > rule["aspect_ratio"][1]:
        raise ScaleDAGError(
            f"config: studies.{study}.isoflop.shape_rule.aspect_ratio: expected [low, high], got {rule['aspect_ratio']}"
        )
    budgets = [float(c) for c in per["budgets"]]
    tags = [budget_tag(c) for c in budgets]
    if len(set(tags)) != len(tags):
        raise ScaleDAGError(
            f"{where}.budgets: budgets must differ in their first 3 significant digits, got {per['budgets']}"
        )
    grids = [widen_grid(g, int(per["widen"]), where) for g in _sizes_per_budget(per["sizes"], budgets, where)]
    vocab, seq = study_vocab(config, study), per["seq_length"]
    tp = sc["parallel"]["tp"]
    tokens_per_iter = sc["train"]["global_batch_size"] * seq
    candidates = candidate_shapes(iso, rule, vocab, seq, max(max(g) for g in grids), tp)
    index = ShapeIndex(candidates, rule)
    counting = iso["flops_per_token"]
    plan = []
    for budget, tag, grid in zip(budgets, tags, grids):
        seen = {}
        for target in grid:
            pick = index.pick(float(target))
            shape = pick["shape"]
            name = f"l{shape['layers']}-h{shape['hidden']}"
            if name in seen:
                raise ScaleDAGError(
                    f"{where}: sizes {seen[name]:.3g} and {target:.3g} both map to shape {name} at budget {budget:.3g}; "
                    "space the sizes further apart or widen shape_rule.aspect_ratio"
                )
            seen[name] = float(target)
            c = counts(_model_spec(iso, shape, vocab))
            tokens = budget / c[f"flops_per_token_{counting}"]
            iters = math.ceil(tokens / tokens_per_iter)
            if iters < MIN_ITERATIONS:
                raise ScaleDAGError(
                    f"{where}: budget {budget:.3g} gives {name} only {iters} steps of {tokens_per_iter} tokens "
                    f"(need >= {MIN_ITERATIONS}); raise the budget or lower the sizes"
                )
            plan.append(
                {
                    "run": f"{tag}_{name}",
                    "variant": tag,
                    "shape_name": name,
                    "budget": budget,
                    "target_params": float(target),
                    "shape": shape,
                    "tokens": tokens,
                    "iterations": iters,
                    "vocab_size": vocab,
                    **c,
                }
            )
    return plan


def approach1_plan(config: dict, study: str) -> list[dict]:
    """Chinchilla's approach-1 runs: each of `approach1_runs.sizes` trained at every one of
    `approach1_runs.tokens_per_param` (D = r N), each with its cosine as long as its own D. The
    paper used 4 horizons varying by 16x per size; the envelope of these curves is approach 1.
    Without them approach 1 reads the IsoFLOP runs' own curves, whose intermediate points come
    from a cosine not yet decayed, which biases a low (by 0.014-0.032 on noise-free curves)."""
    iso = study_iso(config, study)
    scale = config["scale"]
    a1 = iso[scale].get("approach1_runs")
    if not a1:
        return []
    per, sc = iso[scale], config["scales"][scale]
    rule, vocab, seq = shape_rule(iso, scale), study_vocab(config, study), per["seq_length"]
    tokens_per_iter = sc["train"]["global_batch_size"] * seq
    candidates = candidate_shapes(iso, rule, vocab, seq, max(a1["sizes"]), sc["parallel"]["tp"])
    index = ShapeIndex(candidates, rule)
    plan = []
    for target in a1["sizes"]:
        shape = index.pick(float(target))["shape"]
        name = f"l{shape['layers']}-h{shape['hidden']}"
        c = counts(_model_spec(iso, shape, vocab))
        for r in a1["tokens_per_param"]:
            tokens = float(r) * c[params_key(iso)]
            plan.append(
                {
                    "run": f"a1r{float(r):g}_{name}".replace("+", ""),
                    "variant": f"a1r{float(r):g}",
                    "shape_name": name,
                    "shape": shape,
                    "tokens": tokens,
                    "iterations": math.ceil(tokens / tokens_per_iter),
                    "target_params": float(target),
                    **c,
                }
            )
    names = [p["run"] for p in plan]
    if len(set(names)) != len(names):
        raise ScaleDAGError(
            f"config: studies.{study}.isoflop.{scale}.approach1_runs: two sizes map to one shape "
            f"({sorted(n for n in names if names.count(n) > 1)[0]}); space them further apart"
        )
    return plan


def noise_plan(config: dict, study: str) -> list[dict]:
    """The sweep's middle run (middle budget, middle size) again under each of `noise_seeds`: the
    run-to-run loss noise (init and data order) that every fit's precision hinges on. Named
    `seed<k>_<shape>`, each recording the sweep run it replicates (`base`); the fits never read
    them (analysis/chinchilla/noise.py does)."""
    seeds = config["studies"][study]["isoflop"][config["scale"]].get("noise_seeds") or []
    if not seeds:
        return []
    plan = isoflop_plan(config, study)
    budgets = sorted({p["budget"] for p in plan})
    middle = budgets[(len(budgets) - 1) // 2]  # the lower middle of an even count: the cheaper pilot
    at = sorted((p for p in plan if p["budget"] == middle), key=lambda p: p["target_params"])
    base = at[(len(at) - 1) // 2]
    return [
        {
            **base,
            "run": f"seed{int(k)}_{base['shape_name']}",
            "variant": f"seed{int(k)}",
            "seed": int(k),
            "base": base["run"],
        }
        for k in seeds
    ]


def noise_runs(config: dict, study: str) -> dict:
    """{"base": the replicated sweep run, "runs": its seed replicates} (both empty without noise_seeds)."""
    plan = noise_plan(config, study)
    return {"base": plan[0]["base"] if plan else None, "runs": [p["run"] for p in plan]}


@_json_memo
def isoflop_runs(config: dict, study: str) -> dict[str, dict]:
    """The `study_runs` view of the plan: run name -> {variant, arch, overrides, shape_name, shape, train}.
    Memoised (`_json_memo`): Snakemake's input functions ask for it ~200 times per paper DAG."""
    plan = isoflop_plan(config, study) + approach1_plan(config, study) + noise_plan(config, study)
    iso = study_iso(config, study)
    corpus = {"corpus": study_corpus(config, study)} if study_corpus(config, study) else {}
    evals = int(iso["evals_per_run"])
    runs = {}
    for p in plan:
        train = {
            "tokens": p["tokens"],
            "eval_interval": math.ceil(p["iterations"] / evals),  # <= evals points
            **warmup(config, study, p[params_key(iso)], p["tokens"]),
            **({"seed": p["seed"]} if "seed" in p else {}),
        }
        runs[p["run"]] = {
            "variant": p["variant"],
            "arch": iso["arch"],
            "overrides": dict(iso["overrides"]),
            "shape_name": p["shape_name"],
            "shape": dict(p["shape"]),
            "train": train,
            "budget": p.get("budget"),
            **corpus,
        }
    return runs


def analysis_settings(config: dict, study: str) -> dict:
    """What the study's analysis rules need at this scale: the budget of each run, the FLOP
    counting, bootstrap replicates, the allocation table's budgets and the target budget."""
    iso = config["studies"][study]["isoflop"]
    per = iso[config["scale"]]
    return {
        "budgets": {p["run"]: p["budget"] for p in isoflop_plan(config, study)},
        "flops_per_token": iso["flops_per_token"],
        "params_counting": iso["params_counting"],
        "approach1_runs": [p["run"] for p in approach1_plan(config, study)],
        "bootstrap": int(per.get("bootstrap", iso["bootstrap"])),  # the scale's, else the study's
        "table_budgets": [float(c) for c in per.get("table_budgets") or per["budgets"]],
        "target_budget": float(per["target_budget"]),
    }


def fit_conventions(settings: dict) -> dict:
    """What a fit's tables record about how they were counted (analysis_settings -> columns)."""
    return {
        "params_counting": settings["params_counting"],
        "flops_per_token": settings["flops_per_token"],
        "approach1_curves": "horizon runs" if settings["approach1_runs"] else "IsoFLOP runs' own curves",
    }


# -- closing the loop: train what the fit predicts ----------------------------------------------------

LOOP_PLAN = "closed_loop/plan.json"  # under results/<scale>/<study>/, written by rule closed_loop_plan


def closed_loop_settings(config: dict, study: str) -> dict:
    """What `analysis.chinchilla.closed_loop plan` needs to turn a fit into runs, without the config: the
    target budgets, the over/under-size factor, the sweep's shape rule and token accounting, and
    the GPU-hour budgets to size a model for with the device throughput that converts them."""
    iso = study_iso(config, study)
    scale = config["scale"]
    per = iso[scale]
    sc = config["scales"][scale]
    loop = per.get("closed_loop", {})
    return {
        "study": study,
        "budgets": [float(c) for c in loop.get("budgets", [])],
        "size_factor": float(loop["size_factor"]),
        "iso": {
            "arch": iso["arch"],
            "overrides": dict(iso["overrides"]),
            "params_counting": iso["params_counting"],
        },
        "rule": shape_rule(iso, scale),
        "vocab_size": study_vocab(config, study),
        "seq_length": per["seq_length"],
        "tp": sc["parallel"]["tp"],
        "tokens_per_iter": sc["train"]["global_batch_size"] * per["seq_length"],
        "flops_per_token": iso["flops_per_token"],
        "evals_per_run": int(iso["evals_per_run"]),
        "size_choice": per.get("size_choice"),
        "device_peaks": config.get("device_peaks", {}),
        # a smoke run's fit is of two-step models and predicts nothing: its targets are held to the
        # sweep's own sizes, so the loop's jobs still run (workflow/smoke.py)
        "smoke_params_range": _sweep_range(config, study) if config.get("smoke") else None,
    }


def _sweep_range(config: dict, study: str) -> list[float]:
    sizes = [float(e["target_params"]) for e in isoflop_plan(config, study)]
    return [min(sizes), max(sizes)]


def loop_run(settings: dict, budget: float, target_params: float, candidates: list[dict]) -> dict:
    """The run that trains `target_params` (mapped to a shape by the sweep's rule) on budget C:
    D = C / FLOPs per token, the schedule as long as D, like every sweep run."""
    pick = shape_for_params(float(target_params), candidates, settings["rule"])
    shape = pick["shape"]
    c = counts(_model_spec(settings["iso"], shape, settings["vocab_size"]))
    tokens = budget / c[f"flops_per_token_{settings['flops_per_token']}"]
    iters = math.ceil(tokens / settings["tokens_per_iter"])
    name = f"l{shape['layers']}-h{shape['hidden']}"
    return {
        "run": f"loop{budget_tag(budget)}_{name}",
        "budget": budget,
        "target_params": float(target_params),
        "shape_name": name,
        "shape": shape,
        "tokens": tokens,
        "iterations": iters,
        **c,
        "n": c[params_key(settings["iso"])],
    }


def loop_candidates(settings: dict, max_params: float) -> list[dict]:
    return candidate_shapes(
        settings["iso"], settings["rule"], settings["vocab_size"], settings["seq_length"], max_params, settings["tp"]
    )


def closed_loop_runs(config: dict, study: str) -> dict[str, dict]:
    """The planned closed-loop runs in `study_runs` form, once rule closed_loop_plan has written
    them; {} before. Kept apart from the sweep's runs so nothing fitted depends on them."""
    path = f"{results_root(config)}/{study}/{LOOP_PLAN}"
    try:
        with open(path) as fh:
            plan = json.load(fh)
    except FileNotFoundError:
        return {}
    iso = study_iso(config, study)
    evals = int(iso["evals_per_run"])
    corpus = {"corpus": study_corpus(config, study)} if study_corpus(config, study) else {}
    return {
        r["run"]: {
            "variant": r["run"].split("_")[0],
            "arch": iso["arch"],
            "overrides": dict(iso["overrides"]),
            "shape_name": r["shape_name"],
            "shape": dict(r["shape"]),
            "budget": r["budget"],
            **corpus,
            "train": {
                "tokens": r["tokens"],
                "eval_interval": math.ceil(r["iterations"] / evals),
                **warmup(config, study, r["n"], r["tokens"]),
            },
        }
        for r in plan["runs"]
    }
