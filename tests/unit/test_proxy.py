"""Architecture design by proxy: candidate shapes, equal-compute budgets, ranking and Spearman."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

from conftest import REPO
from workflow.config import load_config, pretrain_spec, study_runs
from workflow.errors import ScaleDAGError
from workflow.studies import proxy

SETTINGS = {
    "arch": "llama",
    "overrides": {},
    "parameters": 400000,
    "tolerance": 0.3,
    "tokens": 64000,
    "fraction": 0.25,
    "head_dims": [32, 64],
    "hidden_multiple": 64,
    "max_hidden": 192,
    "seq_length": 128,
}


@pytest.mark.parametrize("tp", [1, 2])
def test_candidates_obey_the_shape_rules_and_the_budget(tp):
    cands = proxy.enumerate_candidates(SETTINGS, tp=tp)
    assert len(cands) >= 3
    for c in cands:
        assert c["hidden"] % 64 == 0 and c["hidden"] % c["heads"] == 0 and c["heads"] % tp == 0
        assert c["hidden"] // c["heads"] in (32, 64)
        assert abs(c["non_embedding_params"] - 400000) <= 0.3 * 400000
        assert c["non_embedding_params"] == proxy.non_embedding_params(
            "llama", {}, c["layers"], c["hidden"], c["heads"], 128
        )
    assert len({c["name"] for c in cands}) == len(cands)


def test_max_candidates_spreads_over_the_widths_and_too_few_is_an_error():
    all_c = proxy.enumerate_candidates(SETTINGS)
    some = proxy.enumerate_candidates({**SETTINGS, "max_candidates": 3})
    assert len(some) == 3 and some[0] == all_c[0] and some[-1] == all_c[-1]
    with pytest.raises(ScaleDAGError, match="candidate shapes within"):
        proxy.enumerate_candidates({**SETTINGS, "tolerance": 0.001, "min_candidates": 2})


def test_full_and_proxy_runs_are_at_equal_compute():
    runs = proxy.proxy_runs(load_config(REPO / "config.yaml"), "arch_proxy")
    s = proxy.proxy_settings(load_config(REPO / "config.yaml"), "arch_proxy")
    full = {k.split("_", 1)[1]: v for k, v in runs.items() if v["variant"] == "full"}
    prox = {k.split("_", 1)[1]: v for k, v in runs.items() if v["variant"] == "proxy"}
    assert set(full) == set(prox) and len(full) >= 5  # >= 5 shapes at tiny
    budget = 6 * s["parameters"] * s["tokens"]
    for name, r in full.items():
        n = proxy.non_embedding_params(
            s["arch"], {}, **{k: r["shape"][k] for k in ("layers", "hidden", "heads")}, seq=r["shape"]["seq_length"]
        )
        assert 6 * n * r["train"]["tokens"] == pytest.approx(budget, rel=1e-4)
        assert prox[name]["train"]["tokens"] == pytest.approx(s["fraction"] * r["train"]["tokens"], abs=1)


def test_generated_runs_resolve_to_pretrain_specs():
    cfg = load_config(REPO / "config.yaml")
    run = sorted(study_runs(cfg, "arch_proxy"))[0]
    spec = pretrain_spec(cfg, "arch_proxy", run)
    assert spec["run_id"] == f"tiny.arch_proxy.{run}" and spec["arch"] == "llama"
    assert spec["shape"]["name"] == run.split("_", 1)[1] and spec["train"]["tokens"] < 64000 * 2


def test_rankdata_and_spearman_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 5, size=7).astype(float)  # ties included
        y = x + rng.normal(size=7)
        assert proxy.rankdata(x).tolist() == scipy.stats.rankdata(x).tolist()
        ref = scipy.stats.spearmanr(x, y).statistic
        got = proxy.spearman(x, y)
        assert (got is None and np.isnan(ref)) or got == pytest.approx(ref)
    assert proxy.spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) == pytest.approx(1.0)
    assert proxy.spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert proxy.spearman([1, 2], [1, 2]) is None
    with pytest.raises(ScaleDAGError):
        proxy.spearman([1, 2, 3], [1, 2])


def _write_run(root, run, layers, hidden, heads, loss, tps, tokens, wall):
    d = root / run
    d.mkdir(parents=True)
    rows = [
        {"kind": "valid", "step": 0, "tokens": 0, "loss": 9.0},
        {"kind": "train", "step": 5, "loss": loss + 0.3},
        {"kind": "valid", "step": 5, "tokens": tokens, "loss": loss},
    ]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "summary.json").write_text(
        json.dumps(
            {
                "model": {"layers": layers, "hidden": hidden, "heads": heads, "seq_length": 128},
                "parameters": 10**6,
                "tokens": tokens,
                "train_tokens_per_s": tps,
                "wall_seconds": wall,
                "device": "cpu",
            }
        )
    )
    return str(d / "metrics.jsonl"), str(d / "summary.json")


SHAPES = [(7, 64, 2), (7, 64, 1), (2, 128, 4), (2, 128, 2), (1, 192, 6)]


def test_ranking_selection_and_report(tmp_path):
    proxy_losses = [5.0, 5.4, 4.8, 5.2, 5.6]
    full_losses = [2.0, 2.5, 1.9, 2.1, 2.4]  # ranks: proxy 2,4,1,3,5; full 2,5,1,3,4
    pm, ps, fm, fs = [], [], [], []
    for (n, h, a), pl, fl in zip(SHAPES, proxy_losses, full_losses):
        m, s = _write_run(tmp_path, f"proxy_{proxy.shape_name(n, h, a)}", n, h, a, pl, 1000.0 * h, 16000, 2.0)
        pm.append(m), ps.append(s)
        m, s = _write_run(tmp_path, f"full_{proxy.shape_name(n, h, a)}", n, h, a, fl, 1000.0 * h, 64000, 10.0)
        fm.append(m), fs.append(s)
    ranking = proxy.rank_candidates(pm, ps, SETTINGS)
    assert [r["shape"] for r in ranking["candidates"]] == [
        "L2-H128-A4",
        "L7-H64-A2",
        "L2-H128-A2",
        "L7-H64-A1",
        "L1-H192-A6",
    ]
    assert ranking["full"] == [r["shape"] for r in ranking["candidates"]]  # full: all
    top_bottom = proxy.rank_candidates(pm, ps, {**SETTINGS, "full": {"top": 2, "bottom": 1}})
    assert top_bottom["full"] == ["L2-H128-A4", "L7-H64-A2", "L1-H192-A6"]
    report = proxy.proxy_report(ranking, fm, fs)
    assert report["spearman"] == pytest.approx(scipy.stats.spearmanr(proxy_losses, full_losses).statistic)
    assert report["best_predicted"] == report["best_actual"] == "L2-H128-A4"
    cands = ranking["candidates"]  # proxy tokens are what the runs trained (whole iterations)
    expected = sum(c["non_embedding_params"] * 16000 for c in cands) / sum(
        c["non_embedding_params"] * c["full_tokens"] for c in cands
    )
    assert report["proxy_flops_fraction"] == pytest.approx(expected) and 0.2 < expected < 0.3
    assert report["proxy_seconds_fraction"] == pytest.approx(10.0 / 50.0)
    assert report["n_full"] == 5 and [r["predicted_rank"] for r in report["rows"]] == [1, 2, 3, 4, 5]


def test_report_rejects_a_full_run_not_in_the_ranking(tmp_path):
    m, s = _write_run(tmp_path, "proxy_L7-H64-A2", 7, 64, 2, 5.0, 1e3, 16000, 1.0)
    ranking = proxy.rank_candidates([m], [s], SETTINGS)
    fm, fs = _write_run(tmp_path, "full_L1-H192-A3", 1, 192, 3, 2.0, 1e3, 64000, 1.0)
    with pytest.raises(ScaleDAGError, match="not in the proxy ranking"):
        proxy.proxy_report(ranking, [fm], [fs])
