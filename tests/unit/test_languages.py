"""The multilingual rendering of the generated world (BLOOM's multilingual vs English-only study)."""

from __future__ import annotations

import collections
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
