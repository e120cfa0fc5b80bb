"""The data stages inside the tiny DAG (fixture `tiny_dag`, one DAG run per session)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

SPLITS = ("train", "valid", "test")


def test_every_tiny_corpus_is_prepared_tokenized_and_consistent(tiny_dag):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    data = tiny_dag / "results" / "tiny" / "data"
    corpora = sorted(p.name for p in data.iterdir() if (p / "tokens" / "stats.json").is_file())
    assert "synthetic" in corpora
    for corpus in corpora:
        prepared = json.loads((data / corpus / "stats.json").read_text())
        tokens = json.loads((data / corpus / "tokens" / "stats.json").read_text())
        assert tokens["prepare"] == prepared
        for split in SPLITS:
            ds = IndexedDataset(str(data / corpus / "tokens" / split))
            assert len(ds) == prepared["splits"][split]["documents"] == tokens["splits"][split]["documents"] > 0
            assert int(ds.sequence_lengths.sum()) == tokens["splits"][split]["tokens"]
        assert not (data / corpus / "tokens" / "shards").exists() or not list(
            (data / corpus / "tokens" / "shards").rglob("*.bin")
        )  # temp shards are gone after the gather
        assert (data / corpus / "tokenizer_config.json").is_file()
