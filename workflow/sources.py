"""Raw documents from every kind of source a corpus may list.

A source is a dict with exactly one of:
  path         a glob of .txt (one document per file), .jsonl / .jsonl.gz / .jsonl.zst, .parquet
               files, or arXiv listing files (`format: arxiv-listing`, .md or a .tar.gz of them);
  url          one file of those formats, with its `sha256`, fetched once into the download cache;
  hf_dataset   a Hugging Face dataset by name (`config`, `split`, `revision`), streamed;
  generated    the project's own generated corpus ({documents, seed}).
`text_field` names the JSON/parquet/HF field holding the text. Relative paths are taken from the
repository root (workflow.config.input_path). Damaged input is repaired or skipped and counted in
`counters`, never silently lost; a source that yields nothing is an error naming it.
"""
from __future__ import annotations

import glob
import gzip
import io
import json
import logging
import os
import re
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

from workflow.errors import ScaleDAGError

log = logging.getLogger(__name__)

KINDS = ("path", "url", "hf_dataset", "generated")
FORMATS = ("auto", "txt", "jsonl", "parquet", "arxiv-listing")
MAX_LOGGED_BAD_LINES = 5


class Counters(dict):
    """Counts of everything skipped or repaired (ends up in stats.json), plus a few examples."""

    def __missing__(self, key):
        return 0

    def note(self, key: str, where: str, message: str) -> None:
        self[key] += 1
        if self[key] <= MAX_LOGGED_BAD_LINES:
            self.setdefault(f"{key}_examples", []).append(where)
            log.warning("%s: %s", where, message)


def source_kind(source: dict) -> str:
    kinds = [k for k in KINDS if k in source]
    if len(kinds) != 1:
        raise ScaleDAGError(f"source {source!r}: set exactly one of {list(KINDS)}")
    return kinds[0]


def source_label(source: dict) -> str:
    kind = source_kind(source)
    if kind == "generated":
        g = source["generated"]
        return f"generated(documents={g['documents']}, seed={g.get('seed', 0)})"
    return source[kind] if kind != "hf_dataset" else f"hf:{source['hf_dataset']}"


def decode(raw: bytes, counters: Counters) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        counters["invalid_utf8_documents"] += 1
        return raw.decode("utf-8", errors="replace")


def file_format(name: str, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    if name.endswith(".txt"):
        return "txt"
    if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith("_origin.md"):
        return "arxiv-listing"
    raise ScaleDAGError(f"{name}: cannot tell the format from the name; expected .txt, .jsonl[.gz|.zst], "
                        f".parquet or set format: arxiv-listing")


# -- per-format readers ---------------------------------------------------------------------------


def _binary_lines(path: Path) -> Iterator[bytes]:
    if path.name.endswith(".zst"):
        import zstandard

        with open(path, "rb") as fh:
            yield from io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(fh), buffer_size=1 << 20)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            yield from fh
    else:
        with open(path, "rb") as fh:
            yield from fh


def read_jsonl(path: Path, text_field: str, counters: Counters) -> Iterator[str]:
    try:
        for lineno, raw in enumerate(_binary_lines(path), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(decode(raw, counters))
            except json.JSONDecodeError:
                counters.note("bad_json_lines", f"{path}:{lineno}", "skipping a line that is not valid JSON")
                continue
            text = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                counters.note("missing_text_field", f"{path}:{lineno}",
                              f"skipping a record without a string {text_field!r} field")
                continue
            yield text
    except (EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ScaleDAGError(f"{path}: truncated or corrupt compressed file ({exc})") from None
    except Exception as exc:  # zstandard.ZstdError has no common base we can import lazily
        if type(exc).__name__ == "ZstdError":
            raise ScaleDAGError(f"{path}: truncated or corrupt compressed file ({exc})") from None
        raise


def read_parquet(path: Path, text_field: str, counters: Counters) -> Iterator[str]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        if text_field not in pf.schema_arrow.names:
            raise ScaleDAGError(f"{path}: no column {text_field!r}; columns are {pf.schema_arrow.names}")
        for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                if not isinstance(text, str):
                    counters.note("missing_text_field", str(path), f"skipping a row with a null {text_field!r}")
                    continue
                yield text
    except (pyarrow.ArrowException, OSError) as exc:
        raise ScaleDAGError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None


_ARXIV_ENTRY = re.compile(r"^\[\d+\]\. \[\*(?P<title>.*)\*\]\(https?://arxiv\.org/abs/(?P<id>[^\s\")]+)", re.M)
_ARXIV_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.S)
_ARXIV_VERSION = re.compile(r"v\d+$")


def parse_arxiv_listing(text: str) -> Iterator[tuple[str, str]]:
    """(arXiv id without version, "title\\n\\nabstract") for each entry of one daily RSS listing."""
    matches = list(_ARXIV_ENTRY.finditer(text))
    for match, following in zip(matches, matches[1:] + [None]):
        body = text[match.end():following.start() if following else len(text)]
        lines = [line.strip() for line in body.split("\n")[1:]]  # [0] is the rest of the header line
        paragraphs = [line for line in lines if line]
        if len(paragraphs) < 2:  # title and authors but no abstract
            abstract = ""
        else:
            abstract = " ".join(paragraphs[1:])  # paragraphs[0] is the author list
            abstract = _ARXIV_PREFIX.sub("", abstract).strip()
            if abstract.startswith("Abstract:"):
                abstract = abstract[len("Abstract:"):].strip()
        yield _ARXIV_VERSION.sub("", match.group("id")), f"{match.group('title').strip()}\n\n{abstract}".strip()


def _arxiv_files(path: Path, counters: Counters) -> Iterator[tuple[str, str]]:
    """(name, text) of each listing file, sorted by name (= date), from a .md or a .tar.gz."""
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path, "r:*") as tar:
                members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".md")),
                                 key=lambda m: m.name)
                for member in members:
                    yield f"{path}:{member.name}", decode(tar.extractfile(member).read(), counters)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ScaleDAGError(f"{path}: not a readable tar archive ({exc})") from None
    else:
        yield str(path), decode(path.read_bytes(), counters)


def read_arxiv_listing(paths: Iterable[Path], counters: Counters) -> Iterator[str]:
    """Title + abstract per paper; a paper announced again (replace, cross-list) is kept once."""
    seen: set[str] = set()
    for path in paths:
        for name, text in _arxiv_files(path, counters):
            entries = 0
            for arxiv_id, document in parse_arxiv_listing(text):
                entries += 1
                counters["arxiv_entries"] += 1
                if arxiv_id in seen:
                    counters["arxiv_repeated_ids"] += 1
                    continue
                seen.add(arxiv_id)
                yield document
            if entries == 0 and text.strip():
                counters.note("arxiv_files_without_entries", name, "no arXiv listing entries found")


def read_files(paths: list[Path], fmt: str, text_field: str, counters: Counters) -> Iterator[str]:
    if fmt == "arxiv-listing":
        yield from read_arxiv_listing(paths, counters)
        return
    for path in paths:
        kind = file_format(path.name, fmt)
        if kind == "txt":
            yield decode(path.read_bytes(), counters)
        elif kind == "jsonl":
            yield from read_jsonl(path, text_field, counters)
        elif kind == "parquet":
            yield from read_parquet(path, text_field, counters)
        else:  # arxiv files picked up by an auto glob
            yield from read_arxiv_listing([path], counters)


def read_hf_dataset(source: dict, counters: Counters) -> Iterator[str]:
    """Stream a Hugging Face dataset (needs network access or a populated HF cache)."""
    name, field = source["hf_dataset"], source.get("text_field", "text")
    try:
        import datasets

        ds = datasets.load_dataset(name, source.get("config"), split=source.get("split", "train"),
                                   revision=source.get("revision"), streaming=True)
        for i, record in enumerate(ds):
            text = record.get(field)
            if not isinstance(text, str):
                counters.note("missing_text_field", f"hf:{name}[{i}]", f"no string {field!r} field")
                continue
            yield text
    except ScaleDAGError:
        raise
    except Exception as exc:  # network, auth, unknown dataset: one line naming the dataset
        raise ScaleDAGError(f"source hf:{name}: cannot load ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def read_source(source: dict, counters: Counters, download_dir: str | os.PathLike | None = None) -> Iterator[str]:
    """Raw documents of one source, in a deterministic order."""
    from workflow.config import input_path

    kind = source_kind(source)
    fmt, field = source.get("format", "auto"), source.get("text_field", "text")
    if kind == "generated":
        from workflow.synthetic import generate_documents

        g = source["generated"]
        yield from generate_documents(int(g["documents"]), int(g.get("seed", 0)))
    elif kind == "hf_dataset":
        yield from read_hf_dataset(source, counters)
    elif kind == "url":
        from workflow.download import download

        if not source.get("sha256"):
            raise ScaleDAGError(f"source {source['url']}: a url source needs its sha256")
        if download_dir is None:
            raise ScaleDAGError(f"source {source['url']}: no download cache directory given")
        path = download(source["url"], source["sha256"], download_dir)
        yield from read_files([path], file_format(source["url"], fmt) if fmt == "auto" else fmt, field, counters)
    else:
        pattern = str(input_path(source["path"]))
        paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not paths:
            raise ScaleDAGError(f"source {source['path']!r}: the glob matches no file (looked for {pattern})")
        yield from read_files(paths, fmt, field, counters)
