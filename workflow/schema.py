"""The config schema (workflow/schemas/config.schema.yaml): the one place config defaults live.

Validation fills every `default:` into the config in place. A value the schema cannot fill there, a
rule's cluster resources when the rule has no entry under `resources:` at all, is read from the
same schema with `defaults("rule_resources")`, so no default is written twice.
"""

from __future__ import annotations

import functools
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


@functools.cache
def schema() -> dict:
    import yaml

    # Read at every DAG parse (config validation normalises each corpus): libyaml's loader takes
    # ~10 ms where the pure-Python one takes ~80.
    return yaml.load(SCHEMA_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def defaults(definition: str) -> dict:
    """`default:` of each property of `$defs.<definition>` (a fresh dict each call)."""
    props = schema()["$defs"][definition]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}
