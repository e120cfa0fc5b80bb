import json
import subprocess
import sys

import numpy
import pytest

from workflow.data.synthetic import generate_documents
from workflow.data.tokenize import encode_jsonl, main, merge_corpus, shard_lines, token_dtype
from workflow.data.tokenizer import load_tokenizer, train_tokenizer


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")


@pytest.fixture(scope="module", params=["byte-bpe", "sentencepiece-bpe"])
def corpus(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"enc-{request.param}")
    texts = generate_documents(40, seed=2) + ["naïve café 東京", "a literal <|endoftext|> and </s> inside a document"]
    write_jsonl(root / "train.jsonl", texts)
    train_tokenizer(root / "train.jsonl", root / "tokenizer.json", vocab_size=400, kind=request.param)
    return root, texts


def test_bin_idx_read_back_equals_encoding_plus_eod(corpus):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from workflow.data.tokenizer import eod_id

    root, texts = corpus
    counts = encode_jsonl(root / "train.jsonl", root / "tokenizer.json", root / "tokens" / "train", batch_documents=7)
    tok = load_tokenizer(root / "tokenizer.json")
    tok.encode_special_tokens = True
    eod = eod_id(tok)
    expected = [tok.encode(t, add_special_tokens=False).ids + [eod] for t in texts]
    ds = IndexedDataset(str(root / "tokens" / "train"))
    assert len(ds) == len(texts) == counts["documents"]
    assert ds[0].dtype == numpy.uint16
    for i, ids in enumerate(expected):
        assert ds[i].tolist() == ids
    assert counts["tokens"] == sum(map(len, expected))
    assert ds[len(texts) - 1].tolist().count(eod) == 1  # the literal special-token text is not a document break
    assert tok.decode(ds[len(texts) - 1].tolist()[:-1], skip_special_tokens=False) == texts[-1]
    assert sorted(p.name for p in (root / "tokens").iterdir()) == ["train.bin", "train.idx"]


@pytest.mark.parametrize("num_shards", [1, 2, 3, 7, 50])
def test_shards_partition_the_lines_in_order(tmp_path, num_shards):
    lines = [json.dumps({"text": "x" * (i % 13)}) + "\n" for i in range(37)]
    (tmp_path / "a.jsonl").write_text("".join(lines))
    got = [line.decode() for k in range(num_shards) for _, line in shard_lines(tmp_path / "a.jsonl", k, num_shards)]
    assert got == lines


def test_sharded_encode_then_merge_equals_one_pass(corpus, tmp_path):
    root, texts = corpus
    splits = {"train": texts[:30], "valid": texts[30:36], "test": texts[36:]}
    for split, part in splits.items():
        write_jsonl(tmp_path / f"{split}.jsonl", part)
    stats = {"corpus": "c", "splits": {s: {"documents": len(p), "chars": sum(map(len, p))} for s, p in splits.items()}}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    runs = {}
    for shards in (1, 4):
        dirs = [str(tmp_path / f"s{shards}" / f"{k}-of-{shards}") for k in range(shards)]
        for k, d in enumerate(dirs):
            args = [
                "encode",
                "--tokenizer",
                str(root / "tokenizer.json"),
                "--shard",
                str(k),
                "--num-shards",
                str(shards),
                "--threads",
                "1",
            ]
            for split in splits:
                args += ["--input", str(tmp_path / f"{split}.jsonl"), "--output-prefix", f"{d}/{split}"]
            main(args)
        main(
            [
                "merge",
                "--tokenizer",
                str(root / "tokenizer.json"),
                "--corpus-stats",
                str(tmp_path / "stats.json"),
                "--shard-dir",
                *dirs,
                "--out-dir",
                str(tmp_path / f"merged{shards}"),
            ]
        )
        runs[shards] = tmp_path / f"merged{shards}"
    for split in splits:
        for ext in ("bin", "idx"):
            assert (runs[1] / f"{split}.{ext}").read_bytes() == (runs[4] / f"{split}.{ext}").read_bytes()
            # A single shard is copied, never linked: Snakemake touches each output after the job, and
            # a shared inode would make the shard (an input) newer than the outputs touched before it.
            shard = tmp_path / "s1" / "0-of-1" / f"{split}.{ext}"
            assert not (runs[1] / f"{split}.{ext}").samefile(shard)
    merged = json.loads((runs[4] / "stats.json").read_text())
    assert merged["shards"] == 4 and merged["dtype"] == "uint16" and merged["prepare"] == stats
    assert {s: c["documents"] for s, c in merged["splits"].items()} == {s: len(p) for s, p in splits.items()}
    assert merged["splits"]["train"]["tokens"] * 2 == merged["splits"]["train"]["bytes"]


def test_merge_refuses_a_document_count_that_disagrees(corpus, tmp_path):
    from workflow.errors import ScaleDAGError

    root, texts = corpus
    for split in ("train", "valid", "test"):
        write_jsonl(tmp_path / f"{split}.jsonl", texts[:3])
        encode_jsonl(tmp_path / f"{split}.jsonl", root / "tokenizer.json", tmp_path / "s" / split)
    (tmp_path / "s" / "counts.json").write_text(
        json.dumps({s: {"documents": 3, "tokens": 0} for s in ("train", "valid", "test")})
    )
    stats = {"corpus": "c", "splits": {s: {"documents": 4, "chars": 0} for s in ("train", "valid", "test")}}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(ScaleDAGError, match="3 documents encoded but .* lists 4"):
        merge_corpus([str(tmp_path / "s")], root / "tokenizer.json", tmp_path / "stats.json", tmp_path / "out")
    assert not (tmp_path / "out" / "stats.json").exists()


def test_dtype_follows_the_vocabulary_like_megatron():
    from megatron.core.datasets.indexed_dataset import DType

    for vocab in (300, 32000, 65499, 65500, 128256):
        assert token_dtype(vocab) == DType.optimal_dtype(vocab)


def test_cli_errors_are_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.tokenize",
            "encode",
            "--tokenizer",
            "t.json",
            "--input",
            str(tmp_path / "missing.jsonl"),
            "--output-prefix",
            "x",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing.jsonl" in proc.stderr
    (tmp_path / "a.jsonl").write_text("{}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.tokenize",
            "encode",
            "--tokenizer",
            "t.json",
            "--input",
            str(tmp_path / "a.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--output-prefix" in proc.stderr
