"""Text normalisation and the document quality filters (Gopher/C4-style heuristics).

Every filter is a pure function of one cleaned document returning True to keep it, so each can be
tested alone and the stage can count, per filter, how many documents went in and came out.
"""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every C0/C1 control except \t and \n
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_WHITESPACE = re.compile(r"\s+")
_NOT_ALPHA = re.compile(r"[\W\d_]+")
_WORD = re.compile(r"[a-z']+")

# Function words that any English prose is full of (as in Gopher's stop-word rule); a cheap,
# model-free language check that needs no download.
ENGLISH_STOPWORDS = frozenset(
    "the be to of and a in that have i it for not on with he as you do at this but his by from they we "
    "say her she or an will my one all would there their what so up out if about who get which go me "
    "when make can like time no just him know take people into year your good some could them see other "
    "than then now look only come its over think also back after use two how our work first well way even "
    "new want because any these give day most us is are was were has been".split()
)


def clean_text(text: str) -> str:
    """Canonical form every later stage sees: NFC, no control characters, tidy whitespace."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):  # lone surrogates from JSON escapes
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def non_alpha_fraction(text: str) -> float:
    """Fraction of the non-whitespace characters that are not letters (digits, symbols, markup)."""
    visible = len(_WHITESPACE.sub("", text))
    if visible == 0:
        return 1.0
    return 1.0 - len(_NOT_ALPHA.sub("", text)) / visible


def duplicate_line_fraction(text: str) -> float:
    """Fraction of non-empty lines that repeat an earlier line (boilerplate, scraped menus, loops)."""
    lines = [line for line in text.split("\n") if line]
    if not lines:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)


def stopword_fraction(text: str) -> float:
    words = _WORD.findall(text.lower())
    if not words:
        return 0.0
    return sum(w in ENGLISH_STOPWORDS for w in words) / len(words)


def build_filters(spec: dict) -> list[tuple[str, callable]]:
    """(name, keep?) in the order they run; only the filters the corpus spec switches on."""
    filters = [("min_chars", lambda t, n=int(spec["min_chars"]): len(t) >= n)]
    if spec.get("max_chars"):
        filters.append(("max_chars", lambda t, n=int(spec["max_chars"]): len(t) <= n))
    if spec.get("max_non_alpha_fraction") is not None:
        filters.append(
            ("max_non_alpha_fraction", lambda t, x=float(spec["max_non_alpha_fraction"]): non_alpha_fraction(t) <= x)
        )
    if spec.get("max_duplicate_line_fraction") is not None:
        filters.append(
            (
                "max_duplicate_line_fraction",
                lambda t, x=float(spec["max_duplicate_line_fraction"]): duplicate_line_fraction(t) <= x,
            )
        )
    if spec.get("language"):
        language = spec["language"]
        min_stopwords = float(language["min_stopword_fraction"])  # filled by normalise_spec
        filters.append((f"language_{language['code']}", lambda t, x=min_stopwords: stopword_fraction(t) >= x))
    return filters
