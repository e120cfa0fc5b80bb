"""Band gap: formula parsing, Matbench's folds and dummy score, embeddings of a tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_run_spec, require_shared
from workflow.errors import ScaleDAGError
from workflow.evaluate.bandgap import baselines, cross_validate, embed, fit_run, load_bandgap, matbench_folds
from workflow.evaluate.composition import description_text, fraction_vector, parse_formula


@pytest.mark.parametrize(
    "formula, expected",
    [
        ("Ag(AuS)2", {"Ag": 1, "Au": 2, "S": 2}),
        ("Ag0.5Ge1Pb1.75S4", {"Ag": 0.5, "Ge": 1, "Pb": 1.75, "S": 4}),
        ("Pb17(Cl9O4)2", {"Pb": 17, "Cl": 18, "O": 8}),
        ("K4 Mn4 O8", {"K": 4, "Mn": 4, "O": 8}),
        ("CH3CH2OH", {"C": 2, "H": 6, "O": 1}),
    ],
)
def test_parse_formula(formula, expected):
    assert parse_formula(formula) == pytest.approx(expected)


@pytest.mark.parametrize(
    "bad, why",
    [
        ("Xx2O", "unknown element 'Xx'"),
        ("Fe2(O3", "unbalanced '\\('"),
        ("Fe2O3)", "unbalanced '\\)'"),
        ("2Fe", "follows no element"),
        ("Fe-O", "unexpected '-'"),
        ("", "empty"),
    ],
)
def test_unparsable_formula_says_why(bad, why):
    with pytest.raises(ScaleDAGError, match=why):
        parse_formula(bad)


def test_fractions_and_description():
    amounts = parse_formula("Fe2O3")
    v = fraction_vector(amounts)
    assert v.sum() == pytest.approx(1.0) and v[25] == pytest.approx(0.4)  # Fe is Z = 26
    assert description_text("Fe2O3", amounts) == "The material Fe2O3 is a compound of 2 iron and 3 oxygen."


def test_matbench_fold_sizes():
    folds = matbench_folds(4604)
    assert [len(t) for _, t in folds] == [921, 921, 921, 921, 920]
    assert sorted(np.concatenate([t for _, t in folds]).tolist()) == list(range(4604))
    assert [int(i) for i in folds[0][1][:3]] == [int(i) for i in matbench_folds(4604)[0][1][:3]]  # deterministic


def _csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("mbid,composition,gap expt\n" + "".join(f"mb-{i},{c},{g}\n" for i, (c, g) in enumerate(rows)))


def test_unparsable_composition_is_skipped_and_counted(tmp_path, capsys):
    _csv(tmp_path / "matbench_expt_gap.csv", [("Fe2O3", 2.1), ("Qq3", 1.0), ("NaCl", 8.5), ("Si", "n/a")])
    data = load_bandgap(tmp_path)
    assert data["formulas"] == ["Fe2O3", "NaCl"] and [s["line"] for s in data["skipped"]] == [3, 5]
    assert "skipped 2 unparsable row(s)" in capsys.readouterr().out


def test_missing_data_file_names_it(tmp_path):
    with pytest.raises(ScaleDAGError, match="matbench_expt_gap.csv is missing"):
        load_bandgap(tmp_path)


@pytest.mark.shared_data
def test_dummy_baseline_matches_matbench(tmp_path):
    """Matbench v0.1 leaderboard: Dummy 1.1435 ± 0.0310 eV on all 4,604 rows."""
    data = require_shared("bandgap")
    loaded = load_bandgap(data)
    assert len(loaded["gap"]) == 4604 and loaded["skipped"] == []
    dummy = cross_validate(np.zeros((4604, 1)), loaded["gap"], "dummy")
    assert dummy["mae"] == pytest.approx(1.14, abs=0.03) and dummy["fold_sizes"] == [921, 921, 921, 921, 920]


def test_embeddings_and_heads_on_a_tiny_checkpoint(tiny_corpus, trained_run, tmp_path):
    rng = np.random.default_rng(0)
    formulas = ["Fe2O3", "NaCl", "Si", "GaAs", "ZnO", "Cu", "Al2O3", "MgO", "TiO2", "CdTe", "Ag(AuS)2", "LiF"] * 3
    _csv(
        tmp_path / "data" / "matbench_expt_gap.csv",
        [(f, round(float(g), 2)) for f, g in zip(formulas, rng.uniform(0, 5, 36))],
    )
    spec = make_run_spec(tiny_corpus, trained_run)
    meta = embed(spec, str(tmp_path / "data"), str(tmp_path / "emb.npz"), layer=-1)
    npz = np.load(tmp_path / "emb.npz")
    assert meta["rows"] == 36 and npz["formula"].shape == (36, 64) and npz["description"].shape == (36, 64)
    assert np.allclose(npz["formula"][0], npz["formula"][12])  # same text, same embedding
    assert not np.allclose(npz["formula"][0], npz["description"][0])
    result = fit_run(str(tmp_path / "emb.npz"), str(tmp_path / "data"), str(tmp_path / "fit.json"), ["ridge"])
    assert set(result["results"]) == {"ridge[formula]", "ridge[description]", "ridge[formula+composition]"}
    assert all(np.isfinite(v["mae"]) for v in result["results"].values())
    with pytest.raises(ScaleDAGError, match="hidden states 0..2"):
        embed(spec, str(tmp_path / "data"), str(tmp_path / "bad.npz"), layer=5)


def test_baselines_record(tmp_path):
    rows = [(f, g) for f, g in zip(["Fe2O3", "NaCl", "Si", "GaAs", "ZnO"] * 4, np.linspace(0, 4, 20))]
    _csv(tmp_path / "matbench_expt_gap.csv", rows)
    rec = baselines(str(tmp_path), str(tmp_path / "b.json"), rf_trees=5)
    assert set(rec["results"]) == {"dummy", "rf[composition]"} and rec["rows"] == 20
    assert json.loads((tmp_path / "b.json").read_text())["results"]["dummy"]["mae"] > 0
