"""A corpus spec (config `corpora.<name>`) checked and filled with defaults, without reading data.

Kept apart from `workflow.data.corpus` (the preparation, which needs numpy and datasketch) because
config validation checks every corpus spec at each `snakemake` start; `workflow.data.corpus`
re-exports these names.
"""

from __future__ import annotations

from workflow import schema
from workflow.data.sources import source_kind, source_label, with_defaults
from workflow.errors import ScaleDAGError

# The defaults are the schema's ($defs corpus, near_dedup, source, language): a spec from config.yaml
# arrives filled at load; one written by hand (tests, `python -m workflow.data.corpus`) is filled here.
NEAR_DEDUP_DEFAULTS = schema.defaults("near_dedup")
DEFAULTS = {"sources": None, "generated": None, "language": None, **schema.defaults("corpus")}
SOURCE_KEYS = {
    "path",
    "url",
    "sha256",
    "hf_dataset",
    "config",
    "split",
    "revision",
    "generated",
    "format",
    "text_field",
    "weight",
    "max_documents",
    "tag",
}


def _normalise_source(name: str, source) -> dict:
    if isinstance(source, str):
        source = {"path": source}
    if not isinstance(source, dict):
        raise ScaleDAGError(f"corpus {name!r}: each source must be a mapping, got {source!r}")
    unknown = set(source) - SOURCE_KEYS
    if unknown:
        raise ScaleDAGError(f"corpus {name!r}: source {source!r} has unknown keys {sorted(unknown)}")
    source = with_defaults(source)  # a copy: the caller's stays as written
    try:
        kind = source_kind(source)
    except ScaleDAGError as exc:
        raise ScaleDAGError(f"corpus {name!r}: {exc}") from None
    if kind == "generated":
        g = source["generated"]
        if not (
            isinstance(g, dict)
            and isinstance(g.get("documents"), int)
            and g["documents"] > 0
            and isinstance(g["seed"], int)
        ):
            raise ScaleDAGError(f"corpus {name!r}: 'generated' needs integer 'documents' > 0 and 'seed'")
        if g.get("only") and g["only"] not in g.get("languages", ()):
            raise ScaleDAGError(
                f"corpus {name!r}: generated.only: {g['only']!r} is not one of its languages {g.get('languages')}"
            )
    if kind == "url" and not source.get("sha256"):
        raise ScaleDAGError(f"corpus {name!r}: url source {source['url']!r} needs a sha256")
    weight = source["weight"]
    if not isinstance(weight, (int, float)) or weight <= 0:
        raise ScaleDAGError(f"corpus {name!r}: source {source_label(source)!r}: weight must be > 0, got {weight!r}")
    return source


def normalise_spec(spec: dict) -> dict:
    """Fill defaults and reject a spec that cannot be prepared, naming the corpus."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ScaleDAGError(f"corpus spec: expected a dict with a non-empty 'name', got {spec!r}")
    name = spec["name"]
    unknown = set(spec) - set(DEFAULTS) - {"name"}
    if unknown:
        raise ScaleDAGError(f"corpus {name!r}: unknown spec keys {sorted(unknown)}")
    spec = {**DEFAULTS, **{k: v for k, v in spec.items() if v is not None or k in ("language",)}}
    has_sources, has_generated = spec["sources"] is not None, spec["generated"] is not None
    if has_sources == has_generated:
        raise ScaleDAGError(f"corpus {name!r}: set exactly one of 'sources' and 'generated'")
    if has_generated:  # shorthand for a single generated source
        spec["sources"], spec["generated"] = [{"generated": spec["generated"]}], None
    if not isinstance(spec["sources"], list) or not spec["sources"]:
        raise ScaleDAGError(f"corpus {name!r}: 'sources' must be a non-empty list")
    spec["sources"] = [_normalise_source(name, s) for s in spec["sources"]]
    valid, test = float(spec["valid_fraction"]), float(spec["test_fraction"])
    if not (0.0 < valid < 1.0 and 0.0 < test < 1.0 and valid + test < 1.0):
        raise ScaleDAGError(
            f"corpus {name!r}: valid_fraction ({valid}) and test_fraction ({test}) must be in (0, 1) with a sum below 1"
        )
    if int(spec["min_chars"]) < 0:
        raise ScaleDAGError(f"corpus {name!r}: min_chars must be >= 0, got {spec['min_chars']}")
    if spec["near_dedup"] is not False:  # {} (the schema's default) is on, with every default
        near = spec["near_dedup"] = {**NEAR_DEDUP_DEFAULTS, **spec["near_dedup"]}
        if not 0.0 < float(near["threshold"]) <= 1.0:
            raise ScaleDAGError(f"corpus {name!r}: near_dedup.threshold must be in (0, 1], got {near['threshold']}")
    if spec["language"] and spec["language"].get("code") != "en":
        raise ScaleDAGError(f"corpus {name!r}: language.code: only 'en' (a stop-word check) is available")
    if spec["language"]:
        spec["language"] = {**schema.defaults("language"), **spec["language"]}
    return spec
