"""Render the config schema as a Markdown reference: docs/CONFIG.md.

Why it exists: `workflow/schemas/config.schema.yaml` is what config.yaml is validated against, so it
is the one complete list of keys, and every property there carries a `description`. A reference
written by hand would drift from it; this one is generated from it (dotted key, type, default,
allowed values, description), and tests/unit/test_config_reference.py fails when it is stale.

    python -m workflow.config_reference            # (re)write docs/CONFIG.md
    python -m workflow.config_reference --check    # exit 1 if docs/CONFIG.md is out of date

Key paths: `<name>` stands for any key of a map (additionalProperties / patternProperties), `[]`
for an array's items, and `{tiny,small,paper}` for sibling keys that share one schema.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from workflow.config import REPO_ROOT, SCHEMA_PATH
from workflow.errors import main_guard
from workflow.io import atomic_write_text

DOC_PATH = REPO_ROOT / "docs" / "CONFIG.md"
COMMAND = "python -m workflow.config_reference"
SOURCE = "workflow/schemas/config.schema.yaml"  # as the page names it (no absolute path: same text anywhere)
BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
BRANCHES = ("anyOf", "oneOf", "allOf")


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def resolve(schema: dict, root: dict) -> dict:
    """The schema with a local `$ref` ("#/$defs/x") replaced by its target; keys beside the
    `$ref` (a description, a default) win over the target's."""
    if "$ref" not in schema:
        return schema
    target = root
    for part in schema["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(target, root), **{k: v for k, v in schema.items() if k != "$ref"}}


# -- one table cell per column ---------------------------------------------------------------------


def literal(value) -> str:
    """A value as it would be written in config.yaml (YAML flow style)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    return value if isinstance(value, str) else json.dumps(value)


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else "string"


def type_text(schema: dict, root: dict) -> str:
    """'integer ≥ 1', 'number > 0, ≤ 1', 'array of string', '`false` or object', ..."""
    s = resolve(schema, root)
    if "const" in s:
        return f"`{literal(s['const'])}`"
    if "type" not in s and "enum" not in s:  # alternatives that are types (not extra constraints)
        for key in ("anyOf", "oneOf"):
            alternatives = [t for t in dict.fromkeys(type_text(b, root) for b in s.get(key, [])) if t != "any"]
            if alternatives:
                return " or ".join(alternatives)
    if "type" in s:
        base = " or ".join(s["type"]) if isinstance(s["type"], list) else s["type"]
    elif "enum" in s:
        base = " or ".join(dict.fromkeys(_json_type(v) for v in s["enum"]))
    else:
        base = "object" if "properties" in s or "additionalProperties" in s else "any"
    if base == "array" and isinstance(s.get("items"), dict):
        item = type_text(s["items"], root)
        base = f"array of ({item})" if " " in item else f"array of {item}"
    bounds = ", ".join(f"{sign} {s[key]:g}" for key, sign in BOUNDS if key in s)
    return f"{base} {bounds}" if bounds else base


def values_text(schema: dict, root: dict) -> str:
    """The allowed values: the enum, or its items' enum for an array."""
    s = resolve(schema, root)
    items = resolve(s["items"], root) if isinstance(s.get("items"), dict) else {}
    enum = s.get("enum", items.get("enum", []))
    return ", ".join(cell(literal(v), code=True) for v in enum)


def cell(text: str, code: bool = False) -> str:
    """Safe inside a Markdown table: one line, no bare pipe, and (outside a code span) no `<word>`
    taken for an HTML tag."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return f"`{text}`" if code else re.sub(r"<(?=[A-Za-z/!])", r"\\<", text)


# -- the walk ----------------------------------------------------------------------------------------


def _grouped(properties: dict) -> list[tuple[list[str], dict]]:
    """Consecutive properties with the same schema become one group (e.g. tiny, small, paper)."""
    groups: list[tuple[list[str], dict]] = []
    for name, sub in properties.items():
        if groups and groups[-1][1] == sub:
            groups[-1][0].append(name)
        else:
            groups.append(([name], sub))
    return groups


def _has_keys(schema: dict, root: dict) -> bool:
    s = resolve(schema, root)
    return bool(
        s.get("properties")
        or s.get("patternProperties")
        or isinstance(s.get("additionalProperties"), dict)
        or any(_has_keys(b, root) for key in BRANCHES for b in s.get(key, []))
    )


def rows(schema: dict, root: dict, path: str, required: bool = False):
    """(dotted path, resolved schema, required) for a key and everything below it, depth first."""
    s = resolve(schema, root)
    yield path, s, required
    yield from _child_rows(s, root, path)


def _child_rows(s: dict, root: dict, path: str):
    required = set(s.get("required", []))
    for names, sub in _grouped(s.get("properties", {})):
        key = names[0] if len(names) == 1 else "{" + ",".join(names) + "}"
        yield from rows(sub, root, f"{path}.{key}", bool(required & set(names)))
    for sub in [*s.get("patternProperties", {}).values(), s.get("additionalProperties")]:
        if isinstance(sub, dict):
            yield from rows(sub, root, f"{path}.<name>")
    if isinstance(s.get("items"), dict) and _has_keys(s["items"], root):
        yield from rows(s["items"], root, f"{path}[]")
    for key in BRANCHES:  # alternatives (e.g. `false` or an object): their keys, under the same path
        for branch in s.get(key, []):
            yield from _child_rows(resolve(branch, root), root, path)


# -- the page ----------------------------------------------------------------------------------------


def render(schema: dict, source: str = SOURCE) -> str:
    """The whole reference: one section per top-level key, one table row per key below it."""
    top = schema["properties"]
    required = set(schema.get("required", []))
    lines = [
        "# Config reference",
        "",
        f"_Generated from `{source}` by `{COMMAND}`: edit the schema, then rerun the command "
        "(`--check` tells whether this file is stale)._",
        "",
        f"{schema.get('description', 'The config')}: validated against the schema when the workflow loads "
        "(`workflow/config.py`), which also fills in the defaults below. Any key can be overridden on the "
        "command line, e.g. `snakemake -n --config scale=paper`.",
        "",
        "Key paths: `<name>` is any key of a map, `[]` an array's items, and `{a,b}` the same schema under each "
        "of the keys a and b. Keys are given with their type, whether they are required (within their parent), "
        "the schema's default and the allowed values.",
        "",
        *[f"- [`{name}`](#{name.lower()})" for name in top],
    ]
    for name, sub in top.items():
        lines += [
            "",
            f"## `{name}`",
            "",
            "| Key | Type | Required | Default | Values | Description |",
            "|---|---|---|---|---|---|",
        ]
        seen = set()
        for path, s, req in rows(sub, schema, name, name in required):
            if path in seen:  # the same key in two alternatives of a oneOf
                continue
            seen.add(path)
            default = cell(literal(s["default"]), code=True) if "default" in s else ""
            cells = [
                cell(path, code=True),
                cell(type_text(s, schema)),
                "yes" if req else "",
                default,
                values_text(s, schema),
                cell(s.get("description", "")),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@main_guard
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DOC_PATH), help="the Markdown file to write or check (docs/CONFIG.md)")
    parser.add_argument("--schema", default=str(SCHEMA_PATH), help="the JSON schema (YAML) to render")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if --out differs from what would be written"
    )
    args = parser.parse_args(argv)
    text = render(load_schema(args.schema), SOURCE if Path(args.schema).resolve() == SCHEMA_PATH else args.schema)
    out = Path(args.out)
    if args.check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            again = COMMAND if out.resolve() == DOC_PATH.resolve() else f"{COMMAND} --out {args.out}"
            print(f"{_shown(out)} is stale: run `{again}` to regenerate it", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(out, text)
    print(f"wrote {_shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
