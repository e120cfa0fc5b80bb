"""The study map (docs/STUDIES.md) covers what the tiny DAG (shared `tiny_dag` run) wrote: every file under
results/tiny/<study>/figures/ or tables/ matches an output path of some row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.integration

MAP = REPO / "docs" / "STUDIES.md"


def map_patterns(text: str) -> list[str]:
    """The backticked paths of the map's output column (the second cell of each table row)."""
    patterns = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2:
            patterns += [p for p in re.findall(r"`([^`]+)`", cells[1]) if p.startswith("results/")]
    return patterns


def pattern_regex(pattern: str) -> re.Pattern:
    """`<scale>`, `<study>`, `<run>`, ... each stand for one path component."""
    return re.compile("[^/]+".join(re.escape(part) for part in re.split(r"<[^<>/]+>", pattern)) + r"\Z")


def unmapped(paths: list[str], patterns: list[str]) -> list[str]:
    """The paths (relative, `results/tiny/...`) that no pattern matches."""
    regexes = [pattern_regex(p) for p in patterns]
    return [p for p in paths if not any(rx.match(p) for rx in regexes)]


def figure_and_table_files(work: Path, scale: str = "tiny") -> list[str]:
    root = work / "results" / scale
    return sorted(
        p.relative_to(work).as_posix()
        for kind in ("figures", "tables")
        for d in root.glob(f"*/{kind}")
        for p in d.rglob("*")
        if p.is_file()
    )


def test_every_figure_and_table_the_tiny_dag_wrote_is_in_the_study_map(tiny_dag):
    files = figure_and_table_files(tiny_dag)
    assert files, f"the tiny DAG wrote nothing under {tiny_dag}/results/tiny/*/figures or tables"
    patterns = map_patterns(MAP.read_text())
    assert patterns, f"{MAP} has no output paths"
    missing = unmapped(files, patterns)
    assert not missing, (
        "figures/tables the tiny DAG wrote with no row in docs/STUDIES.md (add one: paper figure, "
        "output path, rule, function, config keys):\n  " + "\n  ".join(missing)
    )
