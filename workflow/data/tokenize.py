"""Encode prepared JSONL splits into Megatron indexed datasets (<prefix>.bin + <prefix>.idx).

Tokenising once, up front, keeps the training loop free of tokenizer work and lets Megatron's
GPTDataset memory-map the tokens. Two steps, so large corpora scatter over many jobs:

  encode  one shard = one contiguous byte range of each split file (a line belongs to the shard
          holding its first byte), so shards need no pre-splitting and merging them in order
          reproduces the file's order. Documents are encoded in batches on all the job's cores
          (tiktoken's Rust BPE when it is exact for the tokenizer, see workflow/data/fast_bpe.py, else the
          `tokenizers` library), streamed (memory is bounded by the batch), each ending with EOD.
  merge   concatenates the shards of each split with Megatron's `IndexedDatasetBuilder.add_index`
          and writes tokens/stats.json (documents and tokens per split next to the prepare stats).

The token dtype is the smallest that holds the vocabulary (uint16 below 65,500 ids, else int32).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import numpy

from workflow.data.fast_bpe import batch_encoder
from workflow.data.tokenizer import eod_id, load_tokenizer
from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path, atomic_write_json

SPLITS = ("train", "valid", "test")
BATCH_DOCUMENTS = 256


def shard_lines(path: str | os.PathLike, shard: int = 0, num_shards: int = 1) -> Iterator[tuple[int, bytes]]:
    """(end offset, line) for the lines whose first byte lies in this shard's byte range."""
    if not 0 <= shard < num_shards:
        raise ScaleDAGError(f"shard {shard} is not in [0, {num_shards})")
    size = os.path.getsize(path)
    start, end = size * shard // num_shards, size * (shard + 1) // num_shards
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                fh.readline()  # the line in progress belongs to the previous shard
        position = fh.tell()
        while position < end:
            line = fh.readline()
            if not line:
                break
            position += len(line)
            yield position, line


def token_dtype(vocab_size: int):
    """Megatron's DType.optimal_dtype, without importing Megatron where only the dtype is needed."""
    return numpy.uint16 if vocab_size < 65500 else numpy.int32


class Progress:
    """A text progress bar for logs: one line every `every` seconds and at the end."""

    def __init__(self, label: str, total: int, every: float = 10.0):
        self.label, self.total, self.every = label, max(total, 1), every
        self.t0 = self.last = time.time()

    def update(self, done: int, documents: int, tokens: int, final: bool = False) -> None:
        now = time.time()
        if not final and now - self.last < self.every:
            return
        self.last = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        elapsed = max(now - self.t0, 1e-9)
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        print(
            f"{self.label} [{bar:<30}] {frac:6.1%} {documents} docs {tokens} tokens "
            f"{done / elapsed / 1e6:.1f} MB/s {tokens / elapsed:.0f} tok/s eta {eta:.0f}s",
            flush=True,
        )


class DocumentEncoder(NamedTuple):
    """What encoding needs, loaded once: texts → id arrays ending in EOD, in the dataset's dtype."""

    encode: Callable[[list[str]], list[numpy.ndarray]]
    dtype: type
    engine: str


def load_encoder(tokenizer_path: str | os.PathLike) -> DocumentEncoder:
    tok = load_tokenizer(tokenizer_path)
    eod = eod_id(tok)
    dtype = token_dtype(tok.get_vocab_size())
    encode, engine = batch_encoder(tok)

    def encode_documents(texts: list[str]) -> list[numpy.ndarray]:
        """Runs on a worker thread: each document's ids with EOD appended."""
        documents = []
        for ids in encode(texts):
            document = numpy.empty(len(ids) + 1, dtype)
            document[:-1] = ids
            document[-1] = eod
            documents.append(document)
        return documents

    return DocumentEncoder(encode_documents, dtype, engine)


def encode_jsonl(
    jsonl_path: str | os.PathLike,
    tokenizer: str | os.PathLike | DocumentEncoder,
    out_prefix: str | os.PathLike,
    batch_documents: int = BATCH_DOCUMENTS,
    shard: int = 0,
    num_shards: int = 1,
    progress_every: float = 10.0,
    text_field: str = "text",
    threads: int | None = None,
) -> dict:
    """Write <out_prefix>.bin/.idx for one shard of a JSONL split; returns its document/token counts.
    `tokenizer` is a tokenizer.json path or an already loaded `DocumentEncoder` (several splits, one load)."""
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    jsonl_path = Path(jsonl_path)
    if not jsonl_path.is_file():
        raise ScaleDAGError(f"{jsonl_path}: no such file (expected a prepare_corpus split)")
    encoder = tokenizer if isinstance(tokenizer, DocumentEncoder) else load_encoder(tokenizer)
    encode_documents, dtype, engine = encoder
    threads = threads or available_cores()

    lines = shard_lines(jsonl_path, shard, num_shards)
    size = os.path.getsize(jsonl_path)
    progress = Progress(
        f"{jsonl_path.name} shard {shard}/{num_shards} ({engine}, {threads} threads)",
        size * (shard + 1) // num_shards - size * shard // num_shards,
        progress_every,
    )
    start = size * shard // num_shards
    documents = tokens = done = 0

    def parsed_batches():
        while batch := list(islice(lines, batch_documents)):
            texts = []
            for end, line in batch:
                try:
                    texts.append(json.loads(line)[text_field])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ScaleDAGError(
                        f"{jsonl_path}: the line ending at byte {end} is not a JSON object with a {text_field!r} field"
                    ) from None
            yield texts, batch[-1][0]

    out_prefix = str(out_prefix)
    # .bin is renamed first, then .idx: a complete-looking .idx always has its .bin.
    with atomic_path(out_prefix + ".idx") as idx_tmp:
        with atomic_path(out_prefix + ".bin") as bin_tmp, ThreadPoolExecutor(threads) as pool:
            builder = IndexedDatasetBuilder(str(bin_tmp), dtype=dtype)
            # Pipelined: worker threads encode batches (the GIL is released inside the Rust BPE) while
            # this thread parses the next ones and writes finished ones in order. At most 2 batches
            # per thread are in flight, so memory stays bounded by the batch size.
            in_flight: deque = deque()
            for texts, end in itertools.chain(parsed_batches(), [(None, None)]):
                if texts:
                    in_flight.append((pool.submit(encode_documents, texts), end))
                while in_flight and (texts is None or len(in_flight) > 2 * threads or in_flight[0][0].done()):
                    future, batch_end = in_flight.popleft()
                    for document in future.result():
                        builder.add_document(document, [len(document)])
                        tokens += len(document)
                        documents += 1
                    done = batch_end - start
                    progress.update(done, documents, tokens)
            builder.finalize(str(idx_tmp))
    progress.update(done, documents, tokens, final=True)
    return {"documents": documents, "tokens": tokens, "engine": engine}


def available_cores() -> int:
    """The cores this job may use (Slurm and taskset restrict the affinity mask, not cpu_count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def merge_shards(shard_prefixes: list[str], out_prefix: str | os.PathLike, dtype) -> None:
    """Concatenate shard datasets, in order, into one <out_prefix>.bin/.idx (Megatron's add_index).

    A single shard is already the whole dataset: it is copied into place, which spares the job
    Megatron's import. Copied, not hard-linked: a link shares the shard's inode, so Snakemake's
    post-job touch of output valid.idx also makes input valid.idx newer than the already-touched
    output train.bin, and its output-older-than-input check fails whenever the touches straddle a
    filesystem clock tick (~4 ms; it turned a Slurm test red once)."""
    out_prefix = str(out_prefix)
    for prefix in shard_prefixes:
        for suffix in (".bin", ".idx"):
            if not os.path.isfile(prefix + suffix):
                raise ScaleDAGError(f"{prefix}{suffix}: missing shard (expected an encode output)")
    with atomic_path(out_prefix + ".idx") as idx_tmp:
        with atomic_path(out_prefix + ".bin") as bin_tmp:
            if len(shard_prefixes) == 1:
                for suffix, tmp in ((".bin", bin_tmp), (".idx", idx_tmp)):
                    shutil.copyfile(shard_prefixes[0] + suffix, tmp)
            else:
                from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

                builder = IndexedDatasetBuilder(str(bin_tmp), dtype=dtype)
                for prefix in shard_prefixes:
                    builder.add_index(prefix)
                builder.finalize(str(idx_tmp))


def merge_corpus(
    shard_dirs: list[str],
    tokenizer_path: str | os.PathLike,
    corpus_stats: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> dict:
    """Merge every split's shards into <out_dir>/<split>.{bin,idx} and write <out_dir>/stats.json."""
    tok = load_tokenizer(tokenizer_path)
    dtype = token_dtype(tok.get_vocab_size())
    prepared = json.loads(Path(corpus_stats).read_text())
    shard_counts = []
    for d in shard_dirs:
        try:
            shard_counts.append(json.loads((Path(d) / "counts.json").read_text()))
        except (OSError, json.JSONDecodeError):
            raise ScaleDAGError(f"{d}/counts.json: missing or unreadable (expected an encode output)") from None
    out_dir = Path(out_dir)
    splits = {}
    for split in SPLITS:
        merge_shards([f"{d}/{split}" for d in shard_dirs], out_dir / split, dtype)
        counts = {key: sum(c[split][key] for c in shard_counts) for key in ("documents", "tokens")}
        counts["bytes"] = os.path.getsize(out_dir / f"{split}.bin")
        counts["chars"] = prepared["splits"][split]["chars"]
        if counts["documents"] != prepared["splits"][split]["documents"]:
            raise ScaleDAGError(
                f"{out_dir}/{split}: {counts['documents']} documents encoded but "
                f"{corpus_stats} lists {prepared['splits'][split]['documents']}"
            )
        if counts["bytes"] != counts["tokens"] * numpy.dtype(dtype).itemsize:
            raise ScaleDAGError(f"{out_dir}/{split}.bin: {counts['bytes']} bytes, expected {counts['tokens']} tokens")
        splits[split] = counts
    stats = {
        "corpus": prepared["corpus"],
        "tokenizer_vocab_size": tok.get_vocab_size(),
        "dtype": numpy.dtype(dtype).name,
        "shards": len(shard_dirs),
        "splits": splits,
        "prepare": prepared,
    }
    atomic_write_json(out_dir / "stats.json", stats)
    return stats


def _set_threads(threads: int | None) -> None:
    """The Rust tokenizer parallelises each batch over RAYON_NUM_THREADS; set before first use."""
    if threads:
        os.environ["RAYON_NUM_THREADS"] = str(threads)
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="encode one shard of JSONL splits")
    enc.add_argument("--tokenizer", required=True, help="tokenizer.json")
    enc.add_argument("--input", action="append", required=True, help="a JSONL split (repeatable)")
    enc.add_argument(
        "--output-prefix",
        action="append",
        required=True,
        help="output prefix for the preceding --input (repeatable, same count)",
    )
    enc.add_argument("--shard", type=int, default=0)
    enc.add_argument("--num-shards", type=int, default=1)
    enc.add_argument("--threads", type=int, default=None, help="encoding threads (default: the cores this job may use)")
    enc.add_argument("--batch-documents", type=int, default=BATCH_DOCUMENTS)
    mrg = sub.add_parser("merge", help="merge shards into one dataset per split")
    mrg.add_argument("--tokenizer", required=True)
    mrg.add_argument("--corpus-stats", required=True, help="stats.json of prepare_corpus")
    mrg.add_argument("--shard-dir", nargs="+", required=True, help="the shard directories, in order")
    mrg.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "merge":
        t0 = time.time()
        stats = merge_corpus(args.shard_dir, args.tokenizer, args.corpus_stats, args.out_dir)
        print(
            f"merged {len(args.shard_dir)} shard(s) in {time.time() - t0:.1f}s: "
            + ", ".join(f"{s} {c['documents']} docs / {c['tokens']} tokens" for s, c in stats["splits"].items()),
            flush=True,
        )
        return
    if len(args.input) != len(args.output_prefix):
        raise ScaleDAGError(
            f"--input given {len(args.input)} times but --output-prefix {len(args.output_prefix)} times"
        )
    for path in args.input:
        if not Path(path).is_file():
            raise ScaleDAGError(f"--input {path}: no such file")
    threads = args.threads or available_cores()
    _set_threads(threads)
    all_counts = {}
    encoder = load_encoder(args.tokenizer)
    for path, prefix in zip(args.input, args.output_prefix):
        t0 = time.time()
        counts = encode_jsonl(
            path,
            encoder,
            prefix,
            batch_documents=args.batch_documents,
            shard=args.shard,
            num_shards=args.num_shards,
            threads=threads,
        )
        all_counts[Path(prefix).name] = counts
        print(
            f"{path} shard {args.shard}/{args.num_shards} -> {prefix}.{{bin,idx}}: {counts['documents']} documents, "
            f"{counts['tokens']} tokens in {time.time() - t0:.1f}s",
            flush=True,
        )
    for directory in {str(Path(prefix).parent) for prefix in args.output_prefix}:  # what merge sums up
        atomic_write_json(Path(directory) / "counts.json", {name: c for name, c in all_counts.items()})


if __name__ == "__main__":
    main()
