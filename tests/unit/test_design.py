"""A scale meant to measure stops at load when its IsoFLOP design cannot measure the exponent."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO
from workflow.config import validate_config
from workflow.errors import ScaleDAGError
from workflow.studies.design import check_isoflop, prior_optimum
from workflow.studies.isoflop import isoflop_plan


@pytest.fixture
def mini():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    return dict(raw, scale="mini")


def sweep(cfg):
    return cfg["studies"]["chinchilla"]["isoflop"]["mini"]


def test_the_mini_design_brackets_the_prior_optimum_at_every_budget(mini):
    cfg = validate_config(copy.deepcopy(mini))
    plan = isoflop_plan(cfg, "chinchilla")
    budgets = sorted({p["budget"] for p in plan})
    assert len(budgets) >= 4 and budgets[-1] / budgets[0] >= 15
    for c in budgets:
        sizes = sorted(p["params_one_embedding"] for p in plan if p["budget"] == c)
        assert len(sizes) >= 5 and sizes[-1] / sizes[0] >= 16
        assert sizes[1] <= prior_optimum(c) <= sizes[-2]
    # tied embeddings under the byte vocabulary: the vocabulary is a minor part of every N
    assert max(258 * p["shape"]["hidden"] / p["params_one_embedding"] for p in plan) < 0.5


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(budgets=[5e11, 1.25e12, 3.1e12]), r"3 budgets spanning 6.2x cannot measure the exponent"),
        (lambda s: s.update(budgets=[5e11, 8e11, 1.25e12, 2e12]), r"4 budgets spanning 4x"),
        (
            lambda s: s.update(sizes={"count": 4, "tokens_per_param": [1.25, 400]}),
            r"4 sizes spanning .* at budget 5e\+11",
        ),
        (
            lambda s: s.update(sizes={"count": 5, "tokens_per_param": [0.05, 16]}),
            r"IsoFLOP sizes do not bracket the predicted optimum at budget 5e\+11",
        ),
    ],
)
def test_a_design_that_cannot_measure_stops_with_one_line(mini, change, message):
    cfg = copy.deepcopy(mini)
    change(sweep(cfg))
    with pytest.raises(ScaleDAGError, match=message) as exc:
        validate_config(cfg)
    assert "\n" not in str(exc.value) and "studies.chinchilla.isoflop.mini" in str(exc.value)


def test_tiny_is_a_smoke_run_and_is_not_checked():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    validate_config(dict(copy.deepcopy(raw), scale="tiny"))  # 3 budgets 6.7x apart, 5 proxy shapes: allowed there
    raw["scales"]["tiny"]["evidence"] = True
    with pytest.raises(ScaleDAGError, match=r"proxy.tiny: 5 candidate shapes"):
        validate_config(dict(copy.deepcopy(raw), scale="tiny"))
    raw["studies"]["arch_proxy"]["enabled"] = False
    with pytest.raises(ScaleDAGError, match="isoflop.tiny.budgets"):
        validate_config(dict(raw, scale="tiny"))


def test_check_isoflop_names_the_first_broken_rule():
    plan = [
        {"run": f"r{i}", "budget": c, "params_one_embedding": n, "vocab_size": 258, "shape": {"hidden": 8}}
        for i, (c, n) in enumerate((c, n) for c in (2e11, 8e11, 3.2e12, 1.28e13) for n in (1e4, 3e4, 1e5, 3e5, 1e6))
    ]
    with pytest.raises(ScaleDAGError, match="do not bracket the predicted optimum at budget 1.28e\\+13"):
        check_isoflop(plan, "w", "params_one_embedding")  # N* = 3.3e5 at 1.28e13: past the second-largest size
    inside = [p for p in plan if p["budget"] < 1e13] + [dict(p, budget=1.6e12) for p in plan[:5]]
    check_isoflop(inside, "w", "params_one_embedding")  # 2e11..3.2e12 (16x): N* 4.1e4..1.6e5, inside 3e4..3e5


def test_embeddings_that_dominate_n_are_refused():
    plan = [
        {"run": f"r{c:g}-{n:g}", "budget": c, "params_one_embedding": n, "vocab_size": 4096, "shape": {"hidden": 32}}
        for c in (2e13, 8e13, 3.2e14, 1e15)
        for n in (1e5, 3e5, 1e6, 3e6, 1e7)
    ]
    with pytest.raises(ScaleDAGError, match=r"run r2e\+13-100000's embeddings are 131% of its N"):
        check_isoflop(plan, "w", "params_one_embedding")


def test_noise_seeds_replicate_the_middle_run_and_stay_out_of_the_fits(mini):
    from workflow.studies.isoflop import analysis_settings, isoflop_runs, noise_runs

    cfg = validate_config(copy.deepcopy(mini))
    noise = noise_runs(cfg, "chinchilla")
    runs = isoflop_runs(cfg, "chinchilla")
    base = runs[noise["base"]]
    assert base["budget"] == 1.25e12  # the lower middle of 4 budgets: the cheaper pilot
    for name, seed in zip(noise["runs"], sweep(cfg)["noise_seeds"]):
        rep = runs[name]
        assert rep["shape"] == base["shape"] and rep["train"]["seed"] == seed
        assert rep["train"]["tokens"] == base["train"]["tokens"]
    assert not set(noise["runs"]) & set(analysis_settings(cfg, "chinchilla")["budgets"])


def proxy_design(cfg):
    return cfg["studies"]["arch_proxy"]["proxy"]["mini"]


def test_the_mini_proxy_design_has_8_candidates_at_a_tenth_of_the_compute(mini):
    from workflow.config import study_runs

    runs = study_runs(validate_config(copy.deepcopy(mini)), "arch_proxy")
    full = {r["shape_name"]: r["train"]["tokens"] for r in runs.values() if r["variant"] == "full"}
    proxy = {r["shape_name"]: r["train"]["tokens"] for r in runs.values() if r["variant"] == "proxy"}
    assert len(full) == len(proxy) >= 8 and full.keys() == proxy.keys()
    assert all(proxy[k] <= 0.1 * full[k] + 1 for k in full)  # rounding: one token
    assert len({r["shape"]["layers"] for r in runs.values()}) >= 4  # the depth/width choice is spanned


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(max_candidates=5), r"proxy.mini: 5 candidate shapes cannot measure a ranking"),
        (lambda s: s.update(fraction=0.25), r"proxy.mini.fraction: proxies of 25% of a full run save too little"),
        (lambda s: s.update(full={"top": 2, "bottom": 2}), r"proxy.mini.full: 4 full runs cannot test"),
    ],
)
def test_a_proxy_design_that_cannot_rank_stops_with_one_line(mini, change, message):
    cfg = copy.deepcopy(mini)
    change(proxy_design(cfg))
    with pytest.raises(ScaleDAGError, match=message) as exc:
        validate_config(cfg)
    assert "\n" not in str(exc.value)
