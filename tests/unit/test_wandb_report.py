"""W&B report: built offline from a study's runs and tables; panels and run-set filters checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_module
from workflow.errors import ScaleDAGError
from workflow.report.wandb_report import build_report, csv_to_markdown, report_inputs, summary_row

RUNS = {
    "rotary_tiny-1m": {"run_id": "tiny.bloom.rotary_tiny-1m", "variant": "rotary"},
    "alibi_tiny-1m": {"run_id": "tiny.bloom.alibi_tiny-1m", "variant": "alibi"},
    "alibi_small-2m": {"run_id": "tiny.bloom.alibi_small-2m", "variant": "alibi"},
}


def _summary(arch: str, energy: dict) -> dict:
    return {
        "arch": arch,
        "parameters": 1000,
        "train_tokens_per_s": 2000.0,
        "peak_memory_mb": 12.5,
        "flops_per_token": {"chinchilla": 6e6, "6n": 6e3},
        "parallel": {"dp": 2, "tp": 1, "pp": 1},
        "energy": energy,
    }


@pytest.fixture
def study(tmp_path):
    summaries = []
    for i, run in enumerate(sorted(RUNS)):
        d = tmp_path / "runs" / run
        d.mkdir(parents=True)
        energy = (
            {"joules": 5.0, "joules_per_token": 0.25 + i, "reason": None}
            if i == 0
            else {"joules": None, "joules_per_token": None, "reason": "no energy counter readable: rapl: EACCES"}
        )
        (d / "summary.json").write_text(json.dumps(_summary("gpt-neox", energy)))
        summaries.append(str(d / "summary.json"))
    table = tmp_path / "tables" / "loss.csv"
    table.parent.mkdir()
    table.write_text("run,valid_loss\n" + "".join(f"{r},{1 + i / 10}\n" for i, r in enumerate(sorted(RUNS))))
    return {"summaries": summaries, "tables": [str(table)], "root": tmp_path}


def test_report_panels_and_runset_filters(study):
    import wandb_workspaces.reports.v2 as wr

    inputs = report_inputs(
        "bloom", "tiny", "BLOOM ablations", RUNS, study["summaries"], study["tables"], project="proj", entity="ent"
    )
    report = build_report(inputs)
    assert isinstance(report, wr.Report) and report.project == "proj" and report.entity == "ent"
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert len(grids) == 3  # loss, throughput, energy
    loss, throughput, energy = grids
    ys = [p.y for p in loss.panels if isinstance(p, wr.LinePlot)]
    assert ["train/loss"] in ys and ["valid/loss"] in ys
    assert any("train/tokens_per_s" in p.y for p in throughput.panels if isinstance(p, wr.LinePlot))
    assert any("train/mfu_chinchilla" in p.y for p in throughput.panels if isinstance(p, wr.LinePlot))
    assert [p.metrics for p in energy.panels] == [["energy/joules_per_token"], ["energy/joules"]]

    # one run set per variant, selecting exactly that variant's run ids, grouped by architecture
    for grid in grids:
        by_name = {rs.name: rs for rs in grid.runsets}
        assert sorted(by_name) == ["alibi", "rotary"]
        assert by_name["rotary"].filters == "Config(\"run_id\") in ['tiny.bloom.rotary_tiny-1m']"
        assert by_name["alibi"].filters == (
            "Config(\"run_id\") in ['tiny.bloom.alibi_small-2m', 'tiny.bloom.alibi_tiny-1m']"
        )
        assert all(rs.groupby == ["config.arch"] and rs.project == "proj" for rs in grid.runsets)

    markdown = [b.text for b in report.blocks if isinstance(b, wr.MarkdownBlock)]
    assert any("| run | valid_loss |" in m and "rotary_tiny-1m" in m for m in markdown)  # the study's table
    energy_table = next(m for m in markdown if "J/token" in m)
    assert "0.25" in energy_table and "n/a (no energy counter readable" in energy_table


def test_a_benchmarks_study_reports_its_tables_and_nothing_is_an_error(study):
    """The efficiency study trains nothing: its report holds its throughput tables, no run panels."""
    import wandb_workspaces.reports.v2 as wr

    inputs = report_inputs("efficiency", "tiny", "Efficiency", {}, [], study["tables"], project="p", entity="e")
    report = build_report(inputs)
    assert not [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    assert [b.text for b in report.blocks if isinstance(b, wr.H3)] == ["loss.csv"]
    with pytest.raises(ScaleDAGError, match="no runs and no tables to report"):
        build_report(report_inputs("efficiency", "tiny", "Efficiency", {}, [], [], project="p", entity="e"))


def test_summary_row_computes_tflops_from_the_runs_flop_count():
    row = summary_row("r", _summary("llama", {"joules_per_token": None, "reason": "none readable"}))
    assert row["TFLOP/s (Chinchilla)"] == pytest.approx(6e6 * 2000.0 / 2 / 1e12)
    assert row["J/token"] == "n/a (none readable)"


def test_csv_to_markdown_truncates(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(10)))
    md = csv_to_markdown(p, max_rows=3)
    assert md.splitlines()[:3] == ["| a | b |", "|---|---|", "| 0 | 0 |"] and "7 more rows in t.csv" in md


def test_report_covers_the_runs_given_and_rejects_strangers(study, tmp_path):
    # a proxy study's full runs exist only for the candidates its ranking chose
    inputs = report_inputs("bloom", "tiny", "t", RUNS, study["summaries"][:1], [])
    assert [row["run"] for row in inputs["summaries"]] == [Path(study["summaries"][0]).parent.name]
    stranger = tmp_path / "runs" / "other_tiny-1m" / "summary.json"
    with pytest.raises(ScaleDAGError, match="summaries given for runs it does not have: \\['other_tiny-1m'\\]"):
        report_inputs("bloom", "tiny", "t", RUNS, [*study["summaries"], str(stranger)], [])


def test_cli_writes_spec_and_prints_publish_command(study, tmp_path):
    out = tmp_path / "report" / "wandb_report.json"
    proc = run_module(
        "workflow.report.wandb_report",
        [
            "build",
            "--study",
            "bloom",
            "--scale",
            "tiny",
            "--title",
            "BLOOM",
            "--runs",
            json.dumps(RUNS),
            "--summaries",
            *study["summaries"],
            "--tables",
            *study["tables"],
            "--offline-runs",
            "results/tiny/bloom/runs/*/wandb/offline-run-*",
            "--out",
            str(out),
        ],
        env={"WANDB_MODE": "offline", "WANDB_ENTITY": "", "WANDB_PROJECT": ""},
    )
    spec = json.loads(out.read_text())
    command = proc.stdout.strip().splitlines()[-1]
    assert command == spec["publish"]
    assert command.startswith("wandb sync results/tiny/bloom/runs/*/wandb/offline-run-* && ")
    assert command.endswith(f"python -m workflow.report.wandb_report publish --spec {out}")
    assert spec["inputs"]["project"] == "scaledag" and spec["report"]["title"] == "BLOOM"
    assert len(spec["report"]["blocks"]) >= 10
    # publishing without an entity fails on one line, before any network call
    proc = run_module(
        "workflow.report.wandb_report",
        ["publish", "--spec", str(out)],
        check=False,
        env={"WANDB_ENTITY": "", "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 2 and "no W&B entity" in proc.stderr


def test_dag_exports_every_representable_run_and_reports_every_study(tmp_path):
    """Dry run of the default targets: one export_hf job per exportable run, one report per study."""
    import yaml

    from tests.conftest import REPO, job_counts, snakemake
    from workflow.config import enabled_studies, study_runs, validate_config
    from workflow.export.hf import exportable_runs

    proc = snakemake("-n", "--cores", "2", "--config", f"results={tmp_path}/results", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    studies = enabled_studies(config)
    exported = [r for s in studies if config["studies"][s].get("export_hf") for r in exportable_runs(config, s)[0]]
    assert counts.get("export_hf", 0) == len(exported) >= 2
    # a report per study with runs, and one (its tables) per benchmarks study
    assert counts["report"] == len(
        [s for s in studies if study_runs(config, s) or config["studies"][s]["kind"] == "benchmarks"]
    )
    assert "bloom_ablations/swiglu_tiny-1m is not exported to Hugging Face" in proc.stderr
