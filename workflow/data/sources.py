"""Raw documents from every kind of source a corpus may list.

A source is a dict with exactly one of:
  path         a glob of .txt (one document per file), .jsonl / .jsonl.gz / .jsonl.zst, .parquet
               files, or arXiv listing files (`format: arxiv-listing`, .md or a .tar.gz of them);
  url          one file of those formats, with its `sha256`, fetched once into the download cache;
  hf_dataset   a Hugging Face dataset by name (`config`, `split`, `revision`), streamed;
  generated    the project's own generated corpus ({documents, seed, generator}: English text
               of workflow/data/synthetic.py, or coding sequences of workflow/data/genes.py).
FASTA files (.fasta/.fa/.fna/.ffn, optionally .gz) give one document per clean coding sequence.
`text_field` names the JSON/parquet/HF field holding the text. Relative paths are taken from the
repository root (workflow.config.input_path). A damaged line or record is repaired or skipped and
counted in `counters` (with a few `file:line` examples), never silently lost; a damaged file (a
compressed stream, parquet file or tar archive that ends early or fails its checks) is an error
naming it, because reading on would quietly shorten the corpus; so is a file none of whose records
has the text field, since that is a wrong `text_field`, not damaged data.
"""

from __future__ import annotations

import glob
import gzip
import json
import logging
import os
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from workflow import schema
from workflow.data.download import download
from workflow.data.genes import FASTA_SUFFIXES, generate_genes, read_fasta
from workflow.data.languages import generate_multilingual
from workflow.data.synthetic import generate_documents
from workflow.errors import ScaleDAGError
from workflow.layout import input_path

log = logging.getLogger(__name__)

KINDS = ("path", "url", "hf_dataset", "generated")
FORMATS = ("auto", "txt", "jsonl", "parquet", "arxiv-listing", "fasta")
MAX_LOGGED_BAD_LINES = 5
MAX_FIELDS_SHOWN = 10
READ_SIZE = 1 << 18


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


def with_defaults(source: dict) -> dict:
    """A source with the schema's defaults ($defs.source, $defs.generated) under what it sets: a
    source from config arrives filled, one written by hand (tests, the corpus CLI) gets them here."""
    source = {**schema.defaults("source"), **source}
    if isinstance(source.get("generated"), dict):
        source["generated"] = {**schema.defaults("generated"), **source["generated"]}
    return source


def source_label(source: dict) -> str:
    kind = source_kind(source)
    if kind == "generated":
        g = with_defaults(source)["generated"]
        what = "" if g["generator"] == "text" else f"{g['generator']}, "
        if g.get("only"):
            what += f"only={g['only']}, "
        return f"generated({what}documents={g['documents']}, seed={g['seed']})"
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
    if name.lower().endswith(FASTA_SUFFIXES):
        return "fasta"
    raise ScaleDAGError(
        f"{name}: cannot tell the format from the name; expected .txt, .jsonl[.gz|.zst], "
        f".parquet, .fasta[.gz] or set format: arxiv-listing"
    )


# -- per-format readers ---------------------------------------------------------------------------


def damaged(path, kind: str, reason) -> ScaleDAGError:
    """The one error for a file that ends early or fails its own checks, whatever its format."""
    if isinstance(reason, BaseException):
        reason = str(reason).splitlines()[0] if str(reason).strip() else type(reason).__name__
    return ScaleDAGError(f"{path}: truncated or corrupt {kind} file ({reason})")


class FieldTally:
    """Records with and without a string text field, and the fields the others had: a file where
    no record has it was read with the wrong `text_field`, which must not pass as an empty file."""

    def __init__(self, where: str, field: str, fields: Iterable[str] = ()):
        self.where, self.field, self.fields = where, field, set(fields)
        self.records = self.texts = 0

    def text(self, value, fields: Iterable[str] = ()) -> str | None:
        self.records += 1
        if isinstance(value, str):
            self.texts += 1
            return value
        if len(self.fields) < MAX_FIELDS_SHOWN * 10:  # enough to name them, bounded for wide records
            self.fields.update(map(str, fields))
        return None

    def check(self) -> None:
        if self.texts or not self.records:
            return
        names = sorted(self.fields)
        seen = ", ".join(names[:MAX_FIELDS_SHOWN]) + (", ..." if len(names) > MAX_FIELDS_SHOWN else "")
        field = repr(self.field)
        what = f"have no string in field {field}" if self.field in self.fields else f"lack field {field}"
        raise ScaleDAGError(f"{self.where}: {self.records} records {what} (fields seen: {seen or 'none'})")


def _plain_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_SIZE):
            yield chunk


def _gzip_chunks(path: Path) -> Iterator[bytes]:
    with gzip.open(path, "rb") as fh:
        try:
            while chunk := fh.read(READ_SIZE):
                yield chunk
        except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise damaged(path, "gzip", exc) from None


def _zstd_chunks(path: Path) -> Iterator[bytes]:
    """Every frame's bytes. zstandard's stream reader takes input that stops inside a frame for a
    clean end, so here each frame gets its own decompressobj and a file that ends with one still
    open is an error, as a cut gzip stream is."""
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    frame, inside = dctx.decompressobj(), False
    with open(path, "rb") as fh:
        try:
            while data := fh.read(READ_SIZE):
                while data:  # a read may end one frame and start the next (concatenated .zst files)
                    inside = True
                    yield frame.decompress(data)
                    data = b""
                    if frame.eof:
                        data, frame, inside = frame.unused_data, dctx.decompressobj(), False
        except zstandard.ZstdError as exc:
            raise damaged(path, "zstd", exc) from None
    if inside:
        raise damaged(path, "zstd", "the file ends inside a zstd frame")


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (with their newline) of a byte stream, without copying a long line once per chunk."""
    pending: list[bytes] = []
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            pending.append(chunk[start : end + 1])
            yield b"".join(pending)
            pending, start = [], end + 1
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield b"".join(pending)


def _binary_lines(path: Path) -> Iterator[bytes]:
    if path.name.endswith(".zst"):
        return _split_lines(_zstd_chunks(path))
    if path.name.endswith(".gz"):
        return _split_lines(_gzip_chunks(path))
    return _split_lines(_plain_chunks(path))


def _json_record(raw: bytes, counters: Counters, where: str) -> dict | None:
    """The line's JSON object, or None with the line counted as bad: a line can fail in more ways
    than JSONDecodeError (nesting too deep for the parser, a bare number or list) and none may stop
    the corpus."""
    try:
        record = json.loads(decode(raw, counters))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = str(exc).splitlines()[0] if str(exc) else "no detail"
        counters.note(
            "bad_json_lines", where, f"skipping a line that is not valid JSON ({type(exc).__name__}: {reason})"
        )
        return None
    if not isinstance(record, dict):
        counters.note(
            "bad_json_lines", where, f"skipping a line that is JSON but not an object ({type(record).__name__})"
        )
        return None
    return record


def read_jsonl(path: Path, text_field: str, counters: Counters) -> Iterator[str]:
    tally, lines, first_bad = FieldTally(str(path), text_field), 0, None
    for lineno, raw in enumerate(_binary_lines(path), start=1):
        if not raw.strip():
            continue
        lines += 1
        record = _json_record(raw, counters, f"{path}:{lineno}")
        if record is None:
            first_bad = first_bad or lineno
            continue
        text = tally.text(record.get(text_field), record)
        if text is None:
            counters.note(
                "missing_text_field", f"{path}:{lineno}", f"skipping a record without a string {text_field!r} field"
            )
            continue
        yield text
    if lines and not tally.records:
        raise ScaleDAGError(
            f"{path}: none of its {lines} lines is a JSON object (the first bad one is "
            f"{path}:{first_bad}); expected one JSON object per line"
        )
    tally.check()


def read_parquet(path: Path, text_field: str, counters: Counters) -> Iterator[str]:
    import pyarrow  # pyarrow: not at DAG parse (config checks specs with this module)
    import pyarrow.parquet as pq

    try:
        # Page checksums catch a corrupt page where the writer stored them; a cut file has no footer.
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        names = pf.schema_arrow.names
        if text_field not in names:
            raise ScaleDAGError(f"{path}: no column {text_field!r}; columns are {names}")
        tally = FieldTally(str(path), text_field, names)
        for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                if tally.text(text) is None:
                    counters.note("missing_text_field", str(path), f"skipping a row with a null {text_field!r}")
                    continue
                yield text
    except (pyarrow.ArrowException, OSError) as exc:
        raise damaged(path, "parquet", exc) from None
    tally.check()


_ARXIV_ENTRY = re.compile(r"^\[\d+\]\. \[\*(?P<title>.*)\*\]\(https?://arxiv\.org/abs/(?P<id>[^\s\")]+)", re.M)
_ARXIV_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.S)
_ARXIV_VERSION = re.compile(r"v\d+$")


def parse_arxiv_listing(text: str) -> Iterator[tuple[str, str]]:
    """(arXiv id without version, "title\\n\\nabstract") for each entry of one daily RSS listing."""
    matches = list(_ARXIV_ENTRY.finditer(text))
    for match, following in zip(matches, matches[1:] + [None]):
        body = text[match.end() : following.start() if following else len(text)]
        lines = [line.strip() for line in body.split("\n")[1:]]  # [0] is the rest of the header line
        paragraphs = [line for line in lines if line]
        if len(paragraphs) < 2:  # title and authors but no abstract
            abstract = ""
        else:
            abstract = " ".join(paragraphs[1:])  # paragraphs[0] is the author list
            abstract = _ARXIV_PREFIX.sub("", abstract).strip()
            if abstract.startswith("Abstract:"):
                abstract = abstract[len("Abstract:") :].strip()
        yield _ARXIV_VERSION.sub("", match.group("id")), f"{match.group('title').strip()}\n\n{abstract}".strip()


def _check_tar_end(tar: tarfile.TarFile, path: Path) -> None:
    """tarfile takes a missing end or a damaged header for the end of the archive, and a gzip
    checksum sits past that end: read both, so that a cut archive is not taken for a shorter one."""
    tar.fileobj.seek(tar.offset)
    if tar.fileobj.read(tarfile.BLOCKSIZE) != tarfile.NUL * tarfile.BLOCKSIZE:
        raise damaged(path, "tar", f"no end-of-archive block at byte {tar.offset} of the archive")
    while tar.fileobj.read(READ_SIZE):
        pass


def _arxiv_files(path: Path, counters: Counters) -> Iterator[tuple[str, str]]:
    """(name, text) of each listing file, sorted by name (= date), from a .md or a .tar.gz."""
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path, "r:*") as tar:
                members = sorted(
                    (m for m in tar.getmembers() if m.isfile() and m.name.endswith(".md")), key=lambda m: m.name
                )
                _check_tar_end(tar, path)
                for member in members:
                    yield f"{path}:{member.name}", decode(tar.extractfile(member).read(), counters)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise damaged(path, "tar", exc) from None
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
        elif kind == "fasta":
            yield from read_fasta(path, counters)
        else:  # arxiv files picked up by an auto glob
            yield from read_arxiv_listing([path], counters)


def read_hf_dataset(source: dict, counters: Counters) -> Iterator[str]:
    """Stream a Hugging Face dataset (needs network access or a populated HF cache)."""
    name, field = source["hf_dataset"], source["text_field"]
    try:
        import datasets  # datasets (pandas, pyarrow): not at DAG parse

        ds = datasets.load_dataset(
            name,
            source.get("config"),
            split=source["split"],
            revision=source.get("revision"),
            streaming=True,
        )
        tally = FieldTally(f"source hf:{name}", field)
        for i, record in enumerate(ds):
            text = tally.text(record.get(field), record)
            if text is None:
                counters.note("missing_text_field", f"hf:{name}[{i}]", f"no string {field!r} field")
                continue
            yield text
        tally.check()
    except ScaleDAGError:
        raise
    except Exception as exc:  # network, auth, unknown dataset: one line naming the dataset
        raise ScaleDAGError(
            f"source hf:{name}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None


def read_source(source: dict, counters: Counters, download_dir: str | os.PathLike | None = None) -> Iterator[str]:
    """Raw documents of one source, in a deterministic order."""
    source = with_defaults(source)
    kind = source_kind(source)
    fmt, field = source["format"], source["text_field"]  # a normalised source (workflow.data.spec)
    if kind == "generated":
        g = source["generated"]
        if g["generator"] == "genes":
            yield from generate_genes(int(g["documents"]), int(g["seed"]))
        elif g["generator"] == "multilingual":
            yield from generate_multilingual(int(g["documents"]), int(g["seed"]), tuple(g["languages"]), g.get("only"))
        else:
            yield from generate_documents(int(g["documents"]), int(g["seed"]))
    elif kind == "hf_dataset":
        yield from read_hf_dataset(source, counters)
    elif kind == "url":
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
            raise ScaleDAGError(
                f"source {source['path']!r}: the glob matches no file (looked for {pattern}); put the files there "
                "or configure the source as a `url` + `sha256` or an `hf_dataset`"
            )
        yield from read_files(paths, fmt, field, counters)
