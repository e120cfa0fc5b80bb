"""Validation loss of a final checkpoint over the whole held-out split."""

import json
import math

import numpy as np
import pytest

from conftest import make_run_spec, run_module
from workflow.errors import ScaleDAGError
from workflow.evaluate.loss import token_windows
from workflow.train.metrics import read_metrics


def test_windows_tile_the_stream(tiny_corpus):
    w = token_windows(tiny_corpus["valid_prefix"], 64, 1000)
    assert w.shape == (1000 // 64, 65)
    assert np.array_equal(w[0, -1], w[1, 0])  # consecutive windows share their boundary token
    with pytest.raises(ScaleDAGError, match="fewer than"):
        token_windows(tiny_corpus["valid_prefix"], 10**7, 10**8)


def test_evaluate_cli_matches_training_curve(tiny_corpus, trained_run, tmp_path):
    spec = make_run_spec(tiny_corpus, trained_run)
    out = tmp_path / "eval.json"
    run_module("workflow.evaluate.loss", ["--spec", json.dumps(spec), "--max-tokens", "20000", "--out", str(out)])
    result = json.loads(out.read_text())
    last_valid = [r["loss"] for r in read_metrics(trained_run / "metrics.jsonl") if r["kind"] == "valid"][-1]
    assert result["iteration"] == 30 and result["tokens"] > 10000
    assert abs(result["loss"] - last_valid) < 0.3
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))


def test_evaluate_without_checkpoint_is_a_clear_error(tiny_corpus, tmp_path):
    spec = make_run_spec(tiny_corpus, tmp_path / "never-trained")
    proc = run_module(
        "workflow.evaluate.loss", ["--spec", json.dumps(spec), "--out", str(tmp_path / "e.json")], check=False
    )
    assert proc.returncode == 2 and "no complete checkpoint" in proc.stderr
    assert not (tmp_path / "e.json").exists()


def test_token_bytes_add_up_to_the_texts_bytes(tiny_corpus, tmp_path):
    """Bits per byte divides by the bytes the predicted tokens stand for: over a whole document they
    must be its UTF-8 bytes, for the byte-level BPE, the SentencePiece-style BPE (which prepends a
    word mark to every document) and the codon vocabulary."""
    from workflow.data.tokenize import load_encoder
    from workflow.data.tokenizer import codon_tokenizer, save_tokenizer, train_tokenizer
    from workflow.evaluate.loss import ByteCounts

    texts = [json.loads(line)["text"] for line in (tiny_corpus["root"] / "valid.jsonl").read_text().splitlines()]
    texts.append("Ünïcode → 3.2 eV in SrTiO₃")  # multi-byte characters (byte fallback / byte-level pieces)
    sp = tmp_path / "sp.json"
    train_tokenizer(tiny_corpus["root"] / "train.jsonl", sp, vocab_size=400, kind="sentencepiece-bpe")
    for path, prepended in ((tiny_corpus["tokenizer"], 0), (str(sp), 1)):
        counts = ByteCounts(path)
        assert counts.prepended == prepended
        docs = load_encoder(path).encode(texts)
        stream = np.concatenate([[counts.eod], *docs])  # as evaluation sees them: each after an EOD
        per_token = counts.of(stream[None, :])
        ends = np.cumsum([len(d) for d in docs])
        for text, start, end in zip(texts, [0, *ends[:-1]], ends):
            assert per_token[start:end].sum() == len(text.encode("utf-8")), (path, text[:40])  # EOD counts 0
    codons = tmp_path / "codon.json"
    save_tokenizer(codon_tokenizer(), codons)
    counts = ByteCounts(str(codons))
    (ids,) = load_encoder(str(codons)).encode(["ATGGCATAA"])
    assert list(counts.per_token[ids]) == [3, 3, 3, 0]


def test_language_eval_reports_each_tag_in_bits_per_byte(tiny_corpus, trained_run, tmp_path):
    spec = make_run_spec(tiny_corpus, trained_run)
    docs = [json.loads(line)["text"] for line in (tiny_corpus["root"] / "valid.jsonl").read_text().splitlines()]
    text = tmp_path / "tagged.jsonl"
    tags = ["en" if i % 2 else "xx" for i in range(len(docs))]
    # `xx` is the same text reversed: unlike anything the model saw, so it must cost more bits per byte
    rows = [{"text": d if t == "en" else d[::-1], "tag": t} for d, t in zip(docs, tags)]
    text.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval.json"
    run_module(
        "workflow.evaluate.loss",
        ["--spec", json.dumps(spec), "--max-tokens", "200000", "--text", str(text), "--out", str(out)],
    )
    result = json.loads(out.read_text())
    assert 0 < result["bits_per_byte"] < 8
    en, xx = (result["language_eval"]["tags"][t] for t in ("en", "xx"))
    for r, tag in ((en, "en"), (xx, "xx")):
        assert r["documents"] == tags.count(tag) == len(r["document_nats"])
        assert r["bits_per_byte"] == pytest.approx(sum(r["document_nats"]) / math.log(2) / r["bytes"], rel=1e-4)
    # every document fits in max_tokens: all its bytes are predicted but the stream's first token and
    # the tail after the last whole window (< 64 tokens)
    en_bytes = sum(len(d.encode()) for d, t in zip(docs, tags) if t == "en")
    assert en_bytes - 64 * 16 <= en["bytes"] < en_bytes
    assert xx["bits_per_byte"] > en["bits_per_byte"] + 0.2
    text.write_text(json.dumps({"text": "no tag"}) + "\n")
    proc = run_module(
        "workflow.evaluate.loss",
        ["--spec", json.dumps(spec), "--text", str(text), "--out", str(tmp_path / "e2.json")],
        check=False,
    )
    assert proc.returncode == 2 and "tagged.jsonl:1: no `tag`" in proc.stderr
