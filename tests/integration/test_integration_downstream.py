"""Downstream outputs of the tiny DAG (one shared `tiny_dag` run): zero-shot, band gap, study tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import REPO, require_shared
from workflow.config import load_config, study_runs

pytestmark = pytest.mark.integration


def test_zeroshot_results_and_tables(tiny_dag):
    require_shared("zeroshot")
    cfg = load_config(REPO / "config.yaml")
    for study in [s for s, st in cfg["studies"].items() if st.get("zeroshot")]:
        root = tiny_dag / "results" / "tiny" / study
        for run in study_runs(cfg, study):
            for task in cfg["zeroshot"]["tasks"]:
                record = json.loads((root / "runs" / run / "zeroshot" / f"{task}.json").read_text())
                assert 0.0 <= record["metrics"]["acc"] <= 1.0 and record["items"] == cfg["zeroshot"]["limit"]["tiny"]
        table = pd.read_csv(root / "tables" / "zeroshot.csv").set_index("run")
        assert set(table.index) == set(study_runs(cfg, study)) | {"random"}
        assert table["average"].between(0, 1).all()
        summary = pd.read_csv(root / "tables" / "downstream.csv").set_index("run")
        assert summary.loc[list(study_runs(cfg, study)), "valid_loss"].notna().all()
    assert "axis" in pd.read_csv(tiny_dag / "results/tiny/bloom_ablations/tables/downstream.csv").columns


def test_bandgap_table_and_figure(tiny_dag):
    require_shared("bandgap")
    root = tiny_dag / "results" / "tiny" / "matgpt"
    table = pd.read_csv(root / "tables" / "bandgap.csv")
    assert {"dummy", "rf[composition]", "ridge[formula]", "mlp[description]"} <= set(table["method"])
    assert (table["mae"] > 0).all() and (root / "figures" / "bandgap_mae.png").stat().st_size > 0
    summary = pd.read_csv(root / "tables" / "downstream.csv").set_index("run")
    assert summary.loc[["gpt-neox_tiny-1m", "llama_tiny-1m"], "bandgap_mae"].notna().all()
