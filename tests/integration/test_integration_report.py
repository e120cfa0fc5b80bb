"""Reports and exports inside the tiny DAG (fixture `tiny_dag`, one DAG run per session):
`snakemake --report` holds every figure of every study; W&B report specs and HF exports exist."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, snakemake

pytestmark = pytest.mark.integration


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def report_zip(tiny_dag) -> Path:
    out = tiny_dag / "report.zip"
    proc = snakemake(
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tiny_dag),
        "--configfile",
        str(REPO / "config.yaml"),
        "--cores",
        "1",
        "--report",
        str(out),
        cwd=tiny_dag,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_snakemake_report_contains_every_figure_of_every_study(tiny_dag, report_zip):
    results = tiny_dag / "results" / "tiny"
    figures = sorted(p for p in results.glob("*/figures/*.png"))
    assert figures, "the tiny DAG made no figures"
    with zipfile.ZipFile(report_zip) as zf:
        inside = {_sha(zf.read(n)) for n in zf.namelist() if n.startswith("report/data/raw/")}
        html = zf.read("report/report.html").decode("utf-8", errors="replace")
    missing = [str(p.relative_to(results)) for p in figures if _sha(p.read_bytes()) not in inside]
    assert not missing, f"figures not in the Snakemake report (wrap their rule outputs in report()): {missing}"
    assert "Training and validation loss of every run of" in html  # captions from report/ are rendered
    for table in results.glob("*/tables/loss.csv"):
        assert _sha(table.read_bytes()) in inside


def test_every_study_with_runs_has_a_wandb_report_spec(tiny_dag):
    results = tiny_dag / "results" / "tiny"
    specs = sorted(results.glob("*/report/wandb_report.json"))
    studies = {p.parent.parent.name for p in specs}
    assert {"matgpt", "bloom_ablations", "efficiency"} <= studies
    for path in specs:
        spec = json.loads(path.read_text())
        study = path.parent.parent.name
        if study == "efficiency":  # benchmarks train no runs: the spec holds the throughput tables
            assert not spec["inputs"]["variants"] and {"gpt2.csv", "genslm.csv"} <= set(spec["inputs"]["tables"])
            continue
        run_ids = sorted(i for ids in spec["inputs"]["variants"].values() for i in ids)
        runs = sorted(row["run"] for row in spec["inputs"]["summaries"])
        assert run_ids == [f"tiny.{study}.{r}" for r in runs] and runs
        assert all((path.parent.parent / "runs" / r / "summary.json").is_file() for r in runs)
        assert spec["publish"].startswith("wandb sync ") and "workflow.report.wandb_report publish" in spec["publish"]


def test_final_checkpoints_are_exported_to_hugging_face(tiny_dag):
    from transformers import AutoConfig

    results = tiny_dag / "results" / "tiny"
    for study in ("matgpt", "bloom_ablations"):
        exports = sorted((results / study / "runs").glob("*/hf/config.json"))
        assert exports, f"no Hugging Face export in {study}"
        for cfg in exports:
            info = json.loads((cfg.parent / "scaledag_export.json").read_text())
            assert AutoConfig.from_pretrained(cfg.parent).architectures == [info["hf_class"]]
            assert (cfg.parent / "tokenizer.json").is_file() and (cfg.parent / "model.safetensors").is_file()
    archs = {json.loads(p.read_text())["hf_class"] for p in results.glob("matgpt/runs/*/hf/scaledag_export.json")}
    assert archs == {"LlamaForCausalLM", "GPTNeoXForCausalLM"}
