import json
import subprocess
import sys

import pytest

from workflow.data.synthetic import generate_documents
from workflow.data.tokenizer import (
    BYTE_TOKENS,
    EOD_TOKEN,
    adopt_tokenizer,
    eod_id,
    load_tokenizer,
    special_tokens,
    train_tokenizer,
)
from workflow.errors import ScaleDAGError

ROUND_TRIP = [
    "LaSrCoO3 has a band gap of 2.35 eV.",
    "  leading spaces, trailing\ttabs\t\nand\n\nnew lines  ",
    "Ünïcödé façade — naïve café, 東京 ✓ 🙂 Ω ∑ never seen: ꙮ",
]


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    path = root / "train.jsonl"
    texts = generate_documents(150, seed=0) + ["Ünïcödé façade — naïve café, 東京 ✓ 🙂"]
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=["byte-bpe", "sentencepiece-bpe"])
def trained(request, train, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "tokenizer.json"
    train_tokenizer(train, path, vocab_size=600, kind=request.param)
    return request.param, path


def test_specials_ids_and_vocab_size(trained):
    kind, path = trained
    tok = load_tokenizer(path)
    assert tok.get_vocab_size() == 600
    if kind == "byte-bpe":
        assert special_tokens(tok) == {"bos": EOD_TOKEN, "eos": EOD_TOKEN, "pad": "<|padding|>"}
        assert eod_id(tok) == 0 and tok.token_to_id("<|padding|>") == 1
    else:
        assert special_tokens(tok) == {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
        assert [tok.token_to_id(t) for t in ("<unk>", "<s>", "</s>", "<pad>")] == [0, 1, 2, 3]
        assert eod_id(tok) == 2 and tok.token_to_id(BYTE_TOKENS[0]) == 4 and tok.token_to_id(BYTE_TOKENS[-1]) == 259
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(trained, text):
    tok = load_tokenizer(trained[1])
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids, skip_special_tokens=False) == text
    assert eod_id(tok) not in ids


def test_sentencepiece_style_falls_back_to_bytes(trained):
    kind, path = trained
    if kind != "sentencepiece-bpe":
        pytest.skip("byte fallback is the LLaMA style's")
    tok = load_tokenizer(path)
    tokens = tok.encode("ꙮ", add_special_tokens=False).tokens  # a character never seen in training
    assert tokens[-3:] == ["<0xEA>", "<0x99>", "<0xAE>"]
    assert "▁band" in tok.get_vocab()  # SentencePiece-style word-initial pieces


def test_learns_merges_for_the_corpus(trained):
    tok = load_tokenizer(trained[1])
    text = generate_documents(1, seed=0)[0]
    assert len(tok.encode(text).ids) < len(text.encode()) / 2


def test_transformers_loads_it_with_declared_specials(trained):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    kind, path = trained
    tok = load_tokenizer(path)
    hf = AutoTokenizer.from_pretrained(str(path.parent))
    roles = special_tokens(tok)
    assert (hf.bos_token, hf.eos_token, hf.pad_token) == (roles["bos"], roles["eos"], roles["pad"])
    fast = PreTrainedTokenizerFast(tokenizer_file=str(path))
    for text in ROUND_TRIP:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert hf(text, add_special_tokens=False)["input_ids"] == ids
        assert fast(text, add_special_tokens=False)["input_ids"] == ids
        assert hf.decode(ids) == text


def test_adopting_a_pre_existing_tokenizer(trained, tmp_path):
    _, path = trained
    adopt_tokenizer(path, tmp_path / "tokenizer.json", vocab_size=1000)
    assert load_tokenizer(tmp_path / "tokenizer.json").to_str() == load_tokenizer(path).to_str()
    assert (tmp_path / "tokenizer_config.json").is_file()
    with pytest.raises(ScaleDAGError, match="more than the model's vocab_size 500"):
        adopt_tokenizer(path, tmp_path / "t2.json", vocab_size=500)
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(ScaleDAGError, match="junk.json: not a tokenizer.json"):
        adopt_tokenizer(tmp_path / "junk.json", tmp_path / "t3.json", vocab_size=1000)


def test_vocab_size_too_small(tmp_path, train):
    with pytest.raises(ScaleDAGError, match="vocab_size"):
        train_tokenizer(train, tmp_path / "t.json", vocab_size=257)
    with pytest.raises(ScaleDAGError, match="sentencepiece-bpe tokenizer needs an integer >= 261"):
        train_tokenizer(train, tmp_path / "t.json", vocab_size=300 - 40, kind="sentencepiece-bpe")
    assert not (tmp_path / "t.json").exists()


def test_cli_trains_and_adopts(tmp_path, train):
    out = tmp_path / "tokenizer.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.tokenizer",
            "--train",
            str(train),
            "--type",
            "sentencepiece-bpe",
            "--vocab-size",
            "400",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert load_tokenizer(out).get_vocab_size() == 400 and "eod id 2" in proc.stdout
    adopted = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.tokenizer",
            "--train",
            str(train),
            "--vocab-size",
            "512",
            "--existing",
            str(out),
            "--out",
            str(tmp_path / "b" / "tokenizer.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert adopted.returncode == 0 and "adopted" in adopted.stdout
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.tokenizer",
            "--train",
            str(tmp_path / "no.jsonl"),
            "--vocab-size",
            "300",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no.jsonl" in missing.stderr
