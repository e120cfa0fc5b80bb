"""Every schema property is described, and docs/CONFIG.md is what workflow.config_reference renders."""

from __future__ import annotations

from conftest import REPO
from workflow.config import SCHEMA_PATH
from workflow.config_reference import COMMAND, load_schema, main, render, resolve

SKIP = ("if", "not")  # conditions and negations only mention keys; they define none


def undescribed(node, root: dict, path: str = "") -> list[str]:
    """Dotted paths of properties (and of map-value schemas) without a description, anywhere."""
    missing = []
    if isinstance(node, list):
        for item in node:
            missing += undescribed(item, root, path)
        return missing
    if not isinstance(node, dict):
        return missing
    for name, sub in (node.get("properties") or {}).items():
        where = f"{path}.{name}".lstrip(".")
        if not (isinstance(sub, dict) and str(sub.get("description", "")).strip()):
            missing.append(where)
        missing += undescribed(sub, root, where)
    for key in ("additionalProperties", "patternProperties"):
        value = node.get(key)
        subs = value.values() if key == "patternProperties" and isinstance(value, dict) else [value]
        for sub in subs:
            if isinstance(sub, dict):  # a map's values: described here or by the $ref target
                if not str(resolve(sub, root).get("description", "")).strip():
                    missing.append(f"{path}.<name>".lstrip("."))
                missing += undescribed(sub, root, f"{path}.<name>")
    for name, sub in (node.get("$defs") or {}).items():
        missing += undescribed(sub, root, f"$defs.{name}")
    for key, value in node.items():  # items, anyOf / oneOf / allOf branches, then: same key path
        if key not in ("properties", "additionalProperties", "patternProperties", "$defs", *SKIP):
            missing += undescribed(value, root, f"{path}[]" if key == "items" else path)
    return missing


def test_every_schema_property_has_a_description():
    schema = load_schema(SCHEMA_PATH)
    missing = undescribed(schema, schema)
    assert not missing, f"{len(missing)} schema properties have no description: {', '.join(missing)}"


def test_the_walk_finds_undescribed_properties():
    schema = {
        "properties": {
            "a": {"type": "object", "description": "x", "properties": {"b": {"type": "string"}}},
            "m": {"additionalProperties": {"$ref": "#/$defs/d"}, "description": "y"},
        },
        "$defs": {"d": {"properties": {"c": {"type": "integer"}}}},
    }
    # a $ref's target is checked once, where $defs defines it
    assert sorted(undescribed(schema, schema)) == ["$defs.d.c", "a.b", "m.<name>"]


def test_config_md_is_up_to_date():
    doc = REPO / "docs" / "CONFIG.md"
    assert doc.is_file(), f"docs/CONFIG.md is missing: run `{COMMAND}`"
    fresh = render(load_schema(SCHEMA_PATH))
    assert doc.read_text(encoding="utf-8") == fresh, f"docs/CONFIG.md is stale: run `{COMMAND}`"


def test_check_mode_fails_on_a_stale_copy(tmp_path, capsys):
    out = tmp_path / "CONFIG.md"
    assert main(["--check", "--out", str(out)]) == 1  # missing
    assert main(["--out", str(out)]) == 0
    assert main(["--check", "--out", str(out)]) == 0
    stale = out.read_text(encoding="utf-8").replace("which scale to run", "which scale to ran")
    out.write_text(stale, encoding="utf-8")
    assert main(["--check", "--out", str(out)]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # one line naming the file and the fix
    assert last.startswith(f"{out} is stale: run `{COMMAND} --out {out}`"), last


def test_render_is_deterministic_and_covers_every_top_level_key():
    schema = load_schema(SCHEMA_PATH)
    text = render(schema)
    assert text == render(load_schema(SCHEMA_PATH))
    assert text.splitlines()[2].startswith("_Generated from") and COMMAND in text.splitlines()[2]
    for key in schema["properties"]:
        assert f"\n## `{key}`\n" in text
    assert "| `scales.{tiny,mini,small,paper}.train.lr` | number > 0 | yes |" in text
    assert "| `corpora.<name>.sources[].weight` | number > 0 |" in text
