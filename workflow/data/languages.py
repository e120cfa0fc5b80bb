"""The generated world in other languages, for BLOOM's multilingual-vs-English comparison at tiny scale.

A document of workflow/data/synthetic.py is rendered word by word into an invented language with its
own vocabulary and its own word order, so a multilingual corpus states the same facts several ways:

  vocabulary   every English word maps to one invented word of the language, built from its own
               syllables (seeded by language and word: the same word always gives the same word);
               chemical formulas, numbers and units are names, kept as they are, as a real
               translation would keep them
  word order   `xa` reverses the words of each sentence (verb-final, like SOV languages);
               `yo` swaps each pair of neighbouring words

`en` is the English text itself. The languages are learnable (fixed maps), but a model must learn
each vocabulary apart, so at equal compute English-only and multilingual models differ the way the
paper's did: the multilingual one spends capacity on the other languages.
"""

from __future__ import annotations

import random
import re

from workflow.data.synthetic import generate_documents

# language -> (onsets, vowels, codas): syllables onset + vowel (+ coda); distinct inventories keep
# the vocabularies apart.
SYLLABLES = {
    "xa": ("p t k m n l s", "a e i o u", ""),
    "yo": ("b d g r z v", "a o y", "n r"),
}
LANGUAGES = ("en", *SYLLABLES)
# A word to translate: letters only, at most the first one a capital (a sentence-initial "The"), two
# or more of them ("a" too). Formulas (SrTiO3, ZnO), numbers, units (eV, K, Å) are kept as names.
_WORD = re.compile(r"^[A-Za-z][a-z]+(?:[-'][a-z]+)*$|^a$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _word(language: str, english: str) -> str:
    onsets, vowels, codas = (part.split() for part in SYLLABLES[language])
    rng = random.Random(f"{language}:{english.lower()}")
    syllables = 1 + min(2, len(english) // 4)
    out = "".join(
        rng.choice(onsets) + rng.choice(vowels) + (rng.choice(codas) if codas and rng.random() < 0.4 else "")
        for _ in range(syllables)
    )
    return out.capitalize() if english[0].isupper() else out


def _translate(language: str, token: str) -> str:
    """One whitespace token: the word inside its brackets and punctuation, translated if it is one."""
    core = token.strip(".,;:!?()")
    if not _WORD.match(core):
        return token
    start = token.index(core)
    return token[:start] + _word(language, core) + token[start + len(core) :]


def _reorder(language: str, words: list[str]) -> list[str]:
    if language == "xa":
        return words[::-1]
    swapped = list(words)
    for i in range(0, len(words) - 1, 2):
        swapped[i], swapped[i + 1] = words[i + 1], words[i]
    return swapped


def render(text: str, language: str) -> str:
    """`text` (English, from workflow.data.synthetic) in `language`: paragraphs and sentences kept."""
    if language == "en":
        return text
    if language not in SYLLABLES:
        raise ValueError(f"language {language!r}: expected one of {list(LANGUAGES)}")
    paragraphs = []
    for paragraph in text.split("\n\n"):
        sentences = []
        for sentence in _SENTENCE.split(paragraph):
            end = sentence[-1] if sentence and sentence[-1] in ".!?" else ""
            words = (sentence[:-1] if end else sentence).split()
            sentences.append(" ".join(_reorder(language, [_translate(language, w) for w in words])) + end)
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def generate_multilingual(
    documents: int, seed: int, languages: tuple[str, ...] = LANGUAGES, only: str | None = None
) -> list[str]:
    """`documents` documents of one seeded world, document i in languages[i % len(languages)], so
    every language gets the same share and each states facts of the same world (no document is
    there in two languages). `only`: just the documents rendered in that language, so the union over
    `only` in languages is the whole corpus, document for document."""
    if only is not None and only not in languages:
        raise ValueError(f"only={only!r} is not one of the languages {list(languages)}")
    english = generate_documents(documents, seed)
    return [
        render(doc, languages[i % len(languages)])
        for i, doc in enumerate(english)
        if only is None or languages[i % len(languages)] == only
    ]
