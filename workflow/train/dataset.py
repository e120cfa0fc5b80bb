"""Training data through Megatron's GPTDataset, read in an order that can be resumed exactly.

Megatron builds (and caches) the document/sample/shuffle indices; we only supply a tokenizer it
accepts and a deterministic batch order keyed by a sample index, so a resumed run continues from
the exact data position it stopped at.

Megatron writes its index cache in place (not atomically) and without locking, and parallel runs on
the same corpus share one cache. So the cache is filled from a private staging directory under a
file lock, and only complete files are renamed into it; Megatron then always finds a full cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy
import torch

from workflow.data.tokenizer import eod_id, load_tokenizer
from workflow.errors import ScaleDAGError


class HFTokenizerAdapter:
    """What GPTDatasetConfig needs from a tokenizer: `vocab_size`, `eod`, `unique_identifiers`.

    There is deliberately no `pad` even where the tokenizer declares one: Megatron then pads with
    -1, an id that never occurs in the data, so padding can never be confused with a real token
    (with byte-bpe, BOS and EOS are both EOD). EOD is the tokenizer's EOS, whichever style it is.
    `unique_identifiers` names the tokenizer by content, so the index cache survives moving the
    results directory.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._tok = load_tokenizer(path)
        self.eod = eod_id(self._tok)
        self.vocab_size = self._tok.get_vocab_size()
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        self.unique_identifiers = OrderedDict(
            [("class", type(self).__name__), ("tokenizer_sha256", digest), ("vocab_size", self.vocab_size)]
        )

    @property
    def eos(self) -> int:
        return self.eod

    @property
    def bos(self) -> int:
        return self.eod

    def tokenize(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def detokenize(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


def _require_indexed(prefix: str) -> None:
    for suffix in (".bin", ".idx"):
        if not os.path.isfile(prefix + suffix):
            raise ScaleDAGError(f"{prefix}{suffix}: no such file (expected a tokenize_corpus output)")


@contextlib.contextmanager
def _cache_lock(cache_dir: Path):
    """Serialise index building across processes; only rank 0 (or a lone process) builds."""
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        yield
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


CACHE_AFFIXES = ("description.txt", "document_index.npy", "sample_index.npy", "shuffle_index.npy")


def _complete_cache_files(cache_dir: Path) -> list[Path]:
    """Cached index files whose whole set (all four per dataset) is present."""
    groups: dict[str, list[Path]] = {}
    for path in cache_dir.iterdir():
        base, _, affix = path.name.rpartition("-")
        if path.is_file() and affix in CACHE_AFFIXES:
            groups.setdefault(base, []).append(path)
    return [p for files in groups.values() if len(files) == len(CACHE_AFFIXES) for p in files]


def _fill_cache(config, prefixes_and_sizes, cache_dir: Path) -> None:
    """Build any missing indices in a staging copy of the cache, then rename new files in."""
    from megatron.core.datasets.gpt_dataset import GPTDataset
    from megatron.core.datasets.utils import Split

    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_dir))
    try:
        linked = set()
        for existing in _complete_cache_files(cache_dir):  # hard links: Megatron reads, never rewrites, these
            os.link(existing, staging / existing.name)
            linked.add(existing.name)
        staged = dataclasses.replace(config, path_to_cache=str(staging))
        for split, (prefix, num_samples) in zip((Split.train, Split.valid), prefixes_and_sizes):
            low_level = GPTDataset.build_low_level_dataset(prefix, staged)
            indices = numpy.arange(GPTDataset.numel_low_level_dataset(low_level), dtype=numpy.int32)
            GPTDataset(low_level, prefix, indices, num_samples, split, staged)
        for built in staging.iterdir():
            if built.name not in linked:
                os.replace(built, cache_dir / built.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def data_fingerprint(*prefixes: str) -> str:
    """A digest of the token files' .idx (document count, sizes, offsets): new tokens under the same
    prefix (a re-run tokenize_corpus) get a new digest, so an old index cache is never read for them."""
    digest = hashlib.sha256()
    for prefix in prefixes:
        with open(prefix + ".idx", "rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()[:16]


def build_gpt_datasets(
    train_prefix: str | os.PathLike,
    valid_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    seq_length: int,
    seed: int,
    num_train_samples: int | None,
    num_valid_samples: int | None,
    cache_dir: str | os.PathLike | None = None,
):
    """(train, valid) GPTDatasets of `seq_length`-token samples from separate train/valid prefixes.

    The index cache defaults to `<dir of train_prefix>/cache/<data_fingerprint>`: Megatron keys its
    cached indices by path, seed and lengths, not by the tokens, so indices built for an earlier
    version of the data would otherwise be read for the new one (samples of the wrong length). Call on every rank when
    torch.distributed is initialised (Megatron synchronises with barriers); works without it too.
    """
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    train_prefix, valid_prefix = str(train_prefix), str(valid_prefix)
    for prefix in (train_prefix, valid_prefix):
        _require_indexed(prefix)
    if seq_length < 1:
        raise ScaleDAGError(f"seq_length: expected >= 1, got {seq_length}")
    if cache_dir is None:
        cache_dir = Path(train_prefix).parent / "cache" / data_fingerprint(train_prefix, valid_prefix)
    cache_dir = Path(cache_dir)
    config = GPTDatasetConfig(
        random_seed=seed,
        sequence_length=seq_length,
        blend_per_split=[([train_prefix], None), ([valid_prefix], None), None],
        path_to_cache=str(cache_dir),
        tokenizer=HFTokenizerAdapter(tokenizer_path),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,  # causal attention: the model builds its own mask
        mmap_bin_files=True,
    )
    sizes = [num_train_samples, num_valid_samples, None]
    with _cache_lock(cache_dir):
        if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
            _fill_cache(config, [(train_prefix, num_train_samples), (valid_prefix, num_valid_samples)], cache_dir)
    train_ds, valid_ds, _ = BlendedMegatronDatasetBuilder(GPTDataset, sizes, lambda: True, config).build()
    for name, prefix, ds in (("train", train_prefix, train_ds), ("valid", valid_prefix, valid_ds)):
        if len(ds) == 0:
            raise ScaleDAGError(f"{prefix}: the {name} data has fewer than seq_length+1 = {seq_length + 1} tokens")
    return train_ds, valid_ds


def batch_iterator(dataset, micro_batch_size: int, start_sample: int = 0) -> Iterator[dict]:
    """Micro-batches of consecutive samples from `start_sample` on, wrapping around forever.

    Batch b holds samples start_sample + b*micro_batch_size + [0, micro_batch_size) (mod len), so
    resuming at sample k reproduces exactly the batches an uninterrupted run would have seen.
    """
    n = len(dataset)
    if n == 0:
        raise ScaleDAGError("batch_iterator: the dataset has no samples")
    if micro_batch_size < 1:
        raise ScaleDAGError(f"micro_batch_size: expected >= 1, got {micro_batch_size}")
    position = start_sample
    keys = ("tokens", "labels", "loss_mask", "position_ids")
    while True:
        samples = [dataset[(position + i) % n] for i in range(micro_batch_size)]
        position += micro_batch_size
        batch = {key: torch.stack([s[key] for s in samples]) for key in keys}
        batch["attention_mask"] = None
        yield batch


class RandomTokens:
    """Uniform random token samples, deterministic per index, shaped like a GPTDataset's (for
    throughput benchmarks, `data: {random_tokens: true}` in the run spec)."""

    def __init__(self, vocab_size: int, seq_length: int, seed: int):
        self.vocab_size, self.seq, self.seed = vocab_size, seq_length, seed

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        tokens = torch.randint(0, self.vocab_size, (self.seq + 1,), generator=g)
        return {
            "tokens": tokens[:-1],
            "labels": tokens[1:],
            "loss_mask": torch.ones(self.seq),
            "position_ids": torch.arange(self.seq),
        }
