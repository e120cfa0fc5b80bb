import json
import subprocess
import sys

import numpy
import pytest

from workflow.synthetic import generate_documents
from workflow.tokenize_corpus import encode_jsonl, main
from workflow.tokenizer import load_tokenizer, train_tokenizer


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    texts = generate_documents(40, seed=2) + ["naïve café 東京", "a literal <|endoftext|> inside a document"]
    write_jsonl(root / "train.jsonl", texts)
    train_tokenizer(root / "train.jsonl", root / "tokenizer.json", vocab_size=400)
    return root, texts


def test_bin_idx_read_back_equals_encoding_plus_eod(corpus):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    root, texts = corpus
    counts = encode_jsonl(root / "train.jsonl", root / "tokenizer.json", root / "tokens" / "train", batch_documents=7)
    tok = load_tokenizer(root / "tokenizer.json")
    tok.encode_special_tokens = True
    expected = [tok.encode(t).ids + [0] for t in texts]
    ds = IndexedDataset(str(root / "tokens" / "train"))
    assert len(ds) == len(texts) == counts["documents"]
    assert ds[0].dtype == numpy.uint16
    for i, ids in enumerate(expected):
        assert ds[i].tolist() == ids
    assert counts["tokens"] == sum(map(len, expected))
    assert ds[len(texts) - 1].tolist().count(0) == 1  # the literal EOD text is not a document break
    assert tok.decode(ds[len(texts) - 1].tolist()[:-1], skip_special_tokens=False) == texts[-1]
    assert sorted(p.name for p in (root / "tokens").iterdir()) == ["train.bin", "train.idx"]


def test_cli_pairs_inputs_with_prefixes(corpus, tmp_path, capsys):
    root, texts = corpus
    write_jsonl(tmp_path / "valid.jsonl", texts[:3])
    args = ["--tokenizer", str(root / "tokenizer.json"),
            "--input", str(root / "train.jsonl"), "--output-prefix", str(tmp_path / "t" / "train"),
            "--input", str(tmp_path / "valid.jsonl"), "--output-prefix", str(tmp_path / "t" / "valid")]
    main(args)
    out = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["train.bin", "train.idx", "valid.bin", "valid.idx"]
    assert f"{len(texts)} documents" in out and "3 documents" in out
    with pytest.raises(SystemExit) as exit_info:
        main(args[:-2])
    assert exit_info.value.code == 2 and "--output-prefix" in capsys.readouterr().err


def test_cli_entry_point_runs_as_a_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workflow.tokenize_corpus", "--tokenizer", "t.json",
                           "--input", str(tmp_path / "missing.jsonl"), "--output-prefix", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing.jsonl" in proc.stderr
