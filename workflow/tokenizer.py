"""Train the corpus's own byte-level BPE tokenizer (GPT-NeoX style).

Byte-level so any text round-trips exactly (no unknown tokens); one special token,
"<|endoftext|>" at id 0, separates documents (EOD) and serves as BOS/EOS. Trained by streaming the
train split only, so nothing about the validation documents leaks into the vocabulary.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path

EOD_TOKEN = "<|endoftext|>"
MIN_VOCAB_SIZE = 256 + 1  # every byte plus EOD


def iter_jsonl_texts(path: str | os.PathLike, text_field: str = "text") -> Iterator[str]:
    """Stream the documents of a prepared JSONL split (written by workflow.corpus)."""
    path = Path(path)
    if not path.is_file():
        raise ScaleDAGError(f"{path}: no such file (expected a prepared JSONL split)")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                yield json.loads(line)[text_field]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ScaleDAGError(f"{path}:{lineno}: expected a JSON object with a {text_field!r} field") from None


def new_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE with GPT-NeoX's pre-tokenizer and decoder."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def train_tokenizer(train_jsonl: str | os.PathLike, out_path: str | os.PathLike, vocab_size: int,
                    min_frequency: int = 2) -> None:
    """Train on the train split and save tokenizer.json atomically."""
    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ScaleDAGError(f"vocab_size: expected an integer >= {MIN_VOCAB_SIZE} (256 bytes + EOD), got {vocab_size!r}")
    if min_frequency < 1:
        raise ScaleDAGError(f"min_frequency: expected >= 1, got {min_frequency!r}")
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOD_TOKEN],  # first, so it gets id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(iter_jsonl_texts(train_jsonl), trainer=trainer)
    if tok.token_to_id(EOD_TOKEN) != 0:
        raise ScaleDAGError(f"{out_path}: trained tokenizer put {EOD_TOKEN} at id {tok.token_to_id(EOD_TOKEN)}, expected 0")
    with atomic_path(out_path) as tmp:
        tok.save(str(tmp))


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    if not Path(path).is_file():
        raise ScaleDAGError(f"{path}: no such tokenizer file")
    return Tokenizer.from_file(str(path))


def eod_id(tok: Tokenizer) -> int:
    """The id that ends every document in the token stream."""
    token_id = tok.token_to_id(EOD_TOKEN)
    if token_id is None:
        raise ScaleDAGError(f"tokenizer has no {EOD_TOKEN} token")
    return token_id


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="train.jsonl from prepare_corpus")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--out", required=True, help="where to write tokenizer.json")
    args = parser.parse_args(argv)
    train_tokenizer(args.train, args.out, args.vocab_size, args.min_frequency)
    tok = load_tokenizer(args.out)
    print(f"trained {args.out}: vocab {tok.get_vocab_size()} (asked {args.vocab_size}), eod id {eod_id(tok)}", flush=True)


if __name__ == "__main__":
    main()
