"""Exact and near de-duplication of documents.

Exact: a hash of the text with case and whitespace normalised away. Near: MinHash signatures of
word n-gram shingles indexed by datasketch's MinHashLSH; an LSH candidate counts as a duplicate only
if its estimated Jaccard similarity really reaches the threshold (LSH bands alone over-report).
Documents are checked in arrival order and the first one of a group is kept, so the result is
deterministic and streaming (only the signatures stay in memory, ~1 KB per document).
"""

from __future__ import annotations

import hashlib
import zlib

import numpy

_MASK32 = numpy.uint64(0xFFFFFFFF)
_SHINGLE_MIX = numpy.uint64(0x01000193)  # FNV prime: combines word hashes into a shingle hash


def dedup_key(text: str) -> bytes:
    """Equal for documents differing only in case and whitespace."""
    return hashlib.sha1(" ".join(text.lower().split()).encode("utf-8")).digest()


def shingle_hashes(text: str, shingle_size: int) -> numpy.ndarray:
    """32-bit hashes of the distinct lowercase word `shingle_size`-grams (the whole text if shorter)."""
    words = text.lower().split()
    if not words:
        return numpy.zeros(0, dtype=numpy.uint64)
    word_hashes = numpy.fromiter((zlib.crc32(w.encode("utf-8")) for w in words), dtype=numpy.uint64, count=len(words))
    k = min(shingle_size, len(words))
    n = len(words) - k + 1
    acc = numpy.zeros(n, dtype=numpy.uint64)
    for j in range(k):  # vectorised rolling combination: no Python loop over shingles
        acc = (acc * _SHINGLE_MIX + word_hashes[j : j + n]) & _MASK32
    return numpy.unique(acc)


class NearDuplicateIndex:
    """MinHash LSH over the documents seen so far; `is_duplicate` checks a document and, if it is
    new, adds it."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 5, seed: int = 1):
        from datasketch import MinHash, MinHashLSH

        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-dedup threshold must be in (0, 1], got {threshold}")
        self.threshold, self.num_perm, self.shingle_size, self.seed = threshold, num_perm, shingle_size, seed
        self._template = MinHash(num_perm=num_perm, seed=seed, scheme="legacy")
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._signatures: list[numpy.ndarray] = []

    def signature(self, text: str):
        from datasketch import MinHash

        mh = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashfunc=int,
            permutations=self._template.permutations,
            scheme="legacy",
        )
        mh.update_batch(shingle_hashes(text, self.shingle_size).tolist())
        return mh

    def is_duplicate(self, text: str) -> bool:
        mh = self.signature(text)
        for key in self._lsh.query(mh):
            if numpy.mean(self._signatures[key] == mh.hashvalues) >= self.threshold:
                return True
        key = len(self._signatures)
        self._signatures.append(mh.hashvalues)
        self._lsh.insert(key, mh, check_duplication=False)
        return False

    def __len__(self) -> int:
        return len(self._signatures)
