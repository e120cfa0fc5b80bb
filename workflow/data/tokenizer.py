"""Train (or adopt) the corpus's tokenizer, saved as a `tokenizer.json` that both the `tokenizers`
library and `transformers.PreTrainedTokenizerFast` load.

Two styles, both trained by streaming the train split only (nothing of valid/test leaks in):
  byte-bpe           GPT-NeoX / GPT-2: byte-level BPE; every byte is a base token, so any text
                     round-trips. Specials: "<|endoftext|>" (id 0; EOD, also BOS/EOS), "<|padding|>" (id 1).
  sentencepiece-bpe  LLaMA: BPE over characters with spaces as "▁", unknown characters fall back to
                     the 256 byte tokens <0x00>..<0xFF>. Specials: <unk> 0, <s> 1 (BOS), </s> 2 (EOS/EOD), <pad> 3.
  codon              GenSLM: a fixed vocabulary, nothing learned: 5 specials ("<|endoftext|>" 0 as EOD,
                     "<|padding|>", "<unk>", "<cls>", "<mask>") + the 64 codons = 69 tokens, GenSLM's
                     vocabulary size. A document (a coding sequence) is read as non-overlapping 3-mers
                     from its first base; anything that is not one of the 64 codons (an N, a trailing
                     partial codon) becomes <unk>, and "training" counts those in the train split and
                     reports them instead of dropping them.
A `tokenizer_config.json` beside it names the BOS/EOS/PAD roles for `AutoTokenizer`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path, atomic_write_json
from workflow.layout import input_path

TYPES = ("byte-bpe", "sentencepiece-bpe", "codon")
EOD_TOKEN = "<|endoftext|>"
SPECIALS = {
    "byte-bpe": {"bos": EOD_TOKEN, "eos": EOD_TOKEN, "pad": "<|padding|>"},
    "sentencepiece-bpe": {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"},
    "codon": {
        "bos": EOD_TOKEN,
        "eos": EOD_TOKEN,
        "pad": "<|padding|>",
        "unk": "<unk>",
        "cls": "<cls>",
        "mask": "<mask>",
    },
}
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
MIN_VOCAB_SIZE = {"byte-bpe": 256 + 2, "sentencepiece-bpe": 256 + 4 + 1, "codon": 5 + 64}
# What other tokenizers call these roles, so a pre-existing tokenizer.json can be adopted.
ROLE_CANDIDATES = {
    "eos": [EOD_TOKEN, "</s>", "<eos>", "<|end_of_text|>"],
    "bos": [EOD_TOKEN, "<s>", "<bos>", "<|begin_of_text|>"],
    "pad": ["<|padding|>", "<pad>", "<|pad|>"],
    "unk": ["<unk>", "<|unk|>"],
}


def iter_jsonl_texts(path: str | os.PathLike, text_field: str = "text") -> Iterator[str]:
    """Stream the documents of a prepared JSONL split (written by workflow.data.corpus)."""
    path = Path(path)
    if not path.is_file():
        raise ScaleDAGError(f"{path}: no such file (expected a prepared JSONL split)")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                yield json.loads(line)[text_field]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ScaleDAGError(f"{path}:{lineno}: expected a JSON object with a {text_field!r} field") from None


def _dress(tok: Tokenizer, kind: str) -> Tokenizer:
    """Normaliser, pre-tokenizer and decoder of each style (the model is set by the caller)."""
    if kind == "byte-bpe":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    else:  # LLaMA's tokenizer.json: "▁"-prefixed pieces, byte fallback, strip the added leading space
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
        )
    return tok


def new_tokenizer(kind: str = "byte-bpe") -> Tokenizer:
    """An untrained tokenizer of the given style."""
    if kind not in TYPES:
        raise ScaleDAGError(f"tokenizer type: {kind!r} is not one of {list(TYPES)}")
    if kind == "codon":
        return codon_tokenizer()
    if kind == "byte-bpe":
        return _dress(Tokenizer(models.BPE()), kind)
    return _dress(Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True)), kind)


def _with_byte_fallback(trained: Tokenizer) -> Tokenizer:
    """Insert the 256 byte tokens after the specials (as LLaMA numbers them) and renumber the rest."""
    model = json.loads(trained.to_str())["model"]
    specials = list(SPECIALS["sentencepiece-bpe"].values())
    vocab = {token: i for i, token in enumerate(specials + BYTE_TOKENS)}
    for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens(specials)
    return _dress(tok, "sentencepiece-bpe")


def codon_tokenizer() -> Tokenizer:
    """GenSLM's codon vocabulary as a tokenizer.json: ids 0-4 the specials, then the 64 codons."""
    from workflow.data.genes import CODONS

    specials = list(dict.fromkeys(SPECIALS["codon"].values()))
    vocab = {token: i for i, token in enumerate(specials + CODONS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # Whitespace inside a sequence is layout, not bases; case is left alone (read_fasta upper-cases),
    # so a lower-case codon is <unk> here and in codon_report alike.
    tok.normalizer = normalizers.Replace(Regex(r"\s"), "")
    # Non-overlapping 3-mers from the first base; a trailing 1-2 base remainder is its own (<unk>) piece.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r".{1,3}"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    return tok


def codon_report(train_jsonl: str | os.PathLike) -> dict:
    """What the codon tokenizer will turn into <unk> in the train split, counted (never dropped)."""
    from workflow.data.genes import CODONS

    known, report = set(CODONS), {"documents": 0, "codons": 0, "unknown_codons": 0, "partial_codons": 0}
    examples = []
    for i, text in enumerate(iter_jsonl_texts(train_jsonl)):
        seq = "".join(text.split())
        report["documents"] += 1
        report["codons"] += len(seq) // 3
        report["partial_codons"] += bool(len(seq) % 3)
        bad = sum(seq[k : k + 3] not in known for k in range(0, len(seq) - len(seq) % 3, 3))
        report["unknown_codons"] += bad
        if (bad or len(seq) % 3) and len(examples) < 5:
            examples.append(f"document {i}: {bad} unknown codons, {len(seq) % 3} trailing bases")
    report["examples"] = examples
    return report


def special_tokens(tok: Tokenizer) -> dict[str, str]:
    """Role -> token for the roles this tokenizer has (bos, eos, pad, unk)."""
    roles = {}
    for role, candidates in ROLE_CANDIDATES.items():
        for token in candidates:
            if tok.token_to_id(token) is not None:
                roles[role] = token
                break
    return roles


def train_tokenizer(
    train_jsonl: str | os.PathLike,
    out_path: str | os.PathLike,
    vocab_size: int,
    min_frequency: int = 2,
    kind: str = "byte-bpe",
) -> None:
    """Train on the train split and save tokenizer.json (and tokenizer_config.json) atomically."""
    if kind not in TYPES:
        raise ScaleDAGError(f"tokenizer type: {kind!r} is not one of {list(TYPES)}")
    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE[kind]:
        raise ScaleDAGError(
            f"vocab_size: a {kind} tokenizer needs an integer >= {MIN_VOCAB_SIZE[kind]}, got {vocab_size!r}"
        )
    if min_frequency < 1:
        raise ScaleDAGError(f"min_frequency: expected >= 1, got {min_frequency!r}")
    if kind == "codon":  # a fixed vocabulary: report what the train split holds beyond it, then save
        report = codon_report(train_jsonl)
        share = report["unknown_codons"] / max(1, report["codons"])
        print(f"codon tokenizer: train split {json.dumps(report)} ({share:.2%} of codons become <unk>)", flush=True)
        save_tokenizer(codon_tokenizer(), out_path)
        return
    tok = new_tokenizer(kind)
    specials = list(dict.fromkeys(SPECIALS[kind].values()))  # in id order; EOD first for byte-bpe
    if kind == "byte-bpe":
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    else:
        learned = vocab_size - len(BYTE_TOKENS)
        trainer = trainers.BpeTrainer(
            vocab_size=learned,
            min_frequency=min_frequency,
            special_tokens=specials,
            limit_alphabet=max(1, min(1000, (learned - len(specials)) // 2)),
            show_progress=False,
        )
    tok.train_from_iterator(iter_jsonl_texts(train_jsonl), trainer=trainer)
    if kind == "sentencepiece-bpe":
        tok = _with_byte_fallback(tok)
    for i, token in enumerate(specials):
        if tok.token_to_id(token) != i:
            raise ScaleDAGError(
                f"{out_path}: trained tokenizer put {token} at id {tok.token_to_id(token)}, expected {i}"
            )
    save_tokenizer(tok, out_path)


def save_tokenizer(tok: Tokenizer, out_path: str | os.PathLike) -> None:
    """tokenizer.json plus the tokenizer_config.json naming its special-token roles."""
    out_path = Path(out_path)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        **{f"{role}_token": token for role, token in special_tokens(tok).items()},
    }
    with atomic_path(out_path) as tmp:
        tok.save(str(tmp))
        atomic_write_json(out_path.with_name("tokenizer_config.json"), config)


def adopt_tokenizer(existing: str | os.PathLike, out_path: str | os.PathLike, vocab_size: int) -> None:
    """Use a pre-existing tokenizer.json instead of training one (checked, then copied in)."""
    tok = load_tokenizer(existing)
    if tok.get_vocab_size() > vocab_size:
        raise ScaleDAGError(
            f"{existing}: has {tok.get_vocab_size()} tokens, more than the model's vocab_size {vocab_size}"
        )
    eod_id(tok)  # it must be able to end documents
    save_tokenizer(tok, out_path)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    if not Path(path).is_file():
        raise ScaleDAGError(f"{path}: no such tokenizer file")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception on bad JSON
        raise ScaleDAGError(f"{path}: not a tokenizer.json ({str(exc).splitlines()[0]})") from None


def with_word_cache(tok: Tokenizer, words: int) -> Tokenizer:
    """The same BPE with a larger word cache (default 10,000 words): a corpus-sized cache turns most
    words of a long stream into one lookup instead of a merge loop. Ids are unchanged."""
    model = json.loads(tok.to_str())["model"]
    if model.get("type") != "BPE":
        return tok
    options = {
        k: model[k]
        for k in (
            "dropout",
            "unk_token",
            "continuing_subword_prefix",
            "end_of_word_suffix",
            "fuse_unk",
            "byte_fallback",
            "ignore_merges",
        )
        if model.get(k) is not None
    }
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok.model = models.BPE(model["vocab"], merges, cache_capacity=words, **options)
    return tok


def eod_id(tok: Tokenizer) -> int:
    """The id that ends every document in the token stream (the tokenizer's EOS)."""
    eos = special_tokens(tok).get("eos")
    if eos is None:
        raise ScaleDAGError(f"tokenizer has no end-of-document token (one of {ROLE_CANDIDATES['eos']})")
    return tok.token_to_id(eos)


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="train.jsonl from prepare_corpus")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--type", default="byte-bpe", choices=TYPES)
    parser.add_argument("--existing", default=None, help="adopt this tokenizer.json instead of training")
    parser.add_argument("--out", required=True, help="where to write tokenizer.json")
    args = parser.parse_args(argv)
    if args.existing:
        adopt_tokenizer(input_path(args.existing), args.out, args.vocab_size)
    else:
        train_tokenizer(args.train, args.out, args.vocab_size, args.min_frequency, args.type)
    tok = load_tokenizer(args.out)
    print(
        f"{'adopted' if args.existing else 'trained'} {args.out}: vocab {tok.get_vocab_size()} "
        f"(asked {args.vocab_size}), specials {special_tokens(tok)}, eod id {eod_id(tok)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
