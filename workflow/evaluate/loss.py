"""Validation loss, perplexity and bits per byte of a run's final checkpoint on the held-out split.

Reads the whole valid token stream (up to --max-tokens) in non-overlapping windows of the
model's sequence length, so the number does not depend on the training-time eval sample.

Bits per byte = (nats over the predicted tokens) / ln 2 / (the UTF-8 bytes those tokens stand for),
a measure every tokenizer shares (EOD tokens count in the nats and as 0 bytes). With `--text`, the
run is also evaluated on another corpus's validation JSONL (studies.<s>.language_eval), tokenized
with the run's own tokenizer and grouped by each document's `tag` (its language): so a model
trained on English only and a multilingual one are compared on the same English bytes. Per tag the
per-document nats and bytes are kept too, for a paired interval over documents
(analysis/bloom_ablations.py)."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.hpc.launch import shutdown
from workflow.io import atomic_write_json
from workflow.model import megatron_cpu
from workflow.model.gpt import make_model_spec
from workflow.train.checkpoint import load_final_model


def _stream(documents, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """The first max_tokens + 1 tokens of the concatenated documents, and each token's document."""
    chunks, owners, total = [], [], 0
    for i, doc in enumerate(documents):
        doc = np.asarray(doc, dtype=np.int64)
        chunks.append(doc)
        owners.append(np.full(len(doc), i, dtype=np.int64))
        total += len(doc)
        if total >= max_tokens + 1:
            break
    if not chunks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(chunks)[: max_tokens + 1], np.concatenate(owners)[: max_tokens + 1]


def windows_of(stream: np.ndarray, seq_length: int, where: str) -> np.ndarray:
    """[n, seq_length + 1] non-overlapping windows: every token after the first is predicted once."""
    n = (len(stream) - 1) // seq_length
    if n == 0:
        raise ScaleDAGError(f"{where}: fewer than {seq_length + 1} tokens to evaluate")
    return np.stack([stream[j * seq_length : (j + 1) * seq_length + 1] for j in range(n)])


def token_windows(prefix: str, seq_length: int, max_tokens: int) -> np.ndarray:
    """[n, seq_length + 1] windows over the concatenated documents of an indexed dataset."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(prefix)
    stream, _ = _stream((ds[i] for i in range(len(ds))), max_tokens)
    return windows_of(stream, seq_length, f"{prefix} (validation split)")


class ByteCounts:
    """UTF-8 bytes each token id stands for: 0 for specials; a byte-level BPE token is one byte per
    character of its (byte-mapped) string; a byte-fallback <0xHH> piece is one byte; otherwise the
    bytes of its text, the SentencePiece word mark "\u2581" a space. A LLaMA-style tokenizer also
    prepends one "\u2581" to every document (its normaliser), which the text does not have: the
    first token after an EOD gives that byte back."""

    def __init__(self, tokenizer_path: str):
        from workflow.data.tokenizer import eod_id, load_tokenizer

        tok = load_tokenizer(tokenizer_path)
        config = json.loads(tok.to_str())
        byte_level = (config.get("decoder") or {}).get("type") == "ByteLevel"
        specials = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
        self.per_token = np.zeros(tok.get_vocab_size(), dtype=np.int64)
        for token, i in tok.get_vocab().items():
            if token in specials:
                continue
            if byte_level:
                self.per_token[i] = len(token)
            elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                self.per_token[i] = 1
            else:
                self.per_token[i] = len(token.replace("\u2581", " ").encode("utf-8"))
        normalizer = config.get("normalizer") or {}
        steps = normalizer.get("normalizers", [normalizer])
        self.prepended = sum(  # counted as the per-token bytes count it: the mark is one space
            len(n["prepend"].replace("\u2581", " ").encode("utf-8")) for n in steps if n.get("type") == "Prepend"
        )
        self.eod = eod_id(tok)

    def of(self, windows: np.ndarray) -> np.ndarray:
        """Bytes of each predicted token of the windows (windows[:, 1:] flattened)."""
        labels, prev = windows[:, 1:].reshape(-1), windows[:, :-1].reshape(-1)
        out = self.per_token[labels]
        if self.prepended:
            out = out - self.prepended * ((prev == self.eod) & (out > 0))
        return out


def tagged_documents(jsonl: str, tokenizer_path: str) -> dict[str, list[np.ndarray]]:
    """tag -> its documents' ids (EOD appended, as workflow/data/tokenize.py writes them)."""
    from workflow.data.tokenize import load_encoder

    texts: dict[str, list[str]] = {}
    with open(jsonl, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            record = json.loads(line)
            if "tag" not in record:
                raise ScaleDAGError(f"{jsonl}:{n}: no `tag` (give each source of a language_eval corpus a tag)")
            texts.setdefault(record["tag"], []).append(record["text"])
    encoder = load_encoder(tokenizer_path)
    return {tag: encoder.encode(docs) for tag, docs in sorted(texts.items())}


def load_model_for_eval(spec: dict):
    """Rebuild the run's model with the weights of its final checkpoint, verified first."""
    mspec = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec.get("arch_overrides"))
    model, iteration = load_final_model(spec["out_dir"], mspec)
    return model, mspec, iteration


@torch.no_grad()
def token_losses(model, windows: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Nats of every predicted token, in stream order (windows[:, 1:] flattened)."""
    seq = windows.shape[1] - 1
    device = next(model.parameters()).device  # on a GPU Megatron initialises the weights there
    out = []
    for start in range(0, len(windows), batch_size):
        w = torch.from_numpy(windows[start : start + batch_size]).to(device)
        tokens, labels = w[:, :-1], w[:, 1:]
        pos = torch.arange(seq, device=device).unsqueeze(0).expand_as(tokens)
        with megatron_cpu.model_compute():  # a plain forward: no device rewriting needed
            nats = model(tokens, pos, None, labels=labels)
        out.append(nats.double().cpu().numpy().reshape(-1))
    return np.concatenate(out)


def _bits_per_byte(nats: float, n_bytes: int) -> float | None:
    return nats / math.log(2) / n_bytes if n_bytes else None


def tag_losses(model, documents: list[np.ndarray], counts: ByteCounts, seq: int, max_tokens: int, where: str) -> dict:
    """One tag's documents: loss, bits per byte, and per-document nats and bytes of predicted tokens."""
    stream, owner = _stream(documents, max_tokens)
    windows = windows_of(stream, seq, where)
    nats = token_losses(model, windows)
    docs = owner[1 : len(nats) + 1]
    doc_nats = np.bincount(docs, weights=nats)
    doc_bytes = np.bincount(docs, weights=counts.of(windows)).astype(np.int64)
    return {
        "loss": float(nats.mean()),
        "tokens": len(nats),
        "bytes": int(doc_bytes.sum()),
        "bits_per_byte": _bits_per_byte(float(nats.sum()), int(doc_bytes.sum())),
        "documents": int(len(doc_nats)),
        "document_nats": [round(float(x), 4) for x in doc_nats],
        "document_bytes": [int(x) for x in doc_bytes],
    }


def evaluate(spec: dict, max_tokens: int, text: str | None = None) -> dict:
    megatron_cpu.activate()
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))

    counts = ByteCounts(spec["data"]["tokenizer"])
    languages = None
    try:
        model, mspec, iteration = load_model_for_eval(spec)
        windows = token_windows(spec["data"]["valid_prefix"], mspec.seq_length, max_tokens)
        nats = token_losses(model, windows)
        if text:
            languages = {
                tag: tag_losses(model, docs, counts, mspec.seq_length, max_tokens, f"{text} (tag {tag})")
                for tag, docs in tagged_documents(text, spec["data"]["tokenizer"]).items()
            }
    finally:
        shutdown()
    loss = float(nats.mean())
    result = {
        "run_id": spec.get("run_id"),
        "iteration": iteration,
        "loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_byte": _bits_per_byte(float(nats.sum()), int(counts.of(windows).sum())),
        "tokens": len(nats),
        "seq_length": mspec.seq_length,
    }
    if languages is not None:
        result["language_eval"] = {"text": text, "tags": languages}
    return result


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="validation loss of a run's final checkpoint")
    parser.add_argument("--spec", required=True, help="resolved run spec (JSON)")
    parser.add_argument("--max-tokens", type=int, default=1_000_000, help="per evaluated text (and per tag)")
    parser.add_argument("--text", help="validation JSONL with a `tag` per document, evaluated per tag")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = evaluate(json_option("--spec", args.spec), args.max_tokens, args.text)
    print(json.dumps({k: v for k, v in result.items() if k != "language_eval"}))
    for tag, r in result.get("language_eval", {}).get("tags", {}).items():
        print(f"{tag}: {r['loss']:.4f} nats/token, {r['bits_per_byte']:.4f} bits/byte over {r['documents']} documents")
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
