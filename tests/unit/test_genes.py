"""GenSLM's data path: the codon tokenizer, FASTA records, and the generated gene corpus."""

from __future__ import annotations

import collections
import gzip
import json
import math

import pytest

from workflow.data.genes import CODONS, GENETIC_CODE, START_CODON, STOP_CODONS, generate_genes, read_fasta
from workflow.data.sources import Counters, file_format, read_source
from workflow.data.spec import normalise_spec
from workflow.data.tokenizer import codon_report, codon_tokenizer, eod_id, load_tokenizer, train_tokenizer
from workflow.errors import ScaleDAGError


def _codons(seq: str) -> list[str]:
    return [seq[i : i + 3] for i in range(0, len(seq), 3)]


def test_codon_tokenizer_round_trips_in_frame():
    tok = codon_tokenizer()
    assert tok.get_vocab_size() == 69 and eod_id(tok) == 0  # GenSLM's vocabulary: 5 specials + 64 codons
    for gene in generate_genes(20, seed=3):
        enc = tok.encode(gene)
        assert enc.tokens == _codons(gene)  # non-overlapping 3-mers from the first base
        assert enc.ids == [5 + CODONS.index(c) for c in _codons(gene)]
        assert tok.decode(enc.ids) == gene
    # the frame is the document's: shifting by one base gives other codons, not the same ones
    assert tok.encode("ATGAAATAA").tokens == ["ATG", "AAA", "TAA"]
    assert tok.encode("TGAAATAA").tokens[:2] == ["TGA", "AAT"]


def test_codon_tokenizer_marks_invalid_input_unknown_and_reports_it(tmp_path):
    tok = codon_tokenizer()
    enc = tok.encode("ATGNNNAAT AA")  # an N codon, whitespace (ignored), a 2-base remainder
    assert enc.tokens == ["ATG", "<unk>", "AAT", "<unk>"]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"text": t}) for t in ("ATGAAATAA", "ATGNNNTAAC", "atgtaa")) + "\n")
    report = codon_report(train)
    assert report["documents"] == 3 and report["codons"] == 3 + 3 + 2
    assert report["unknown_codons"] == 1 + 2 and report["partial_codons"] == 1  # NNN, atg, taa; the trailing C
    out = tmp_path / "tokenizer.json"
    train_tokenizer(train, out, vocab_size=69, kind="codon")
    assert load_tokenizer(out).encode("ATGTAA").ids == [5 + CODONS.index("ATG"), 5 + CODONS.index("TAA")]
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["eos_token"] == "<|endoftext|>"
    with pytest.raises(ScaleDAGError, match="codon tokenizer needs an integer >= 69"):
        train_tokenizer(train, out, vocab_size=64, kind="codon")


def test_fasta_records_bad_ones_counted(tmp_path):
    fasta = tmp_path / "genes.fna.gz"
    with gzip.open(fasta, "wt") as fh:
        fh.write(
            "ACG\n"  # before any header
            ">good1 a gene over two lines\nATGAAA\nccctaa\n"
            ">empty\n"
            ">bad chars\nATGNNNTAA\n"
            ">partial\nATGAAATA\n"
            "; a comment line\n"
            ">good2\nATG TAA\n"
        )
    counters = Counters()
    assert file_format(fasta.name) == "fasta"
    assert list(read_fasta(fasta, counters)) == ["ATGAAACCCTAA", "ATGTAA"]
    assert counters["fasta_records"] == 5
    for key in (
        "fasta_empty_records",
        "fasta_invalid_records",
        "fasta_partial_codon_records",
        "fasta_lines_before_header",
    ):
        assert counters[key] == 1, key
    assert counters["fasta_invalid_records_examples"] == [f"{fasta}:6"]  # the header line of the record


def test_generated_genes_are_coding_sequences_deterministic_by_seed():
    genes = list(generate_genes(200, seed=0))
    assert genes == list(generate_genes(200, seed=0)) and genes != list(generate_genes(200, seed=1))
    for gene in genes:
        codons = _codons(gene)
        assert len(gene) % 3 == 0 and codons[0] == START_CODON and codons[-1] in STOP_CODONS
        assert not set(codons[1:-1]) & set(STOP_CODONS)  # no stop inside the reading frame
    # a codon-usage bias: leucine's six codons are far from equally used
    leu = collections.Counter(c for g in genes for c in _codons(g)[1:-1] if GENETIC_CODE[c] == "L")
    assert max(leu.values()) > 2 * sum(leu.values()) / 6


def test_generated_genes_are_learnable_well_below_the_unigram_entropy():
    """Held-out genes under two models fit on the rest: codon frequencies alone (the unigram
    entropy, what a model that learned nothing else reaches) and the next codon given the previous
    four amino acids. Family structure puts the second about 1 nat lower (3.40 -> 2.39 measured)."""
    genes = list(generate_genes(2500, seed=0))
    train, test = genes[:2000], genes[2000:]
    unigram = collections.Counter(c for g in train for c in _codons(g))
    total = sum(unigram.values())

    def p1(c):
        return (unigram[c] + 0.5) / (total + 32)

    def contexts(gene):
        cs = _codons(gene)
        aa = ["^"] * 4 + [GENETIC_CODE[c] for c in cs]
        return [(tuple(aa[i : i + 4]), c) for i, c in enumerate(cs)]

    table = collections.defaultdict(collections.Counter)
    for gene in train:
        for ctx, c in contexts(gene):
            table[ctx][c] += 1
    h1 = h4 = n = 0.0
    for gene in test:
        for ctx, c in contexts(gene):
            seen = table.get(ctx, collections.Counter())
            h4 -= math.log((seen[c] + 64 * p1(c)) / (sum(seen.values()) + 64))
            h1 -= math.log(p1(c))
            n += 1
    assert h1 / n > 3.0 and h4 / n < h1 / n - 0.7, (h1 / n, h4 / n)


def test_a_generated_gene_source_goes_through_the_corpus_spec():
    spec = normalise_spec({"name": "g", "generated": {"documents": 5, "generator": "genes"}, "near_dedup": False})
    (source,) = spec["sources"]
    assert source["generated"] == {"documents": 5, "seed": 0, "generator": "genes"}
    docs = list(read_source(source, Counters()))
    assert docs == list(generate_genes(5, 0))


def test_genslm_shapes_have_genslm_parameter_counts():
    """GenSLM names its released configs by parameter count (genslm/architectures/neox/): ours match
    for 25M and 2.5B. The 250M config (head size 115) builds with int(115 x 0.25) = 28 rotary
    dimensions, as HF and Megatron truncate; the 25B config's hidden 8196 is not divisible by its
    64 heads, so the named shape uses 8192."""
    from conftest import REPO
    from workflow.config import load_config
    from workflow.model.flops import Shape, param_count
    from workflow.model.gpt import make_model_spec

    shapes = load_config(REPO / "config.yaml")["shapes"]
    counts = {
        n: param_count(Shape.of(make_model_spec("gpt-neox", shapes[n], 69))) for n in shapes if n.startswith("genslm-")
    }
    assert counts["genslm-25m"] == 25_290_752 and counts["genslm-2.5b"] == 2_533_931_008
    assert 2.4e8 < counts["genslm-250m"] < 2.6e8 and 2.5e10 < counts["genslm-25b"] < 2.6e10
    tiny = [counts[f"genslm-{s}-tiny"] for s in ("25m", "250m", "2.5b", "25b")]
    assert tiny == sorted(tiny)  # the stand-ins keep the real shapes' order
