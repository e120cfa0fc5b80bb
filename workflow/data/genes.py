"""Gene sequences for the GenSLM workload (codon language models, arXiv 2310.04607 §GenSLM).

A document is one coding sequence (CDS) in reading frame: ATG ... stop, its length a multiple of 3,
so the codon tokenizer (workflow/data/tokenizer.py, type `codon`) reads non-overlapping 3-mers from
the first base.

  read_fasta         FASTA / FASTA.gz records -> documents. A record that is not a clean CDS is
                     counted by reason (empty, a character outside ACGT, a length that is not a
                     whole number of codons) with `file:line` examples, and left out: a codon
                     model trained on shifted frames learns noise.
  generate_genes     the project's own gene corpus for tiny scale: protein families (seeded random
                     proteins), each gene a family member with ~10% of residues mutated, back-
                     translated with a codon-usage bias, between ATG and a stop codon. A model can
                     learn it: within a family the next codon is predictable far beyond the codon
                     frequencies (tests/unit/test_genes.py measures a trigram model below the
                     unigram entropy on held-out genes).
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from pathlib import Path

BASES = "TCAG"
# The standard genetic code, codons in TCAG order (NCBI translation table 1); '*' is a stop.
_AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODONS = [a + b + c for a in BASES for b in BASES for c in BASES]
GENETIC_CODE = dict(zip(CODONS, _AMINO))
STOP_CODONS = [c for c in CODONS if GENETIC_CODE[c] == "*"]
START_CODON = "ATG"
AMINO_ACIDS = sorted(set(_AMINO) - {"*"})
FASTA_SUFFIXES = (".fasta", ".fa", ".fna", ".ffn", ".fasta.gz", ".fa.gz", ".fna.gz", ".ffn.gz")


# -- FASTA ------------------------------------------------------------------------------------------
def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        yield from fh


def read_fasta(path: str | Path, counters) -> Iterator[str]:
    """The clean coding sequences of one FASTA file, upper-cased; every other record counted."""
    path = Path(path)
    header, header_line, parts = None, 0, []

    def finish():
        seq = "".join(parts).upper()
        where = f"{path}:{header_line}"
        counters["fasta_records"] += 1
        if not seq:
            counters.note("fasta_empty_records", where, f"record {header!r} has no sequence")
        elif bad := sorted(set(seq) - set("ACGT")):
            counters.note("fasta_invalid_records", where, f"record {header!r}: characters {bad} outside ACGT")
        elif len(seq) % 3:
            counters.note(
                "fasta_partial_codon_records", where, f"record {header!r}: {len(seq)} bases, not whole codons"
            )
        else:
            return seq
        return None

    for lineno, line in enumerate(_lines(path), start=1):
        line = line.strip()
        if line.startswith(">"):
            if header is not None and (seq := finish()) is not None:
                yield seq
            header, header_line, parts = line[1:].strip(), lineno, []
        elif line and not line.startswith(";"):
            if header is None:
                counters.note("fasta_lines_before_header", f"{path}:{lineno}", "sequence before any '>' header")
                continue
            parts.append("".join(line.split()))
    if header is not None and (seq := finish()) is not None:
        yield seq


# -- the generated gene corpus ---------------------------------------------------------------------
def _codon_usage(rng: random.Random) -> dict[str, tuple[list[str], list[float]]]:
    """Per amino acid its synonymous codons and a skewed preference over them (as organisms have:
    e.g. E. coli uses CTG for ~50% of leucines)."""
    usage = {}
    for aa in AMINO_ACIDS + ["*"]:
        codons = [c for c in CODONS if GENETIC_CODE[c] == aa]
        weights = [rng.gammavariate(0.6, 1.0) + 1e-3 for _ in codons]  # Dirichlet(0.6): a few preferred
        usage[aa] = (codons, weights)
    return usage


def generate_genes(documents: int, seed: int = 0, families: int = 16) -> Iterator[str]:
    """`documents` coding sequences of one seeded world (the same seed: the same genes)."""
    world = random.Random(f"genes-world-{seed}")
    usage = _codon_usage(world)
    background = [world.gammavariate(2.0, 1.0) for _ in AMINO_ACIDS]  # amino-acid composition
    proteins = [world.choices(AMINO_ACIDS, background, k=world.randint(40, 160)) for _ in range(families)]
    rng = random.Random(f"genes-docs-{seed}")
    for _ in range(documents):
        protein = list(rng.choice(proteins))
        for i in range(len(protein)):
            if rng.random() < 0.1:  # point mutations: a family member, not a copy
                protein[i] = rng.choices(AMINO_ACIDS, background)[0]
        codons = [START_CODON]
        for aa in protein:
            choices, weights = usage[aa]
            codons.append(rng.choices(choices, weights)[0])
        codons.append(rng.choices(*usage["*"])[0])
        yield "".join(codons)
