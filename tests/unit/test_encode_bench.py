"""benchmarks/encode.py's real-tool path: comparing two Megatron datasets, running and reading preprocess_data.py."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("encode_bench", REPO / "benchmarks" / "encode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dataset(prefix: Path, documents: list[list[int]]) -> str:
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=numpy.uint16)
    for ids in documents:
        builder.add_document(numpy.array(ids, dtype=numpy.uint16), [len(ids)])
    builder.finalize(f"{prefix}.idx")
    return str(prefix)


DOCS = [[5, 6, 7, 0], [8, 9, 0], [10, 11, 12, 13, 0]]


def test_identical_datasets(bench, tmp_path):
    a, b = _dataset(tmp_path / "a", DOCS), _dataset(tmp_path / "b", DOCS)
    assert bench.compare_datasets(a, b) == {"identical": True, "byte_identical": True}


def test_first_differing_document_and_token(bench, tmp_path):
    a = _dataset(tmp_path / "a", DOCS)
    b = _dataset(tmp_path / "b", [DOCS[0], DOCS[1], [10, 11, 99, 13, 0]])
    out = bench.compare_datasets(a, b)
    assert out["identical"] is False and out["byte_identical"] is False
    assert out["first_differing_document"] == 2 and out["first_differing_token"] == 2
    assert out["why"].startswith("different token ids")


def test_missing_eod_is_named(bench, tmp_path):
    a = _dataset(tmp_path / "a", DOCS)
    b = _dataset(tmp_path / "b", [DOCS[0], DOCS[1][:-1], DOCS[2]])
    out = bench.compare_datasets(a, b)
    assert out["first_differing_document"] == 1 and "EOD" in out["why"] and "ScaleDAG's" in out["why"]


def test_literal_special_token_is_named(bench, tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["a", "b <|endoftext|> c", "d"]))
    a = _dataset(tmp_path / "a", DOCS)
    b = _dataset(tmp_path / "b", [DOCS[0], [8, 0, 0], DOCS[2]])
    out = bench.compare_datasets(a, b, jsonl=jsonl, specials=["<|endoftext|>", "<|padding|>"])
    assert out["first_differing_document"] == 1 and "<|endoftext|>" in out["why"]


def test_dropped_document_is_not_identical(bench, tmp_path):
    a = _dataset(tmp_path / "a", DOCS)
    b = _dataset(tmp_path / "b", DOCS[:2])
    out = bench.compare_datasets(a, b)
    assert out["identical"] is False and out["first_differing_document"] == 2


def test_absent_without_checkout(bench, tmp_path):
    args = argparse.Namespace(megatron_lm=None, megatron_lm_deps=[])
    real, reason = bench.real_tool(args, tmp_path, tmp_path / "x.jsonl", tmp_path)
    assert real is None and reason.startswith("megatron-lm: not run (no --megatron-lm")
    args.megatron_lm = str(tmp_path)
    real, reason = bench.real_tool(args, tmp_path, tmp_path / "x.jsonl", tmp_path)
    assert real is None and "tools/preprocess_data.py: no such file" in reason


FAKE_TOOL = """
import argparse, sys
p = argparse.ArgumentParser()
p.add_argument("--output-prefix"); p.add_argument("--input"); p.add_argument("--log-interval", type=int)
args, _ = p.parse_known_args()
if "fail" in args.input:
    sys.exit("ModuleNotFoundError: No module named 'triton'")
print("Opening", args.input)
print("Time to startup:", 0.25)
for n in (100, 200):
    print(f"Processed {n} documents ({n / 2.0} docs/s, 1.0 MB/s).", file=sys.stderr)
for ext in ("bin", "idx"):
    open(f"{args.output_prefix}_text_document.{ext}", "wb").close()
"""


def _checkout(root: Path) -> Path:
    (root / "tools").mkdir(parents=True)
    (root / "tools" / "preprocess_data.py").write_text(FAKE_TOOL)
    (root / "megatron" / "training" / "tokenizer").mkdir(parents=True)
    (root / "megatron" / "core").mkdir()
    (root / "megatron" / "core" / "package_info.py").write_text("MAJOR = 0\nMINOR = 16\nPATCH = 1\n")
    return root


def test_real_tool_run_reads_its_clocks(bench, tmp_path):
    real = bench.RealTool(_checkout(tmp_path / "mlm"), [str(tmp_path / "deps")])
    assert real.problem() is None
    assert real.version()["checkout_megatron_core"] == "0.16.1"
    command = real.command(tmp_path / "in.jsonl", tmp_path, str(tmp_path / "out"))
    assert command[0] == sys.executable and "--append-eod" in command and "--legacy-tokenizer" in command
    assert command[command.index("--workers") + 1] == str(bench.WORKERS)
    assert real.env()["PYTHONPATH"].split(":")[:2] == [str(tmp_path / "mlm"), str(tmp_path / "deps")]
    out = real.run(tmp_path / "in.jsonl", tmp_path, str(tmp_path / "out"))
    assert out["reported_startup_seconds"] == 0.25
    assert out["reported_progress"] == {"documents": 200, "seconds": 2.0}
    assert out["prefix"] == str(tmp_path / "out_text_document") and out["wall_seconds"] > 0


def test_real_tool_failure_names_the_error(bench, tmp_path):
    real = bench.RealTool(_checkout(tmp_path / "mlm"), [])
    with pytest.raises(bench.RealToolError, match="No module named 'triton'"):
        real.run(tmp_path / "fail.jsonl", tmp_path, str(tmp_path / "out"))
