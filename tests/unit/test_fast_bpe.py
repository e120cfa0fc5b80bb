"""The tiktoken path must give exactly the `tokenizers` ids, and step aside whenever it could not."""

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from workflow.data.fast_bpe import _byte_decoder, batch_encoder, tiktoken_encoding
from workflow.data.synthetic import generate_documents
from workflow.data.tokenizer import load_tokenizer, train_tokenizer

# Texts that exercise every branch of the GPT-2 regex and of byte-level BPE.
HARD_TEXTS = [
    "",
    " ",
    "\n\n\n",
    "  two leading spaces",
    "trailing spaces   ",
    "tabs\tand\r\nwindows lines\n",
    "it's they're we've I'm you'll he'd",
    "IT'S SHOUTED",
    "numbers 3.14159 and 1,000,000 and 2e-5",
    "naïve café 東京 Ångström μΩ",
    "emoji 🧪⚛️ and combining e\u0301",
    "a literal <|endoftext|> inside",
    "x" * 5000,
    "LaFeO3 perovskite with a band gap of 2.1 eV (DFT+U)",
    "!!!???...;;;",
    "\u00a0non-breaking\u2003spaces",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast-bpe")
    texts = generate_documents(60, seed=5) + HARD_TEXTS
    (root / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    paths = {}
    for kind in ("byte-bpe", "sentencepiece-bpe"):
        paths[kind] = root / f"{kind}.json"
        train_tokenizer(root / "train.jsonl", paths[kind], vocab_size=600, kind=kind)
    return paths, texts


def reference_ids(tok, texts):
    tok.encode_special_tokens = True
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def test_byte_bpe_uses_tiktoken_and_matches_tokenizers_exactly(trained):
    paths, texts = trained
    tok = load_tokenizer(paths["byte-bpe"])
    encode, engine = batch_encoder(tok)
    assert engine == "tiktoken"
    unseen = generate_documents(30, seed=99) + [t[::-1] for t in HARD_TEXTS]
    got = [ids.tolist() for ids in encode(texts + unseen)]
    assert got == reference_ids(load_tokenizer(paths["byte-bpe"]), texts + unseen)


def test_sentencepiece_style_falls_back_to_tokenizers_with_the_reason(trained):
    paths, texts = trained
    encode, engine = batch_encoder(load_tokenizer(paths["sentencepiece-bpe"]))
    assert engine.startswith("tokenizers (") and "normaliser" in engine
    assert [ids.tolist() for ids in encode(texts)] == reference_ids(load_tokenizer(paths["sentencepiece-bpe"]), texts)


def byte_level(vocab_strings, merges):
    """A byte-level BPE whose merges are given by hand (ids: the 256 byte symbols, then `vocab_strings`)."""
    byte_of = _byte_decoder()
    alphabet = sorted(byte_of, key=byte_of.get)
    vocab = {c: i for i, c in enumerate(alphabet)}
    for s in vocab_strings:
        vocab[s] = len(vocab)
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tok


def test_merge_order_that_tiktoken_would_not_reproduce_is_caught():
    # "bc" is merged before "ab", so `tokenizers` can never form "abc" from (ab, c) in the word "abc";
    # tiktoken would look "abc" up whole. The load-time check sees it and falls back.
    tok = byte_level(["bc", "ab", "abc"], [("b", "c"), ("a", "b"), ("ab", "c")])
    assert reference_ids(tok, ["abc"]) == [[ord("a"), 256]]
    encoding, why = tiktoken_encoding(tok)
    assert encoding is None and "rank differently" in why
    encode, engine = batch_encoder(tok)
    assert engine.startswith("tokenizers") and encode(["abc"])[0].tolist() == [ord("a"), 256]


def test_consistent_hand_made_merges_are_accepted():
    tok = byte_level(["ab", "abc"], [("a", "b"), ("ab", "c")])
    encode, engine = batch_encoder(tok)
    assert engine == "tiktoken"
    assert [ids.tolist() for ids in encode(["abc abcab", "cab"])] == reference_ids(tok, ["abc abcab", "cab"])


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.ByteLevel(add_prefix_space=True)), "pre-tokenizer"),
        (lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.Whitespace()), "pre-tokenizer"),
        (lambda t: t.add_tokens(["plain-added"]), "non-special added"),
    ],
)
def test_anything_but_plain_byte_level_bpe_falls_back(change, reason):
    tok = byte_level(["ab"], [("a", "b")])
    change(tok)
    encoding, why = tiktoken_encoding(tok)
    assert encoding is None and reason in why
