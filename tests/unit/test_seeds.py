"""Seed statistics: the t and Welch intervals by hand, a variant table over seeds, and the config's
seed axis (run names, train seeds, skipped variants)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.seeds import difference, t_interval, variant_table, welch_interval
from workflow.config import load_config, skipped_variants, study_runs
from workflow.errors import ScaleDAGError


def test_t_interval_by_hand():
    mean, lo, hi = t_interval([1.0, 1.02, 1.04])
    # sd 0.02, SE 0.01155, t(0.975, 2) = 4.303: half-width 0.0497
    assert mean == pytest.approx(1.02) and hi - mean == pytest.approx(0.04969, abs=1e-4)
    assert math.isnan(t_interval([1.0])[1])


def test_welch_interval_by_hand():
    d, lo, hi = welch_interval([1.00, 1.02, 1.04], [1.10, 1.12, 1.14])
    assert d == pytest.approx(-0.10) and (lo, hi) == (
        pytest.approx(-0.1453, abs=1e-3),
        pytest.approx(-0.0547, abs=1e-3),
    )
    assert math.isnan(welch_interval([1.0], [1.1, 1.2])[1])  # one seed: no seed interval


def test_zero_shot_difference_adds_the_items_noise():
    a = pd.DataFrame({"zeroshot_avg": [0.40, 0.40, 0.40], "zeroshot_avg_se": [0.02] * 3})
    b = pd.DataFrame({"zeroshot_avg": [0.35, 0.35, 0.35], "zeroshot_avg_se": [0.02] * 3})
    d = difference(a, b, "zeroshot_avg")
    # no seed spread, items shared: 1.96 x sqrt(0.02^2 + 0.02^2) = 0.0554
    assert d["diff"] == pytest.approx(0.05) and d["hi"] - d["diff"] == pytest.approx(0.0554, abs=1e-3)
    assert "items" in d["covers"]


def test_variant_table_rows_and_own_corpus_exclusion():
    rows = []
    for variant, axis, loss in (("base", "baseline", 3.0), ("mix", "corpus", 3.5), ("x", "activation", 2.9)):
        for k in range(3):
            rows.append(
                {
                    "run": f"{variant}_{k}",
                    "variant": variant,
                    "axis": axis,
                    "size": "s",
                    "seed": k,
                    "valid_loss": loss + 0.01 * k,
                    "bpb_en": loss / 2 + 0.01 * k,
                }
            )
    rows.append({"run": "random", "variant": None, "zeroshot_avg": 0.3})
    t = variant_table(pd.DataFrame(rows), comparable={"mix": ("valid_loss",)}).set_index("variant")
    assert list(t.index) == ["base", "mix", "x"] and (t["seeds"] == 3).all() and (t["baseline"] == "base").all()
    assert t.loc["x", "delta_valid_loss"] == pytest.approx(-0.1) and t.loc["x", "delta_valid_loss_hi"] < 0
    assert pd.isna(t.loc["mix", "delta_valid_loss"]) and t.loc["mix", "delta_bpb_en"] == pytest.approx(0.25)


def test_config_seed_axis_names_runs_and_sets_their_seed():
    config = load_config("config.yaml", {"scale": "mini"})
    runs = study_runs(config, "matgpt")
    assert sorted(runs) == [f"{a}_tiny-1m_s{k}" for a in ("gpt-neox", "llama") for k in (1234, 1235, 1236)]
    assert runs["llama_tiny-1m_s1235"]["train"] == {"seed": 1235} and runs["llama_tiny-1m_s1235"]["seed"] == 1235
    bloom = study_runs(config, "bloom_ablations")
    assert "multilingual" in skipped_variants(config, "bloom_ablations")
    assert not any(r["variant"] == "multilingual" for r in bloom.values()) and len(bloom) == 7 * 3
    tiny = load_config("config.yaml", {"scale": "tiny"})  # an unseeded scale keeps <variant>_<shape>
    assert "multilingual_tiny-1m" in study_runs(tiny, "bloom_ablations") and not skipped_variants(
        tiny, "bloom_ablations"
    )


def test_the_baseline_cannot_be_skipped(tmp_path):
    import yaml

    config = yaml.safe_load(open("config.yaml"))
    config["studies"]["bloom_ablations"]["runs"]["rotary"]["skip"] = {"mini": "no reason"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ScaleDAGError, match=r"runs\.rotary\.skip: the baseline cannot be skipped"):
        load_config(path)
