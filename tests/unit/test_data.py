import itertools
import json

import pytest
import torch

from workflow.data.synthetic import generate_documents
from workflow.data.tokenizer import train_tokenizer
from workflow.errors import ScaleDAGError

SEQ = 32


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    from workflow.data.tokenize import encode_jsonl

    root = tmp_path_factory.mktemp("data")
    docs = generate_documents(60, seed=9)
    for split, texts in (("train", docs[:50]), ("valid", docs[50:])):
        (root / f"{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    train_tokenizer(root / "train.jsonl", root / "tokenizer.json", vocab_size=400)
    for split in ("train", "valid"):
        encode_jsonl(root / f"{split}.jsonl", root / "tokenizer.json", root / "tokens" / split)
    return root


def build(root, **kwargs):
    from workflow.train.dataset import build_gpt_datasets

    args = dict(seq_length=SEQ, seed=1, num_train_samples=100, num_valid_samples=10)
    args.update(kwargs)
    return build_gpt_datasets(root / "tokens" / "train", root / "tokens" / "valid", root / "tokenizer.json", **args)


def test_samples_have_seq_length_and_shifted_labels(tokens):
    from megatron.core.datasets.gpt_dataset import GPTDataset
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    train, valid = build(tokens)
    assert isinstance(train, GPTDataset) and isinstance(valid, GPTDataset)
    assert len(train) >= 100 and len(valid) >= 1
    sample = train[0]
    assert sample["tokens"].shape == sample["labels"].shape == (SEQ,)
    assert torch.equal(sample["tokens"][1:], sample["labels"][:-1])
    assert torch.equal(sample["position_ids"], torch.arange(SEQ))
    assert torch.all(sample["loss_mask"] == 1)
    # valid reads the valid prefix: its first sample is a window of the valid token stream
    valid_stream = torch.cat(
        [torch.from_numpy(a.astype("int64")) for a in IndexedDataset(str(tokens / "tokens" / "valid"))]
    )
    window = torch.cat([valid[0]["tokens"], valid[0]["labels"][-1:]])
    assert any(torch.equal(valid_stream[i : i + SEQ + 1], window) for i in range(len(valid_stream) - SEQ))
    assert len(list((tokens / "tokens" / "cache").iterdir())) == 1  # one digest of this data


def _cache(root):
    from workflow.train.dataset import data_fingerprint

    return root / "tokens" / "cache" / data_fingerprint(str(root / "tokens" / "train"), str(root / "tokens" / "valid"))


def test_cache_is_reused_and_complete(tokens):
    build(tokens)
    cache = _cache(tokens)
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    train, _ = build(tokens)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    assert sum(name.endswith(".npy") for name in before) == 6  # 3 indices x (train, valid)
    assert not [n for n in before if n.startswith(".staging")]


def test_new_tokens_under_the_same_prefix_never_read_the_old_cache(tmp_path):
    """Re-tokenised data (another corpus version, same paths) gets its own index cache: Megatron's
    cache key has the path but not the content, and reading the old indices gives wrong samples."""
    from workflow.data.tokenize import encode_jsonl

    def tokenize(seed):
        docs = generate_documents(40, seed=seed)
        for split, texts in (("train", docs[:32]), ("valid", docs[32:])):
            (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
            encode_jsonl(tmp_path / f"{split}.jsonl", tmp_path / "tokenizer.json", tmp_path / "tokens" / split)

    (tmp_path / "seed.jsonl").write_text(json.dumps({"text": " ".join(generate_documents(30, seed=1))}) + "\n")
    train_tokenizer(tmp_path / "seed.jsonl", tmp_path / "tokenizer.json", vocab_size=300)
    tokenize(1)
    first = _cache(tmp_path)
    build(tmp_path, num_train_samples=20, num_valid_samples=2)
    tokenize(2)  # other documents, other lengths, the same prefixes
    assert _cache(tmp_path) != first
    train, valid = build(tmp_path, num_train_samples=20, num_valid_samples=2)
    for ds in (train, valid):
        for i in range(len(ds)):
            assert ds[i]["tokens"].shape == (SEQ,)


def test_batch_iterator_resumes_at_exact_sample(tokens):
    from workflow.train.dataset import batch_iterator

    train, _ = build(tokens)
    k, mbs = 5, 3
    full = torch.cat([b["tokens"] for b in itertools.islice(batch_iterator(train, mbs), 4)])
    resumed = torch.cat([b["tokens"] for b in itertools.islice(batch_iterator(train, mbs, start_sample=k), 2)])
    assert torch.equal(resumed, full[k : k + 2 * mbs])
    batch = next(batch_iterator(train, mbs, start_sample=k))
    assert set(batch) == {"tokens", "labels", "loss_mask", "position_ids", "attention_mask"}
    assert batch["attention_mask"] is None
    assert batch["tokens"].shape == (mbs, SEQ) and batch["tokens"].dtype == torch.int64
    assert torch.equal(batch["labels"][0], train[k]["labels"])


def test_batch_iterator_wraps_around(tokens):
    from workflow.train.dataset import batch_iterator

    _, valid = build(tokens)
    n = len(valid)
    batch = next(batch_iterator(valid, 2, start_sample=n - 1))
    assert torch.equal(batch["tokens"][0], valid[n - 1]["tokens"])
    assert torch.equal(batch["tokens"][1], valid[0]["tokens"])


def test_same_seed_same_order_other_seed_differs(tokens):
    a, _ = build(tokens)
    b, _ = build(tokens)
    c, _ = build(tokens, seed=2)
    assert all(torch.equal(a[i]["tokens"], b[i]["tokens"]) for i in range(10))
    assert not all(torch.equal(a[i]["tokens"], c[i]["tokens"]) for i in range(10))


def test_missing_prefix_is_named(tokens):
    from workflow.train.dataset import build_gpt_datasets

    with pytest.raises(ScaleDAGError, match="nope.bin"):
        build_gpt_datasets(tokens / "nope", tokens / "tokens" / "valid", tokens / "tokenizer.json", SEQ, 1, 10, 10)


def test_too_short_valid_data_is_an_error(tokens):
    with pytest.raises(ScaleDAGError, match=r"valid data has fewer than seq_length\+1"):
        build(tokens, seq_length=10_000, num_train_samples=None, num_valid_samples=None)


def test_adapter_satisfies_megatron(tokens):
    from workflow.train.dataset import HFTokenizerAdapter

    adapter = HFTokenizerAdapter(tokens / "tokenizer.json")
    assert adapter.eod == adapter.eos == 0 and adapter.vocab_size == 400
    assert not hasattr(adapter, "pad")
    text = "TiO2 is a semiconductor."
    assert adapter.detokenize(adapter.tokenize(text)) == text
    json.dumps(adapter.unique_identifiers)


def test_llama_style_tokenizer_data_reads_through_gpt_dataset(tmp_path):
    """A sentencepiece-bpe corpus (EOD = </s>, id 2) with its test split, read back by GPTDataset."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from workflow.data.corpus import prepare_corpus
    from workflow.data.tokenize import encode_jsonl
    from workflow.train.dataset import HFTokenizerAdapter, build_gpt_datasets

    prepare_corpus(
        {"name": "sp", "generated": {"documents": 200, "seed": 4}, "valid_fraction": 0.1, "test_fraction": 0.1},
        tmp_path,
    )
    train_tokenizer(tmp_path / "train.jsonl", tmp_path / "tokenizer.json", vocab_size=400, kind="sentencepiece-bpe")
    for split in ("train", "valid", "test"):
        encode_jsonl(tmp_path / f"{split}.jsonl", tmp_path / "tokenizer.json", tmp_path / "tokens" / split)
    assert HFTokenizerAdapter(tmp_path / "tokenizer.json").eod == 2
    train, test = build_gpt_datasets(
        tmp_path / "tokens" / "train", tmp_path / "tokens" / "test", tmp_path / "tokenizer.json", SEQ, 1, 20, 2
    )
    assert train[0]["tokens"].shape == (SEQ,) and len(test) >= 2
    docs = IndexedDataset(str(tmp_path / "tokens" / "test"))
    assert all(docs[i][-1] == 2 and (docs[i][:-1] != 2).all() for i in range(len(docs)))
