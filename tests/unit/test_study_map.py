"""docs/STUDIES.md, the study map: every rule, function and config key it names exists, the rule it names
writes the path it names, and every figure or table of the tiny DAG (a dry run, seconds) has a row. The
files the tiny DAG actually writes are checked by tests/integration/test_study_map_outputs.py."""

from __future__ import annotations

import importlib
import re

import pytest
import yaml

from conftest import REPO, snakemake

MAP = REPO / "docs" / "STUDIES.md"
COLUMNS = ("paper", "outputs", "rule", "functions", "keys")
TICKED = re.compile(r"`([^`]+)`")
RULE_HEAD = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)


def map_rows(text: str) -> list[dict]:
    """The map's table rows: section heading, paper cell, and the backticked items of the other cells."""
    rows, section = [], None
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if not line.startswith("|") or re.fullmatch(r"\|[\s|:-]+\|?", line.strip()):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].lower().startswith("paper figure"):
            continue  # header
        assert len(cells) == len(COLUMNS), f"STUDIES.md row has {len(cells)} cells, not {len(COLUMNS)}: {line}"
        row = {"section": section, "paper": cells[0], "line": line}
        for name, cell in zip(COLUMNS[1:], cells[1:]):
            row[name] = TICKED.findall(cell)
        rows.append(row)
    return rows


def rule_blocks() -> dict[str, tuple[str, str]]:
    """rule/checkpoint name -> (its file under rules/, the text of its definition)."""
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        heads = list(RULE_HEAD.finditer(text))
        for i, m in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            blocks[m.group(1)] = (f"rules/{smk.name}", text[m.start() : end])
    return blocks


def key_exists(node, parts: list[str]) -> bool:
    """Dotted config key in the parsed YAML; a `<name>` part stands for any child of that level."""
    if not parts:
        return True
    if not isinstance(node, dict):
        return False
    head, rest = parts[0], parts[1:]
    if head.startswith("<") and head.endswith(">"):
        return any(key_exists(child, rest) for child in node.values())
    return head in node and key_exists(node[head], rest)


ROWS = map_rows(MAP.read_text())
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
BLOCKS = rule_blocks()


def _ids(rows):
    return [f"{r['section'].split(':')[0]}:{(r['outputs'] or ['?'])[0].rsplit('/', 1)[-1]}" for r in rows]


def test_map_has_a_section_with_rows_for_every_study():
    sections = {r["section"] for r in ROWS}
    for study in CONFIG["studies"]:
        mine = [r for r in ROWS if r["section"] and r["section"].startswith(f"`{study}`")]
        assert mine, f"docs/STUDIES.md has no section `## `{study}`: ...` with rows (sections: {sorted(sections)})"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_row_is_complete(row):
    assert row["paper"], row["line"]
    for name in COLUMNS[1:]:
        assert row[name], f"empty {name} cell: {row['line']}"
    assert all(p.startswith("results/<scale>/") for p in row["outputs"]), row["outputs"]


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_rule_exists_in_its_file(row):
    files = [t for t in row["rule"] if t.startswith("rules/")]
    names = [t for t in row["rule"] if not t.startswith("rules/")]
    assert len(names) == 1 and len(files) == 1, f"rule cell must be `name` (`rules/x.smk`): {row['line']}"
    name, file = names[0], files[0]
    assert name in BLOCKS, f"no `rule {name}:` or `checkpoint {name}:` in rules/*.smk"
    assert BLOCKS[name][0] == file, f"rule {name} is defined in {BLOCKS[name][0]}, the map says {file}"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_functions_exist(row):
    for dotted in row["functions"]:
        module, _, attr = dotted.rpartition(".")
        assert module, f"not a dotted module.function: {dotted}"
        mod = importlib.import_module(module)
        assert callable(getattr(mod, attr, None)), f"{module} has no function {attr}"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_config_keys_exist(row):
    missing = [k for k in row["keys"] if not key_exists(CONFIG, k.split("."))]
    assert not missing, f"config.yaml has no {missing} ({row['line'][:80]}...)"


def pattern_regex(pattern: str) -> re.Pattern:
    """An output path of the map as a regex: each `<name>` placeholder is one path component."""
    return re.compile("[^/]+".join(re.escape(part) for part in re.split(r"<[^<>/]+>", pattern)) + r"\Z")


PATTERNS = {p: pattern_regex(p) for r in ROWS for p in r["outputs"]}


def dry_run_outputs(text: str) -> dict[str, str]:
    """Output path -> the rule of the job that writes it, from `snakemake -n` output."""
    outputs, rule = {}, None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint)\s+(\w+):", line)
        if m:
            rule = m.group(1)
        elif rule and line.startswith("    output: "):
            for path in line[len("    output: ") :].split(", "):
                outputs[path.strip()] = rule
    return outputs


@pytest.fixture(scope="module")
def tiny_outputs() -> dict[str, str]:
    """Every job's outputs in the tiny DAG (a dry run: seconds; checkpoints' later jobs are listed too)."""
    proc = snakemake("-n", "--forceall", "--config", "scale=tiny")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = dry_run_outputs(proc.stdout)
    assert outputs, proc.stdout[-2000:]
    return outputs


def test_every_figure_and_table_of_the_tiny_dag_has_a_row(tiny_outputs):
    """The dry-run twin of tests/integration/test_study_map_outputs.py (which checks the files written)."""
    ours = sorted(p for p in tiny_outputs if re.match(r"results/tiny/[^/]+/(figures|tables)/", p))
    assert ours, "the tiny dry run lists no figures/ or tables/ outputs"
    unmapped = [p for p in ours if not any(rx.match(p) for rx in PATTERNS.values())]
    assert not unmapped, f"figures/tables of the tiny DAG with no row in docs/STUDIES.md: {unmapped}"


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_the_named_rule_writes_the_output(row, tiny_outputs):
    """Each output path of a row is written, in the tiny DAG, by the row's rule and by no other. A rule
    with no job in the tiny DAG (e.g. downstream ones when ../shared/data is absent) is not checked."""
    rule = [t for t in row["rule"] if not t.startswith("rules/")][0]
    if rule not in set(tiny_outputs.values()):
        pytest.skip(f"rule {rule} has no job in this tiny DAG")
    for pattern in row["outputs"]:
        writers = {p: r for p, r in tiny_outputs.items() if PATTERNS[pattern].match(p)}
        assert writers, (
            f"{pattern}: no job of the tiny DAG writes a file of this pattern (rule {rule} writes "
            f"{sorted(p for p, r in tiny_outputs.items() if r == rule)[:8]})"
        )
        wrong = {p: r for p, r in writers.items() if r != rule}
        assert not wrong, f"{pattern}: the map says rule {rule}, the tiny DAG writes {wrong}"


def test_helpers():
    assert key_exists({"a": {"x": {"b": 1}, "y": {}}}, ["a", "<s>", "b"])
    assert not key_exists({"a": {"x": {"c": 1}}}, ["a", "<s>", "b"])
    rows = map_rows(
        "## `s`: t\n\n| Paper figure/table | Output | Rule | Function | Keys |\n|---|---|---|---|---|\n"
        "| Fig. 1 | `results/<scale>/s/figures/f.png` | `r` (`rules/r.smk`) | `m.f` | `a.b` |\n"
    )
    assert pattern_regex("results/<scale>/<study>/figures/f.png").match("results/tiny/matgpt/figures/f.png")
    assert not pattern_regex("results/<scale>/<study>/figures/f.png").match("results/tiny/a/b/figures/f.png")
    assert not pattern_regex("results/<scale>/s/tables/f.csv").match("results/tiny/s/tables/f.csv.bak")
    assert dry_run_outputs(
        "rule r:\n    input: x\n    output: a/b.csv, c.png\ncheckpoint c:\n    output: d.json\n"
    ) == {"a/b.csv": "r", "c.png": "r", "d.json": "c"}
    assert rows == [
        {
            "section": "`s`: t",
            "paper": "Fig. 1",
            "line": rows[0]["line"],
            "outputs": ["results/<scale>/s/figures/f.png"],
            "rule": ["r", "rules/r.smk"],
            "functions": ["m.f"],
            "keys": ["a.b"],
        }
    ]
