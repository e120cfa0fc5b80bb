"""Tests for workflow.studies.isoflop: IsoFLOP runs derived from budgets and sizes, and their DAG."""

from __future__ import annotations

import copy
import math
import re

import pytest

from conftest import REPO, job_counts, snakemake
from workflow.config import corpus_tokenizer, load_config, pretrain_spec, study_runs, validate_config
from workflow.errors import ScaleDAGError
from workflow.model.flops import Shape, chinchilla_training_flops_per_token
from workflow.model.gpt import make_model_spec
from workflow.studies.isoflop import (
    ShapeIndex,
    analysis_settings,
    budget_tag,
    candidate_shapes,
    counts,
    isoflop_plan,
    shape_rule,
    study_iso,
)

RUN_WILDCARD = re.compile(r"^[A-Za-z0-9.-]+_[A-Za-z0-9.-]+$")  # rules/common.smk's `run` constraint
CHINCHILLA_BUDGETS = [6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21]


@pytest.fixture(scope="module")
def base_config():
    return load_config(REPO / "config.yaml")


def with_scale(config: dict, scale: str, **iso_scale) -> dict:
    cfg = copy.deepcopy(config)
    cfg["scale"] = scale
    cfg["studies"]["chinchilla"]["isoflop"][scale].update(iso_scale)
    return cfg


def word_level_tiny(config: dict, **iso_scale) -> dict:
    """Tiny with the scale's own 2,048-token vocabulary, untied, and d a multiple of 64: the shape
    arithmetic below is worked out there (tiny's sweep itself trains tied byte-level models)."""
    cfg = with_scale(config, "tiny", **iso_scale)
    per = cfg["studies"]["chinchilla"]["isoflop"]["tiny"]
    per.pop("corpus"), per.pop("overrides")
    per["shape_rule"] = {"aspect_ratio": [16, 128], "head_size": 32}
    return cfg


@pytest.mark.parametrize("scale", ["tiny", "small", "paper"])
def test_runs_have_valid_shapes_and_token_budgets(base_config, scale):
    cfg = with_scale(base_config, scale)
    iso = cfg["studies"]["chinchilla"]["isoflop"]
    per = iso[scale]
    rule = shape_rule(study_iso(cfg, "chinchilla"), scale)
    tp = cfg["scales"][scale]["parallel"]["tp"]
    runs = study_runs(cfg, "chinchilla")
    gbs = cfg["scales"][scale]["train"]["global_batch_size"]
    for name, run in runs.items():
        assert RUN_WILDCARD.match(name), name
        assert name == f"{run['variant']}_{run['shape_name']}"
        s = run["shape"]
        assert s["hidden"] % rule["hidden_multiple"] == 0 and s["hidden"] % s["heads"] == 0 and s["heads"] % tp == 0, (
            name
        )
        assert s["hidden"] // s["heads"] == rule["head_size"]
        lo, hi = rule["aspect_ratio"]
        assert lo <= s["hidden"] / s["layers"] <= hi, name
        assert s["seq_length"] == per["seq_length"]
        # D = C / (Chinchilla training FLOPs per token of exactly the model that will be built),
        # with the vocabulary of the corpus the sweep trains on (paper: Chinchilla's 32k).
        vocab = corpus_tokenizer(cfg, run.get("corpus"))["vocab_size"]
        spec = make_model_spec(iso["arch"], s, vocab)
        assert pretrain_spec(cfg, "chinchilla", name)["vocab_size"] == vocab
        fpt = chinchilla_training_flops_per_token(
            Shape(spec.layers, spec.hidden, spec.heads, spec.ffn_hidden, spec.vocab_size, spec.seq_length, glu=spec.glu)
        )
        if run["variant"].startswith("a1r"):  # approach 1's horizon runs: D = r N, not C / FLOPs
            r = float(run["variant"][3:])
            assert run["train"]["tokens"] == pytest.approx(r * counts(spec)["params_one_embedding"], rel=1e-12)
        else:
            assert run["train"]["tokens"] == pytest.approx(run["budget"] / fpt, rel=1e-12)
        assert run["train"]["tokens"] >= 10 * gbs * s["seq_length"]
        # The run's spec trains that shape for that many tokens (the cosine decays over them).
        pspec = pretrain_spec(cfg, "chinchilla", name)
        assert pspec["train"]["tokens"] == run["train"]["tokens"]
        assert {k: pspec["shape"][k] for k in s} == s
        assert pspec["run_id"] == f"{scale}.chinchilla.{name}"


def test_counts_per_scale(base_config):
    tiny = isoflop_plan(with_scale(base_config, "tiny"), "chinchilla")
    assert len({p["budget"] for p in tiny}) >= 3 and len(tiny) >= 12
    assert all(sum(q["budget"] == p["budget"] for q in tiny) >= 4 for p in tiny)
    paper = isoflop_plan(with_scale(base_config, "paper"), "chinchilla")
    assert sorted({p["budget"] for p in paper}) == CHINCHILLA_BUDGETS
    assert len(paper) == 81 and len({p["run"] for p in paper}) == 81
    # A tokens_per_param window follows the budget: sizes grow with C.
    mean_n = [sum(p["params"] for p in paper if p["budget"] == c) / 9 for c in CHINCHILLA_BUDGETS]
    assert mean_n == sorted(mean_n) and mean_n[-1] > 10 * mean_n[0]


def counting_all(cfg: dict) -> dict:
    """The sizes below were chosen as counts of every parameter."""
    cfg["studies"]["chinchilla"]["isoflop"]["params_counting"] = "all"
    return cfg


def test_sizes_map_to_the_nearest_shape(base_config):
    cfg = counting_all(word_level_tiny(base_config, budgets=[1e12], sizes=[3.2e5, 7.1e5]))
    plan = isoflop_plan(cfg, "chinchilla")
    assert [p["shape_name"] for p in plan] == ["l1-h64", "l1-h128"]
    for p in plan:
        assert abs(math.log(p["params"] / p["target_params"])) < 0.1
        assert p["params_non_embedding"] < p["params"]


def test_shape_index_picks_what_a_full_scan_picks(base_config):
    """ShapeIndex bisects instead of scoring every candidate; it must choose exactly the candidate
    the full scan's key does, also at exact distance ties (a target at the geometric mean of two
    neighbours) where the aspect ratio decides."""
    cfg = with_scale(base_config, "paper")
    iso = study_iso(cfg, "chinchilla")
    rule = shape_rule(iso, "paper")
    cands = candidate_shapes(iso, rule, 32000, 2048, 3e9, 2)
    mid = math.log(math.sqrt(rule["aspect_ratio"][0] * rule["aspect_ratio"][1]))

    def scan(target):
        return min(
            cands, key=lambda c: (round(abs(math.log(c["params"] / target)), 9), abs(math.log(c["aspect"]) - mid))
        )

    index = ShapeIndex(cands, rule)
    sizes = sorted(c["params"] for c in cands)
    targets = [10 ** (6 + 0.013 * i) for i in range(300)]  # 1e6 .. 8e9, past both ends too
    targets += [math.sqrt(a * b) for a, b in zip(sizes, sizes[1:])][::25]  # the ties
    targets += sizes[::40]  # exactly on a candidate
    for t in targets:
        assert index.pick(t) == scan(t), t


def test_size_forms_grid_per_budget_and_count_range(base_config):
    per_budget = isoflop_plan(
        counting_all(word_level_tiny(base_config, budgets=[1e12, 2e12], sizes=[[3e5, 7e5], [7e5, 1.3e6, 2.5e6]])),
        "chinchilla",
    )
    assert [p["run"] for p in per_budget] == [
        "c1e12_l1-h64",
        "c1e12_l1-h128",
        "c2e12_l1-h128",
        "c2e12_l4-h128",
        "c2e12_l4-h192",
    ]
    ranged = isoflop_plan(
        counting_all(word_level_tiny(base_config, budgets=[2e12], sizes={"count": 3, "min": 3e5, "max": 2.5e6})),
        "chinchilla",
    )
    assert [p["shape_name"] for p in ranged] == ["l1-h64", "l2-h128", "l4-h192"]  # 3e5, 8.7e5, 2.5e6


def test_6n_counting_and_eval_interval(base_config):
    cfg = with_scale(base_config, "tiny", budgets=[1e12], sizes=[3e5])
    cfg["studies"]["chinchilla"]["isoflop"]["flops_per_token"] = "6n"
    # tiny's noise_seeds add seed replicates of the middle run; the IsoFLOP run is the c1e12 one
    (run,) = (r for name, r in study_runs(cfg, "chinchilla").items() if name.startswith("c1e12_"))
    (plan,) = isoflop_plan(cfg, "chinchilla")
    assert run["train"]["tokens"] == pytest.approx(1e12 / (6 * plan["params"]))
    evals = cfg["studies"]["chinchilla"]["isoflop"]["evals_per_run"]
    assert run["train"]["eval_interval"] == math.ceil(plan["iterations"] / evals)


def test_budget_tags():
    assert budget_tag(3e12) == "c3e12"
    assert budget_tag(5.76e23) == "c5.76e23"
    assert budget_tag(2.5e12) == "c2.5e12"
    assert float(budget_tag(6e18)[1:]) == 6e18


def test_analysis_settings(base_config):
    s = analysis_settings(with_scale(base_config, "paper"), "chinchilla")
    assert len(s["budgets"]) == 81 and s["target_budget"] == 5.76e23
    assert s["flops_per_token"] == "chinchilla" and s["bootstrap"] >= 2


@pytest.mark.parametrize(
    "change, fragment",
    [
        (dict(sizes=[3e5, 3.1e5]), "both map to shape l1-h64"),
        (dict(sizes=[[3e5], [3e5], [3e5]]), "one list per budget expected (1 budgets), got 3"),
        (dict(budgets=[1e9]), "need >= 10"),
        (dict(budgets=[1e12, 1.0001e12]), "first 3 significant digits"),
        (dict(sizes={"count": 3, "min": 2e6, "max": 1e6}), "0 < min < max"),
        (dict(sizes=[3e5, [7e5]]), "not a mix"),
    ],
)
def test_bad_sweeps_fail_at_load_with_one_line(base_config, change, fragment):
    cfg = counting_all(word_level_tiny(base_config, budgets=[1e12], sizes=[3e5, 7e5]))
    cfg["studies"]["chinchilla"]["isoflop"]["tiny"].update(change)
    with pytest.raises(ScaleDAGError) as exc:
        validate_config(cfg)
    msg = str(exc.value)
    assert fragment in msg and "studies.chinchilla.isoflop" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda iso: iso.update(budgetz=[1]), "unknown key 'budgetz'"),
        (lambda iso: iso["tiny"].update(budgets=[-1.0]), "budgets.0"),
        (lambda iso: iso.update(shape_rule={"aspect_ratio": [64]}), "aspect_ratio"),
        (lambda iso: iso["tiny"].pop("target_budget"), "target_budget"),
    ],
)
def test_schema_rejects_bad_isoflop_keys(base_config, edit, fragment):
    cfg = copy.deepcopy(base_config)
    edit(cfg["studies"]["chinchilla"]["isoflop"])
    with pytest.raises(ScaleDAGError) as exc:
        validate_config(cfg)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_param_count_matches_the_megatron_model(base_config, megatron_dist):
    """The N the sweep plans for is the N Megatron builds (and train.py reports)."""

    from workflow.model.gpt import build_gpt_model

    cfg = with_scale(base_config, "tiny")
    iso = cfg["studies"]["chinchilla"]["isoflop"]
    for arch in ("llama", "gpt-neox"):
        for p in isoflop_plan(cfg, "chinchilla")[:2]:
            spec = make_model_spec(
                arch, p["shape"], cfg["scales"]["tiny"]["tokenizer"]["vocab_size"], iso.get("overrides")
            )
            model = build_gpt_model(spec)
            assert sum(t.numel() for t in model.parameters()) == counts(spec)["params"], (arch, p["run"])


# -- the DAG: one pretrain job per (budget, size) --------------------------------------------------


def _chinchilla_targets(scale: str) -> list[str]:
    root = f"results/{scale}/chinchilla"
    return [
        f"{root}/figures/isoflop_curves.png",
        f"{root}/figures/parametric_contour.png",
        f"{root}/tables/target_prediction.csv",
        f"{root}/tables/compute_optimal_allocation.csv",
    ]


# paper: 81 IsoFLOP runs + approach 1's 6 sizes x 4 cosine horizons
@pytest.mark.parametrize("scale, runs", [("tiny", 15), ("paper", 81 + 24)])
def test_dag_lists_one_pretrain_per_budget_and_size(tmp_path, scale, runs):
    proc = snakemake(
        "-n",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "--configfile",
        str(REPO / "config.yaml"),
        "--config",
        f"scale={scale}",
        "--",
        *_chinchilla_targets(scale),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts_ = job_counts(proc.stdout)
    assert counts_["pretrain"] == runs
    for rule in ("isoflop_points", "isoflop_fit", "isoflop_curves_figure", "parametric_contour_figure"):
        assert counts_[rule] == 1, rule
    assert "evaluate_loss" not in counts_  # the analysis reads the runs' own validation curves


def test_default_targets_include_the_study(tmp_path):
    proc = snakemake(
        "-n",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "--configfile",
        str(REPO / "config.yaml"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts_ = job_counts(proc.stdout)
    assert counts_["isoflop_fit"] == 1 and counts_["isoflop_curves_figure"] == 1
    assert "results/tiny/chinchilla/figures/loss_curves.png" not in proc.stdout


def test_chinchilla_counts_one_vocabulary_matrix(base_config):
    """Chinchilla's N has one vocabulary matrix: an untied output matrix (2048 x 64 = 131k of the
    1-layer model's 316k) is left out, so the same target picks a larger shape than under `all`."""
    from workflow.studies.isoflop import fit_params

    cfg = word_level_tiny(base_config, budgets=[1e12], sizes=[3.2e5])
    (one,) = isoflop_plan(cfg, "chinchilla")
    assert one["params_one_embedding"] == one["params"] - 2048 * one["shape"]["hidden"]
    assert abs(math.log(one["params_one_embedding"] / 3.2e5)) < abs(math.log(one["params"] / 3.2e5))
    (every,) = isoflop_plan(counting_all(word_level_tiny(base_config, budgets=[1e12], sizes=[3.2e5])), "chinchilla")
    assert one["shape_name"] != every["shape_name"] == "l1-h64"
    summary = {"parameters": 315584, "model": {"vocab_size": 2048, "hidden": 64, "tied_embeddings": False}}
    assert fit_params(summary, "one_embedding") == 184512 and fit_params(summary, "all") == 315584
    summary["model"]["tied_embeddings"] = True
    assert fit_params(summary, "one_embedding") == 315584


def test_table_a4_counting_leaves_out_embeddings_and_logits(base_config):
    """Table A4's ratios to 6N (0.99-1.10) need appendix F without its embedding and logit terms."""
    from workflow.model.flops import Shape, chinchilla_flops_breakdown, table_a4_training_flops_per_token

    shape = Shape(layers=12, hidden=768, heads=12, ffn_hidden=3072, vocab_size=32000, seq_length=2048)
    t = chinchilla_flops_breakdown(shape)
    full = t["training"] / 2048
    assert table_a4_training_flops_per_token(shape) == pytest.approx(
        full - 3 * (t["embeddings"] + t["final_logits"]) / 2048
    )
    cfg = with_scale(base_config, "tiny", budgets=[1e12], sizes=[3.2e5])
    cfg["studies"]["chinchilla"]["isoflop"]["flops_per_token"] = "chinchilla_a4"
    (run,) = isoflop_plan(cfg, "chinchilla")
    assert run["tokens"] == pytest.approx(1e12 / run["flops_per_token_chinchilla_a4"])


def test_widen_adds_sizes_beyond_each_end_at_the_grids_spacing(base_config):
    from workflow.studies.isoflop import widen_grid

    assert widen_grid([1e5, 4e5], 1, "w") == pytest.approx([2.5e4, 1e5, 4e5, 1.6e6])
    assert widen_grid([1e5, 2e5, 4e5], 0, "w") == [1e5, 2e5, 4e5]
    with pytest.raises(ScaleDAGError, match="widen: needs at least 2 sizes"):
        widen_grid([1e5], 1, "w")
    cfg = counting_all(word_level_tiny(base_config, budgets=[2e12], sizes=[7e5, 1.3e6], widen=1))
    names = [p["shape_name"] for p in isoflop_plan(cfg, "chinchilla")]
    assert len(names) == 4 and names[1:3] == ["l1-h128", "l4-h128"]
