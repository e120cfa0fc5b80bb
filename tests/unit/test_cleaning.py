import pytest

from workflow.data.cleaning import (
    build_filters,
    clean_text,
    duplicate_line_fraction,
    non_alpha_fraction,
    stopword_fraction,
)

PROSE = "The band gap of the film is larger than that of the bulk crystal, and it is stable in air."


def test_nfc_normalisation():
    assert clean_text("Mu\u0308ller") == "M\u00fcller"


def test_control_characters_dropped_but_newline_and_tab_kept_as_whitespace():
    assert clean_text("a\x00b\x07c\x1bd\x7fe\x85f") == "abcdef"
    assert clean_text("a\tb\nc") == "a b\nc"


def test_spaces_collapsed_lines_stripped_blank_runs_collapsed():
    assert clean_text("  a   b \t c  \n   d  ") == "a b c\nd"
    assert clean_text("a\n\n\n\n\nb") == "a\n\nb"
    assert clean_text("a\n  \n \t \n\nb") == "a\n\nb"
    assert clean_text("a\r\nb\rc") == "a\nb\nc"
    assert clean_text("\n\n  x  \n\n") == "x"
    assert clean_text("a\u00a0\u2003b") == "a b"


def test_lone_surrogates_are_replaced():
    assert "\ud800" not in clean_text("a\ud800b")


def test_non_alpha_fraction():
    assert non_alpha_fraction("abc def") == 0.0
    assert non_alpha_fraction("a1 b2") == 0.5
    assert non_alpha_fraction("12 34 !!") == 1.0
    assert non_alpha_fraction("   ") == 1.0
    assert non_alpha_fraction("Ünï ꙮ") == 0.0  # letters of any script count as letters


def test_duplicate_line_fraction():
    assert duplicate_line_fraction("a\nb\nc") == 0.0
    assert duplicate_line_fraction("menu\nmenu\nmenu\ntext") == 0.5
    assert duplicate_line_fraction("a\n\n\nb") == 0.0  # blank lines do not count
    assert duplicate_line_fraction("") == 0.0


def test_stopword_fraction():
    assert stopword_fraction(PROSE) > 0.3
    assert stopword_fraction("LaSrCoO3 TiO2 BaTiO3 perovskite oxide") == 0.0
    assert stopword_fraction("Der Bandabstand des Films ist größer") < 0.1


def spec(**kw):
    return {
        "min_chars": 10,
        "max_chars": None,
        "max_non_alpha_fraction": None,
        "max_duplicate_line_fraction": None,
        "language": None,
        **kw,
    }


def keeps(filters, text):
    return {name: keep(text) for name, keep in filters}


def test_each_filter_alone():
    assert keeps(build_filters(spec()), "short") == {"min_chars": False}
    assert keeps(build_filters(spec(max_chars=20)), PROSE)["max_chars"] is False
    assert keeps(build_filters(spec(max_non_alpha_fraction=0.3)), "1234567890 12345 abc") == {
        "min_chars": True,
        "max_non_alpha_fraction": False,
    }
    assert keeps(build_filters(spec(max_duplicate_line_fraction=0.3)), "same line\n" * 5 + PROSE) == {
        "min_chars": True,
        "max_duplicate_line_fraction": False,
    }
    lang = build_filters(spec(language={"code": "en", "min_stopword_fraction": 0.2}))
    assert keeps(lang, PROSE) == {"min_chars": True, "language_en": True}
    assert keeps(lang, "Der Bandabstand des Films ist größer als der des Kristalls") == {
        "min_chars": True,
        "language_en": False,
    }


def test_thresholds_are_bound_per_filter():
    """Each filter keeps its own threshold (no late-binding closure over a shared variable)."""
    filters = dict(build_filters(spec(max_non_alpha_fraction=0.9, max_duplicate_line_fraction=0.0)))
    half_digits = "abcde 12345 " * 3
    assert filters["max_non_alpha_fraction"](half_digits)
    assert not filters["max_duplicate_line_fraction"]("x\nx")


@pytest.mark.parametrize("text", [PROSE, "Ünïcödé façade — naïve café, 東京 ✓"])
def test_clean_text_is_idempotent(text):
    assert clean_text(clean_text(text)) == clean_text(text)
