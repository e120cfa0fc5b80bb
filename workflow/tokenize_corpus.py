"""Encode prepared JSONL splits into Megatron indexed datasets (<prefix>.bin + <prefix>.idx).

Tokenising once, up front, keeps the training loop free of tokenizer work and lets Megatron's
GPTDataset memory-map the tokens. Documents are encoded in batches (the Rust tokenizer parallelises
a batch) and streamed, so a corpus never has to fit in memory. Each document ends with EOD.
"""
from __future__ import annotations

import argparse
import os
import time
from itertools import islice
from pathlib import Path

import numpy

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path
from workflow.tokenizer import eod_id, iter_jsonl_texts, load_tokenizer

BATCH_DOCUMENTS = 1000


def encode_jsonl(jsonl_path: str | os.PathLike, tokenizer_path: str | os.PathLike, out_prefix: str | os.PathLike,
                 batch_documents: int = BATCH_DOCUMENTS, progress_every: int = 100_000) -> dict:
    """Write <out_prefix>.bin/.idx; returns {"documents", "tokens"} (tokens include one EOD per document)."""
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    tok = load_tokenizer(tokenizer_path)
    tok.encode_special_tokens = True  # a literal "<|endoftext|>" in the text is text, not a document break
    eod = eod_id(tok)
    dtype = DType.optimal_dtype(tok.get_vocab_size())
    encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)  # no offsets needed
    texts = iter_jsonl_texts(jsonl_path)
    documents = tokens = 0
    t0 = time.time()

    out_prefix = str(out_prefix)
    # .bin is renamed first, then .idx: a complete-looking .idx always has its .bin.
    with atomic_path(out_prefix + ".idx") as idx_tmp:
        with atomic_path(out_prefix + ".bin") as bin_tmp:
            builder = IndexedDatasetBuilder(str(bin_tmp), dtype=dtype)
            while batch := list(islice(texts, batch_documents)):
                for encoding in encode_batch(batch, add_special_tokens=False):
                    ids = numpy.array(encoding.ids + [eod], dtype=dtype)
                    builder.add_document(ids, [len(ids)])
                    tokens += len(ids)
                documents += len(batch)
                if progress_every and documents // progress_every > (documents - len(batch)) // progress_every:
                    print(f"{jsonl_path}: {documents} documents, {tokens} tokens, "
                          f"{tokens / max(time.time() - t0, 1e-9):.0f} tokens/s", flush=True)
            if documents == 0:
                raise ScaleDAGError(f"{jsonl_path}: no documents to encode")
            builder.finalize(str(idx_tmp))
    return {"documents": documents, "tokens": tokens}


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, help="tokenizer.json")
    parser.add_argument("--input", action="append", required=True, help="a JSONL split (repeatable)")
    parser.add_argument("--output-prefix", action="append", required=True,
                        help="output prefix for the preceding --input (repeatable, same count)")
    parser.add_argument("--batch-documents", type=int, default=BATCH_DOCUMENTS)
    args = parser.parse_args(argv)
    if len(args.input) != len(args.output_prefix):
        raise ScaleDAGError(f"--input given {len(args.input)} times but --output-prefix {len(args.output_prefix)} times")
    for path in args.input:
        if not Path(path).is_file():
            raise ScaleDAGError(f"--input {path}: no such file")
    for path, prefix in zip(args.input, args.output_prefix):
        t0 = time.time()
        counts = encode_jsonl(path, args.tokenizer, prefix, batch_documents=args.batch_documents)
        print(f"{path} -> {prefix}.{{bin,idx}}: {counts['documents']} documents, {counts['tokens']} tokens "
              f"in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # the Rust tokenizer does the work here
    import torch

    torch.set_num_threads(1)  # torch is only imported (by megatron); leave the cores to the tokenizer
    main()
