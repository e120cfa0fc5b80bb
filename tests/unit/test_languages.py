"""The multilingual rendering of the generated world (BLOOM's multilingual vs English-only study)."""

from __future__ import annotations

import collections
import json
import math
import re

import pytest

from workflow.data.languages import LANGUAGES, generate_multilingual, render
from workflow.data.sources import Counters, read_source
from workflow.data.synthetic import generate_documents

NAMES = re.compile(r"[0-9]|[A-Z][a-z]?[A-Z]")  # tokens with a digit or an inner capital: formulas, numbers


def _words(text: str) -> list[str]:
    return [w.strip(".,;:!?()") for w in text.split()]


def test_deterministic_by_seed_and_cycling_languages():
    docs = generate_multilingual(9, seed=0)
    assert docs == generate_multilingual(9, seed=0) and docs != generate_multilingual(9, seed=1)
    english = generate_documents(9, seed=0)
    assert docs[0] == english[0] and docs[3] == english[3]  # en is the English text itself
    assert docs[1] == render(english[1], "xa") and docs[2] == render(english[2], "yo")
    with pytest.raises(ValueError, match="language 'zz'"):
        render(english[0], "zz")


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_same_facts_own_vocabulary_own_word_order(language):
    english = generate_documents(30, seed=2)
    rendered = [render(d, language) for d in english]
    for en, other in zip(english, rendered):
        # the names (formulas, numbers, units) survive: the facts are the same facts
        assert sorted(w for w in _words(en) if NAMES.search(w)) == sorted(w for w in _words(other) if NAMES.search(w))
        assert en.count("\n\n") == other.count("\n\n")
    en_vocab = {w.lower() for d in english for w in _words(d) if w.isalpha()}
    vocab = {w.lower() for d in rendered for w in _words(d) if w.isalpha()}
    assert len(vocab & en_vocab) < 0.05 * len(vocab)  # its own words
    # its own order: the first sentence's translated words come in another order than word by word
    sentence = "The lattice parameter of SrTiO3 is large."
    word_by_word = " ".join(render(w, language) for w in ["The", "lattice", "parameter", "of", "SrTiO3", "is", "large"])
    assert render(sentence, language).rstrip(".") != word_by_word


def test_a_rendered_language_is_learnable():
    """Held-out documents of one invented language: a word-bigram model fit on the others is far
    below the word-unigram entropy, as for the English text (fixed vocabulary and order maps)."""
    docs = [render(d, "xa") for d in generate_documents(600, seed=0)]
    train, test = docs[:500], docs[500:]
    uni, bi = collections.Counter(), collections.defaultdict(collections.Counter)
    for d in train:
        ws = ["^", *d.split()]
        uni.update(ws[1:])
        for a, b in zip(ws, ws[1:]):
            bi[a][b] += 1
    total, vocab = sum(uni.values()), len(uni) + 1
    h1 = h2 = n = 0.0
    for d in test:
        ws = ["^", *d.split()]
        for a, b in zip(ws, ws[1:]):
            p1 = (uni[b] + 0.5) / (total + 0.5 * vocab)
            seen = bi.get(a, collections.Counter())
            h2 -= math.log((seen[b] + 5 * p1) / (sum(seen.values()) + 5))
            h1 -= math.log(p1)
            n += 1
    assert h2 / n < h1 / n - 1.5, (h1 / n, h2 / n)


def test_a_multilingual_source_through_read_source():
    source = {"generated": {"documents": 6, "seed": 4, "generator": "multilingual", "languages": ["en", "yo"]}}
    assert list(read_source(source, Counters())) == generate_multilingual(6, 4, ("en", "yo"))


def test_only_keeps_one_language_and_the_union_is_the_corpus():
    """A multilingual corpus lists each language as its own tagged source (`only`): together they
    are the whole corpus, document for document, and each holds one language's documents."""
    languages = ("en", "xa", "yo")
    whole = generate_multilingual(12, 5, languages)
    parts = {lang: generate_multilingual(12, 5, languages, only=lang) for lang in languages}
    assert sorted(d for p in parts.values() for d in p) == sorted(whole)
    assert parts["xa"] == whole[1::3] and parts["en"] == generate_documents(12, 5)[0::3]
    with pytest.raises(ValueError, match="only='fr'"):
        generate_multilingual(3, 5, languages, only="fr")


def test_tagged_sources_write_their_tag_and_keep_the_english_split(tmp_path):
    """prepare_corpus writes each document's tag; the English documents of the multilingual corpus
    fall in the split they have in the English-only corpus, so neither model trained on the other's
    validation English."""
    from workflow.data.corpus import prepare_corpus

    ml = {"documents": 300, "seed": 0, "generator": "multilingual", "languages": ["en", "xa", "yo"]}
    split = {"min_chars": 50, "valid_fraction": 0.1, "test_fraction": 0.05}
    prepare_corpus(
        {"name": "ml", "sources": [{"generated": {**ml, "only": t}, "tag": t} for t in ml["languages"]], **split},
        tmp_path / "ml",
    )
    prepare_corpus({"name": "en", "generated": {"documents": 300, "seed": 0}, **split}, tmp_path / "en")

    def records(corpus, s):
        return [json.loads(line) for line in (tmp_path / corpus / f"{s}.jsonl").read_text().splitlines()]

    valid = records("ml", "valid")
    assert {r["tag"] for r in valid} == {"en", "xa", "yo"}
    english_train = {r["text"] for r in records("en", "train")}
    ml_english_valid = {r["text"] for r in valid if r["tag"] == "en"}
    assert ml_english_valid and not ml_english_valid & english_train
    assert ml_english_valid <= {r["text"] for r in records("en", "valid")}
    assert all(set(r) == {"text"} for r in records("en", "valid"))  # untagged sources: text only
