"""Turn raw sources (or the generated corpus) into clean train/valid JSONL for one corpus.

Every later stage trusts this output, so problems in the raw data (broken JSON lines, invalid UTF-8,
duplicates, near-empty documents) are handled here once and counted in stats.json rather than
silently dropped. A document's split depends only on its own text, so adding documents to a corpus
never moves an existing document between train and valid.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import logging
import os
import re
import unicodedata
from pathlib import Path
from typing import Iterator

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

DEFAULTS = {"sources": None, "generated": None, "min_chars": 50, "valid_fraction": 0.05}
MAX_LOGGED_BAD_LINES = 5

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every C0/C1 control except \t and \n
_SPACES = re.compile(r"[ \t]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


# ---------------------------------------------------------------------------------------------
# spec


def normalise_spec(spec: dict) -> dict:
    """Fill defaults and reject a spec that cannot be prepared, naming the corpus."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ScaleDAGError(f"corpus spec: expected a dict with a non-empty 'name', got {spec!r}")
    name = spec["name"]
    unknown = set(spec) - set(DEFAULTS) - {"name"}
    if unknown:
        raise ScaleDAGError(f"corpus {name!r}: unknown spec keys {sorted(unknown)}")
    spec = {**DEFAULTS, **spec}
    if (spec["sources"] is None) == (spec["generated"] is None):
        raise ScaleDAGError(f"corpus {name!r}: set exactly one of 'sources' and 'generated'")
    if spec["sources"] is not None:
        if not isinstance(spec["sources"], list) or not spec["sources"]:
            raise ScaleDAGError(f"corpus {name!r}: 'sources' must be a non-empty list")
        sources = []
        for source in spec["sources"]:
            if isinstance(source, str):
                source = {"path": source}
            if not isinstance(source, dict) or not isinstance(source.get("path"), str):
                raise ScaleDAGError(f"corpus {name!r}: each source needs a 'path' glob, got {source!r}")
            sources.append({"text_field": "text", **source})
        spec["sources"] = sources
    else:
        generated = spec["generated"]
        if not (isinstance(generated, dict) and isinstance(generated.get("documents"), int)
                and isinstance(generated.get("seed"), int) and generated["documents"] > 0):
            raise ScaleDAGError(f"corpus {name!r}: 'generated' needs integer 'documents' > 0 and 'seed'")
    if not 0.0 < float(spec["valid_fraction"]) < 1.0:
        raise ScaleDAGError(f"corpus {name!r}: valid_fraction must be in (0, 1), got {spec['valid_fraction']}")
    if int(spec["min_chars"]) < 0:
        raise ScaleDAGError(f"corpus {name!r}: min_chars must be >= 0, got {spec['min_chars']}")
    return spec


# ---------------------------------------------------------------------------------------------
# reading


class Counters(dict):
    """Counts of everything skipped or repaired; ends up in stats.json."""

    def __missing__(self, key):
        return 0


def _decode(raw: bytes, counters: Counters) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        counters["invalid_utf8_documents"] += 1
        return raw.decode("utf-8", errors="replace")


def _jsonl_lines(path: Path) -> Iterator[bytes]:
    if path.name.endswith(".zst"):
        import zstandard

        with open(path, "rb") as fh:
            reader = zstandard.ZstdDecompressor().stream_reader(fh)
            yield from io.BufferedReader(reader, buffer_size=1 << 20)
    else:
        with open(path, "rb") as fh:
            yield from fh


def _read_jsonl(path: Path, text_field: str, counters: Counters) -> Iterator[str]:
    for lineno, raw in enumerate(_jsonl_lines(path), start=1):
        if not raw.strip():
            continue
        line = _decode(raw, counters)
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            counters["bad_json_lines"] += 1
            if counters["bad_json_lines"] <= MAX_LOGGED_BAD_LINES:
                log.warning("%s:%d: skipping a line that is not valid JSON", path, lineno)
            continue
        text = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            counters["missing_text_field"] += 1
            if counters["missing_text_field"] <= MAX_LOGGED_BAD_LINES:
                log.warning("%s:%d: skipping a record without a string %r field", path, lineno, text_field)
            continue
        yield text


def read_source(source: dict, counters: Counters) -> Iterator[str]:
    """Yield raw documents from every file a source glob matches, in sorted path order."""
    pattern = source["path"]
    paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
    if not paths:
        raise ScaleDAGError(f"source {pattern!r}: the glob matches no file (relative to {os.getcwd()})")
    for name in paths:
        path = Path(name)
        if path.name.endswith(".txt"):
            yield _decode(path.read_bytes(), counters)
        elif path.name.endswith((".jsonl", ".jsonl.zst")):
            yield from _read_jsonl(path, source["text_field"], counters)
        else:
            raise ScaleDAGError(f"source {pattern!r}: {path} is not .txt, .jsonl or .jsonl.zst")


# ---------------------------------------------------------------------------------------------
# cleaning, de-duplication, split


def clean_text(text: str) -> str:
    """Canonical form every later stage sees: NFC, no control characters, tidy whitespace."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):  # lone surrogates from JSON escapes
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def dedup_key(text: str) -> bytes:
    """Equal for documents differing only in case and whitespace."""
    return hashlib.sha1(" ".join(text.lower().split()).encode("utf-8")).digest()


def split_of(text: str, valid_fraction: float) -> str:
    """'valid' or 'train' from the text's own hash, so it never changes as the corpus grows."""
    position = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return "valid" if position < valid_fraction else "train"


# ---------------------------------------------------------------------------------------------
# the stage


def _sources(spec: dict, counters: Counters) -> Iterator[tuple[str, Iterator[str]]]:
    """(label, raw documents) per source; the generated corpus is one source."""
    if spec["generated"] is not None:
        from workflow.synthetic import generate_documents

        documents, seed = spec["generated"]["documents"], spec["generated"]["seed"]
        yield f"generated(documents={documents}, seed={seed})", iter(generate_documents(documents, seed))
        return
    for source in spec["sources"]:
        yield source["path"], read_source(source, counters)


def prepare_corpus(spec: dict, out_dir: str | os.PathLike, progress_every: int = 10_000) -> dict:
    """Read, clean, de-duplicate and split one corpus; write train/valid JSONL and stats.json."""
    spec = normalise_spec(spec)
    name, out_dir = spec["name"], Path(out_dir)
    min_chars, valid_fraction = int(spec["min_chars"]), float(spec["valid_fraction"])
    counters, per_source = Counters(), {}
    seen: set[bytes] = set()
    splits = {s: {"documents": 0, "chars": 0} for s in ("train", "valid")}
    documents_read = 0

    with atomic_path(out_dir / "train.jsonl") as train_tmp, atomic_path(out_dir / "valid.jsonl") as valid_tmp, \
            open(train_tmp, "w", encoding="utf-8") as train_fh, open(valid_tmp, "w", encoding="utf-8") as valid_fh:
        writers = {"train": train_fh, "valid": valid_fh}
        for label, documents in _sources(spec, counters):
            source_stats = per_source[label] = {"documents_read": 0, "documents_nonempty": 0, "documents_kept": 0}
            for raw in documents:
                documents_read += 1
                source_stats["documents_read"] += 1
                if progress_every and documents_read % progress_every == 0:
                    log.info("[%s] %d documents read, %d kept", name, documents_read,
                             splits["train"]["documents"] + splits["valid"]["documents"])
                text = clean_text(raw)
                if not text:
                    counters["dropped_empty"] += 1
                    continue
                source_stats["documents_nonempty"] += 1
                if len(text) < min_chars:
                    counters["dropped_too_short"] += 1
                    continue
                key = dedup_key(text)
                if key in seen:
                    counters["exact_duplicates"] += 1
                    continue
                seen.add(key)
                split = split_of(text, valid_fraction)
                writers[split].write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                splits[split]["documents"] += 1
                splits[split]["chars"] += len(text)
                source_stats["documents_kept"] += 1
            if source_stats["documents_nonempty"] == 0:
                raise ScaleDAGError(f"corpus {name!r}: source {label!r} has no non-empty document "
                                    f"({source_stats['documents_read']} read)")
        for split, counts in splits.items():
            if counts["documents"] == 0:
                kept = splits["train"]["documents"] + splits["valid"]["documents"]
                raise ScaleDAGError(
                    f"corpus {name!r}: the {split} split is empty ({kept} documents kept after cleaning; "
                    f"add documents or change valid_fraction={valid_fraction})")

    stats = {
        "corpus": name,
        "spec": spec,
        "documents_read": documents_read,
        "dropped": {"empty": counters["dropped_empty"], "too_short": counters["dropped_too_short"]},
        "exact_duplicates": counters["exact_duplicates"],
        "bad_json_lines": counters["bad_json_lines"],
        "missing_text_field": counters["missing_text_field"],
        "invalid_utf8_documents": counters["invalid_utf8_documents"],
        "splits": splits,
        "sources": per_source,
    }
    atomic_write_json(out_dir / "stats.json", stats)
    log.info("[%s] done: %d read, train %d docs / %d chars, valid %d docs / %d chars", name, documents_read,
             splits["train"]["documents"], splits["train"]["chars"],
             splits["valid"]["documents"], splits["valid"]["chars"])
    return stats


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the corpus spec as a JSON object")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--progress-every", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as exc:
        raise ScaleDAGError(f"--spec: not valid JSON ({exc})") from None
    prepare_corpus(spec, args.out_dir, progress_every=args.progress_every)


if __name__ == "__main__":
    main()
