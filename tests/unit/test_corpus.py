import json
import random
import subprocess
import sys

import pytest
import zstandard

from conftest import REPO, job_counts, require_shared, snakemake
from workflow.data.corpus import copies_of, normalise_spec, prepare_corpus, split_of
from workflow.errors import ScaleDAGError

LONG = " with enough words to pass the minimum length filter easily."
SPLITS = ("train", "valid", "test")


def doc(i: int) -> str:
    return f"Document number {i} about TiO2 and LaSrCoO3{LONG}"


def read_jsonl(path):
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def all_texts(out):
    return [t for split in SPLITS for t in read_jsonl(out / f"{split}.jsonl")]


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")


def spec(path, **kw):
    return {"name": "c", "sources": [{"path": str(path)}], "valid_fraction": 0.2, "test_fraction": 0.2, **kw}


def test_filters_and_exact_dedup_are_counted(tmp_path):
    src = tmp_path / "src.jsonl"
    texts = [doc(i) for i in range(40)]
    planted = [
        texts[3],
        texts[3].upper(),
        "  " + texts[7].replace(" ", "   "),
        "too short",
        "   ",
        "1234 5678 90 ++ -- ** 1234 5678 90 ++ -- ** 1234 5678 90 ++ -- ** 1234 5678 90",
        "same line\nsame line\nsame line\n" + doc(99),
    ]
    write_jsonl(src, texts + planted)
    stats = prepare_corpus(spec(src), tmp_path / "out")
    assert sorted(all_texts(tmp_path / "out")) == sorted(texts)
    assert stats["documents_read"] == 47 and stats["documents_kept"] == 40
    assert stats["exact_duplicates"] == 3
    assert stats["dropped"] == {
        "empty": 1,
        "min_chars": 1,
        "max_chars": 0,
        "max_non_alpha_fraction": 1,
        "max_duplicate_line_fraction": 1,
    }
    assert stats["filters"]["exact_dedup"] == {"in": 46, "out": 43}
    assert stats["filters"]["near_dedup"] == {"in": 40, "out": 40}
    assert sum(stats["splits"][s]["documents"] for s in SPLITS) == 40
    assert stats["splits"]["train"]["chars"] == sum(len(t) for t in read_jsonl(tmp_path / "out" / "train.jsonl"))
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == stats
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "stats.json",
        "test.jsonl",
        "train.jsonl",
        "valid.jsonl",
    ]


def test_near_duplicates_removed_distinct_kept(tmp_path):
    rng = random.Random(1)
    vocab = "oxide film band gap lattice strain phonon spin dopant vacancy grain anneal epitaxy interface".split()
    texts = [" ".join(rng.choice(vocab) + str(rng.randrange(40)) for _ in range(120)) for _ in range(60)]
    near = [t.replace(t.split()[50], "REPLACED", 1) for t in texts[:10]]
    write_jsonl(tmp_path / "a.jsonl", texts + near)
    stats = prepare_corpus(spec(tmp_path / "a.jsonl"), tmp_path / "on")
    assert stats["near_duplicates"] == 10 and sorted(all_texts(tmp_path / "on")) == sorted(texts)
    off = prepare_corpus(spec(tmp_path / "a.jsonl", near_dedup=False), tmp_path / "off")
    assert off["near_duplicates"] == 0 and off["documents_kept"] == 70


def test_split_is_stable_when_documents_are_added(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [doc(i) for i in range(100)])
    prepare_corpus(spec(tmp_path / "a.jsonl"), tmp_path / "o1")
    write_jsonl(tmp_path / "a.jsonl", [doc(i) for i in range(1000, 1300)] + [doc(i) for i in range(100)])
    prepare_corpus(spec(tmp_path / "a.jsonl"), tmp_path / "o2")
    before = {s: set(read_jsonl(tmp_path / "o1" / f"{s}.jsonl")) for s in SPLITS}
    after = {s: set(read_jsonl(tmp_path / "o2" / f"{s}.jsonl")) for s in SPLITS}
    for s in SPLITS:
        assert before[s] and before[s] <= after[s]
        assert all(split_of(t, 0.2, 0.2) == s for t in after[s])
        assert 0.1 < len(after[s]) / 400 < (0.8 if s == "train" else 0.3)


def test_mixture_weights_sample_and_repeat(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [doc(i) for i in range(400)])
    write_jsonl(tmp_path / "b.jsonl", [f"Other corpus text {i}{LONG}" for i in range(400)])
    stats = prepare_corpus(
        {
            "name": "mix",
            "valid_fraction": 0.1,
            "test_fraction": 0.1,
            "near_dedup": False,
            "sources": [
                {"path": str(tmp_path / "a.jsonl"), "weight": 0.25},
                {"path": str(tmp_path / "b.jsonl"), "weight": 2.0},
            ],
        },
        tmp_path / "o",
    )
    a, b = (stats["sources"][str(tmp_path / n)] for n in ("a.jsonl", "b.jsonl"))
    assert a["documents_kept"] == b["documents_kept"] == 400
    assert 60 < a["documents_written"] < 140  # about a quarter
    train = read_jsonl(tmp_path / "o" / "train.jsonl")
    b_train = [t for t in train if t.startswith("Other")]
    assert len(b_train) == 2 * len(set(b_train))  # each b document twice in train ...
    for s in ("valid", "test"):  # ... and once in valid/test
        held_out = read_jsonl(tmp_path / "o" / f"{s}.jsonl")
        assert len(held_out) == len(set(held_out))
    assert copies_of("x", 3.0) == 3 and {copies_of(doc(i), 0.5) for i in range(50)} == {0, 1}


def test_each_source_type_in_one_corpus_with_bad_input(tmp_path, caplog):
    (tmp_path / "txt").mkdir()
    for i in range(3):
        (tmp_path / "txt" / f"{i}.txt").write_text(doc(i), encoding="utf-8")
    (tmp_path / "txt" / "bad.txt").write_bytes(doc(3).encode() + b" \xff\xfe end")
    lines = [
        json.dumps({"text": doc(10)}).encode(),
        b'{"text": "broken',
        json.dumps({"body": doc(11)}).encode(),
        json.dumps({"text": doc(12)}).encode()[:-2] + b' \xc3\x28"}',
        b"",
        json.dumps({"text": doc(13)}).encode(),
    ]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    zlines = [json.dumps({"content": doc(20 + i)}) for i in range(4)] + ["not json at all"]
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(("\n".join(zlines) + "\n").encode()))
    spec_ = {
        "name": "mixed",
        "valid_fraction": 0.3,
        "test_fraction": 0.3,
        "sources": [
            {"path": str(tmp_path / "txt/*.txt")},
            {"path": str(tmp_path / "*.jsonl")},
            {"path": str(tmp_path / "*.jsonl.zst"), "text_field": "content"},
            {"generated": {"documents": 5, "seed": 1}},
        ],
    }
    with caplog.at_level("WARNING"):
        stats = prepare_corpus(spec_, tmp_path / "out")
    kept = all_texts(tmp_path / "out")
    assert len(kept) == 4 + 3 + 4 + 5
    assert stats["bad_json_lines"] == 2 and stats["missing_text_field"] == 1 and stats["invalid_utf8_documents"] == 2
    assert stats["bad_input"]["bad_json_lines_examples"] == [f"{tmp_path}/a.jsonl:2", f"{tmp_path}/b.jsonl.zst:5"]
    assert any("\ufffd" in t for t in kept)
    assert stats["sources"][str(tmp_path / "*.jsonl.zst")]["documents_kept"] == 4
    assert stats["sources"]["generated(documents=5, seed=1)"]["documents_kept"] == 5


def test_truncated_zstd_is_refused_not_read_short(tmp_path):
    whole = zstandard.ZstdCompressor().compress(
        "".join(json.dumps({"text": doc(i)}) + "\n" for i in range(400)).encode()
    )
    (tmp_path / "a.jsonl.zst").write_bytes(whole[: int(len(whole) * 0.9)])
    with pytest.raises(ScaleDAGError) as info:
        prepare_corpus(spec(tmp_path / "a.jsonl.zst"), tmp_path / "o")
    assert str(info.value).startswith(f"{tmp_path / 'a.jsonl.zst'}: truncated or corrupt zstd file (")
    assert not list((tmp_path / "o").glob("*.jsonl"))


def test_deeply_nested_line_is_a_bad_line_with_its_location(tmp_path, caplog):
    texts = [doc(i) for i in range(40)]
    lines = (
        [json.dumps({"text": t}) for t in texts[:20]]
        + ["[" * 100_000 + "]" * 100_000]
        + [json.dumps({"text": t}) for t in texts[20:]]
    )
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING"):
        stats = prepare_corpus(spec(tmp_path / "a.jsonl"), tmp_path / "o")
    assert sorted(all_texts(tmp_path / "o")) == sorted(texts)
    assert stats["bad_json_lines"] == 1 and stats["bad_input"]["bad_json_lines_examples"] == [f"{tmp_path}/a.jsonl:21"]
    assert f"{tmp_path}/a.jsonl:21" in caplog.text and "1 bad json lines in all" in caplog.text


def test_wrong_text_field_is_one_line_naming_the_fields(tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"id": i, "body": doc(i)}) + "\n" for i in range(400)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.corpus",
            "--spec",
            json.dumps(spec(tmp_path / "a.jsonl")),
            "--out-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]  # after the warnings
    assert errors == [f"error: {tmp_path / 'a.jsonl'}: 400 records lack field 'text' (fields seen: body, id)"]
    assert proc.stderr.endswith(errors[0] + "\n")
    assert not list((tmp_path / "o").glob("*.jsonl"))


def test_empty_glob_names_the_source_and_writes_nothing(tmp_path):
    with pytest.raises(ScaleDAGError, match=r"nothing/\*\.jsonl"):
        prepare_corpus(spec(tmp_path / "nothing" / "*.jsonl"), tmp_path / "o")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_source_with_only_empty_documents_is_an_error(tmp_path):
    write_jsonl(tmp_path / "good.jsonl", [doc(i) for i in range(50)])
    write_jsonl(tmp_path / "empty.jsonl", ["", "   \n\t "])
    bad = {"name": "c", "sources": [str(tmp_path / "good.jsonl"), str(tmp_path / "empty.jsonl")]}
    with pytest.raises(ScaleDAGError, match="empty.jsonl"):
        prepare_corpus(bad, tmp_path / "o")
    assert not list((tmp_path / "o").glob("*.jsonl"))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"name": "c"}, "exactly one"),
        ({"name": "c", "sources": ["x"], "generated": {"documents": 3, "seed": 0}}, "exactly one"),
        ({"name": "c", "generated": {"documents": 10, "seed": 0}, "valid_fraction": 1.5}, "valid_fraction"),
        ({"name": "c", "generated": {"documents": 10, "seed": 0}, "valid_fraction": 0.6, "test_fraction": 0.5}, "sum"),
        ({"name": "c", "generated": {"documents": 10, "seed": 0}, "typo": 1}, "typo"),
        ({"name": "c", "sources": [{"path": "a", "url": "http://x/a"}]}, "exactly one of"),
        ({"name": "c", "sources": [{"url": "http://x/a.jsonl"}]}, "sha256"),
        ({"name": "c", "sources": [{"path": "a", "weight": 0}]}, "weight"),
        ({"name": "c", "sources": [{"path": "a"}], "language": {"code": "fr"}}, "only 'en'"),
    ],
)
def test_bad_specs_name_the_corpus(tmp_path, bad, message):
    with pytest.raises(ScaleDAGError, match=message) as info:
        prepare_corpus(bad, tmp_path)
    assert "'c'" in str(info.value)


def test_too_small_corpus_has_an_empty_split(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [doc(0)])
    with pytest.raises(ScaleDAGError, match=r"corpus 'tiny'.*split is empty"):
        prepare_corpus({"name": "tiny", "sources": [str(tmp_path / "a.jsonl")]}, tmp_path / "o")
    assert not list((tmp_path / "o").glob("*.jsonl"))


def test_every_configured_corpus_is_a_valid_spec():
    from workflow.config import corpus_spec, load_config, variant_corpus

    config = load_config(REPO / "config.yaml")
    for name in config["corpora"]:
        normalise_spec(corpus_spec(config, name))
    tiny_corpora = {config["scales"]["tiny"]["corpus"]} | {
        variant_corpus(st, run, "tiny")
        for st in config["studies"].values()
        for run in st.get("runs", {}).values()
        if variant_corpus(st, run, "tiny")
    }
    tiny_corpora |= {st["language_eval"]["tiny"] for st in config["studies"].values() if "language_eval" in st}
    for name in tiny_corpora:  # the default tiny DAG runs only on data the project makes itself
        assert all("generated" in s for s in normalise_spec(corpus_spec(config, name))["sources"]), name


def test_config_rejects_a_bad_source_with_one_line(tmp_path):
    import yaml

    from workflow.config import load_config

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["corpora"]["synthetic"] = {"sources": [{"url": "https://example.org/a.jsonl"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ScaleDAGError, match=r"^config: corpora.synthetic: .*needs a sha256$"):
        load_config(tmp_path / "c.yaml")


def test_generated_corpus_and_cli(tmp_path):
    spec_ = {"name": "synth", "generated": {"documents": 120, "seed": 5}, "valid_fraction": 0.1, "test_fraction": 0.1}
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow.data.corpus",
            "--spec",
            json.dumps(spec_),
            "--out-dir",
            str(out),
            "--progress-every",
            "50",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "100 documents read" in proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_read"] == 120 and stats["spec"]["min_chars"] == 50
    assert len(all_texts(out)) == 120 - stats["exact_duplicates"] - stats["near_duplicates"]
    bad = subprocess.run(
        [sys.executable, "-m", "workflow.data.corpus", "--spec", '{"name": "x"}', "--out-dir", str(out)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "corpus 'x'" in bad.stderr


# -- the DAG ---------------------------------------------------------------------------------------


def test_tiny_dag_tokenizes_in_one_shard_and_paper_scatters():
    tiny = snakemake("-n", "--forceall", "--config", "scale=tiny", "results=/tmp/r")
    assert tiny.returncode == 0, tiny.stderr
    counts = job_counts(tiny.stdout)
    assert counts["tokenize_shard"] == counts["tokenize_corpus"] == counts["prepare_corpus"]
    assert "/tmp/r/tiny/data/synthetic/tokens/shards/0-of-1/train.bin" in tiny.stdout
    paper = snakemake("-n", "--forceall", "--config", "scale=paper")
    assert paper.returncode == 0, paper.stderr
    counts = job_counts(paper.stdout)
    from workflow.config import load_config

    shards = load_config(REPO / "config.yaml", {"scale": "paper"})["scales"]["paper"]["tokenizer"]["shards"]
    assert shards > 1 and counts["tokenize_shard"] == shards * counts["tokenize_corpus"]
    assert f"tokens/shards/{shards - 1}-of-{shards}/test.idx" in paper.stdout


def test_a_run_naming_a_corpus_trains_on_that_corpus_data(tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    run = next((v, r) for v, r in config["studies"]["bloom_ablations"]["runs"].items() if r.get("corpus"))
    for name, study in config["studies"].items():  # --configfile merges into config.yaml: switch the rest off
        study["enabled"] = name == "bloom_ablations"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--forceall", "--configfile", str(tmp_path / "c.yaml"), "-p")
    assert proc.returncode == 0, proc.stderr
    # the scale's corpus, the corpus ablation's and the multilingual model's (also its language_eval text)
    assert job_counts(proc.stdout)["prepare_corpus"] == 3
    corpus = run[1]["corpus"] if isinstance(run[1]["corpus"], str) else run[1]["corpus"]["tiny"]
    assert f"results/tiny/data/{corpus}/tokens/train.bin" in proc.stdout
    assert "results/tiny/data/multilingual-synthetic/tokens/train.bin" in proc.stdout


# -- the real arXiv listing (CI) ---------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_arxiv_corpus_is_deduplicated(tmp_path):
    tarball = require_shared("matsci_corpus/arXiv_cond-mat_origin_md.tar.gz")
    from workflow.config import corpus_spec, load_config

    config = load_config(REPO / "config.yaml")
    spec_ = corpus_spec(config, "arxiv-cond-mat")
    assert spec_["sources"][0]["path"].endswith(tarball.name)
    stats = prepare_corpus(spec_, tmp_path / "arxiv", progress_every=0)
    assert stats["arxiv"] == {"entries": 52189, "repeated_ids": 13658}  # replace / cross-list repeats dropped
    assert stats["documents_read"] == 38531
    assert stats["documents_kept"] >= 35000
    kept = sum(stats["splits"][s]["documents"] for s in SPLITS)
    assert kept == stats["documents_kept"]
    texts = all_texts(tmp_path / "arxiv")
    assert len(set(texts)) == len(texts)
    assert not any("Announce Type:" in t or "\nAbstract:" in t for t in texts)
    titles = [t.split("\n", 1)[0] for t in texts]
    assert len(set(titles)) > 0.99 * len(titles)
