import json
import subprocess
import sys

import pytest

from workflow.errors import ScaleDAGError
from workflow.synthetic import generate_documents
from workflow.tokenizer import EOD_TOKEN, eod_id, load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    train = root / "train.jsonl"
    texts = generate_documents(150, seed=0) + ["Ünïcödé façade — naïve café, 東京 ✓ 🙂"]
    train.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    path = root / "tokenizer.json"
    train_tokenizer(train, path, vocab_size=600)
    return train, path


def test_eod_is_id_zero_and_vocab_size(trained):
    _, path = trained
    tok = load_tokenizer(path)
    assert eod_id(tok) == 0 and tok.id_to_token(0) == EOD_TOKEN
    assert tok.get_vocab_size() == 600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("text", [
    "LaSrCoO3 has a band gap of 2.35 eV.",
    "  leading spaces, trailing\ttabs\t\nand\n\nnew lines  ",
    "Ünïcödé façade — naïve café, 東京 ✓ 🙂 Ω ∑ never seen: ꙮ",
])
def test_round_trip(trained, text):
    tok = load_tokenizer(trained[1])
    ids = tok.encode(text).ids
    assert 0 not in ids
    assert tok.decode(ids, skip_special_tokens=False) == text


def test_learns_merges_for_the_corpus(trained):
    tok = load_tokenizer(trained[1])
    text = generate_documents(1, seed=0)[0]
    assert len(tok.encode(text).ids) < len(text.encode()) / 2


def test_vocab_size_too_small(tmp_path, trained):
    with pytest.raises(ScaleDAGError, match="vocab_size"):
        train_tokenizer(trained[0], tmp_path / "t.json", vocab_size=256)
    assert not (tmp_path / "t.json").exists()


def test_cli(tmp_path, trained):
    out = tmp_path / "tokenizer.json"
    proc = subprocess.run([sys.executable, "-m", "workflow.tokenizer", "--train", str(trained[0]),
                           "--vocab-size", "300", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert load_tokenizer(out).get_vocab_size() == 300
    missing = subprocess.run([sys.executable, "-m", "workflow.tokenizer", "--train", str(tmp_path / "no.jsonl"),
                              "--vocab-size", "300", "--out", str(out)], capture_output=True, text=True)
    assert missing.returncode == 2 and "no.jsonl" in missing.stderr
