import json
import subprocess
import sys

import pytest
import zstandard

from workflow.corpus import clean_text, dedup_key, prepare_corpus, split_of
from workflow.errors import ScaleDAGError

LONG = " with enough words to pass the minimum length filter easily."


def doc(i: int) -> str:
    return f"Document number {i} about TiO2 and LaSrCoO3{LONG}"


def read_jsonl(path):
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def all_texts(out):
    return read_jsonl(out / "train.jsonl") + read_jsonl(out / "valid.jsonl")


def write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")


# --- cleaning ------------------------------------------------------------------------------


def test_nfc_normalisation():
    assert clean_text("Mu\u0308ller") == "M\u00fcller"


def test_control_characters_dropped_but_newline_and_tab_kept_as_whitespace():
    assert clean_text("a\x00b\x07c\x1bd\x7fe\x85f") == "abcdef"
    assert clean_text("a\tb\nc") == "a b\nc"


def test_spaces_collapsed_lines_stripped_blank_runs_collapsed():
    assert clean_text("  a   b \t c  \n   d  ") == "a b c\nd"
    assert clean_text("a\n\n\n\n\nb") == "a\n\nb"
    assert clean_text("a\n  \n \t \n\nb") == "a\n\nb"
    assert clean_text("a\r\nb\rc") == "a\nb\nc"
    assert clean_text("\n\n  x  \n\n") == "x"


def test_lone_surrogates_are_replaced():
    assert "\ud800" not in clean_text("a\ud800b")


def test_dedup_key_ignores_case_and_whitespace():
    assert dedup_key("Hello  World\n") == dedup_key("hello world")
    assert dedup_key("hello world") != dedup_key("hello worlds")


# --- the stage -----------------------------------------------------------------------------


def test_min_chars_drop_and_exact_dedup(tmp_path):
    src = tmp_path / "src.jsonl"
    texts = [doc(i) for i in range(40)]
    planted = [texts[3], texts[3].upper(), "  " + texts[7].replace(" ", "   "), "too short", "   "]
    write_jsonl(src, texts + planted)
    stats = prepare_corpus({"name": "c", "sources": [{"path": str(src)}], "valid_fraction": 0.3}, tmp_path / "out")
    kept = all_texts(tmp_path / "out")
    assert sorted(kept) == sorted(texts)
    assert stats["documents_read"] == 45
    assert stats["exact_duplicates"] == 3
    assert stats["dropped"] == {"empty": 1, "too_short": 1}
    assert stats["splits"]["train"]["documents"] + stats["splits"]["valid"]["documents"] == 40
    assert stats["splits"]["train"]["chars"] == sum(len(t) for t in read_jsonl(tmp_path / "out" / "train.jsonl"))
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == stats
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["stats.json", "train.jsonl", "valid.jsonl"]


def test_split_is_stable_when_documents_are_added(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [doc(i) for i in range(100)])
    prepare_corpus({"name": "c", "sources": [{"path": str(tmp_path / "a.jsonl")}], "valid_fraction": 0.2}, tmp_path / "o1")
    write_jsonl(tmp_path / "a.jsonl", [doc(i) for i in range(1000, 1300)] + [doc(i) for i in range(100)])
    prepare_corpus({"name": "c", "sources": [{"path": str(tmp_path / "a.jsonl")}], "valid_fraction": 0.2}, tmp_path / "o2")
    valid1 = set(read_jsonl(tmp_path / "o1" / "valid.jsonl"))
    valid2 = set(read_jsonl(tmp_path / "o2" / "valid.jsonl"))
    train1 = set(read_jsonl(tmp_path / "o1" / "train.jsonl"))
    assert valid1 and train1
    assert valid1 <= valid2 and not (train1 & valid2)
    assert all(split_of(t, 0.2) == "valid" for t in valid2)
    assert 0.1 < len(valid2) / 400 < 0.3


def test_each_source_type_with_broken_json_and_invalid_utf8(tmp_path, monkeypatch, caplog):
    (tmp_path / "txt").mkdir()
    for i in range(3):
        (tmp_path / "txt" / f"{i}.txt").write_text(doc(i), encoding="utf-8")
    (tmp_path / "txt" / "bad.txt").write_bytes(doc(3).encode() + b" \xff\xfe end")
    lines = [json.dumps({"text": doc(10)}).encode(), b'{"text": "broken', json.dumps({"body": doc(11)}).encode(),
             json.dumps({"text": doc(12)}).encode()[:-2] + b' \xc3\x28"}', b"", json.dumps({"text": doc(13)}).encode()]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    zlines = [json.dumps({"content": doc(20 + i)}) for i in range(4)] + ["not json at all"]
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(("\n".join(zlines) + "\n").encode()))

    monkeypatch.chdir(tmp_path)  # relative globs resolve against the working directory
    spec = {"name": "mixed", "valid_fraction": 0.5, "sources": [
        {"path": "txt/*.txt"}, {"path": "*.jsonl"}, {"path": "*.jsonl.zst", "text_field": "content"}]}
    with caplog.at_level("WARNING"):
        stats = prepare_corpus(spec, tmp_path / "out")
    kept = all_texts(tmp_path / "out")
    assert len(kept) == 4 + 3 + 4
    assert stats["bad_json_lines"] == 2
    assert stats["missing_text_field"] == 1
    assert stats["invalid_utf8_documents"] == 2
    assert any("\ufffd" in t for t in kept)
    assert "a.jsonl:2" in caplog.text and "b.jsonl.zst:5" in caplog.text
    assert stats["sources"]["*.jsonl.zst"]["documents_kept"] == 4


def test_empty_glob_names_the_source(tmp_path):
    with pytest.raises(ScaleDAGError, match=r"nothing/\*\.jsonl"):
        prepare_corpus({"name": "c", "sources": [{"path": str(tmp_path / "nothing" / "*.jsonl")}]}, tmp_path / "o")
    assert not (tmp_path / "o" / "train.jsonl").exists()


def test_source_with_only_empty_documents_is_an_error(tmp_path):
    write_jsonl(tmp_path / "good.jsonl", [doc(i) for i in range(50)])
    write_jsonl(tmp_path / "empty.jsonl", ["", "   \n\t "])
    spec = {"name": "c", "sources": [str(tmp_path / "good.jsonl"), str(tmp_path / "empty.jsonl")]}
    with pytest.raises(ScaleDAGError, match="empty.jsonl"):
        prepare_corpus(spec, tmp_path / "o")


@pytest.mark.parametrize("spec, message", [
    ({"name": "c"}, "exactly one"),
    ({"name": "c", "sources": ["x"], "generated": {"documents": 3, "seed": 0}}, "exactly one"),
    ({"name": "c", "generated": {"documents": 10, "seed": 0}, "valid_fraction": 1.5}, "valid_fraction"),
    ({"name": "c", "generated": {"documents": 10, "seed": 0}, "typo": 1}, "typo"),
])
def test_bad_specs_name_the_corpus(tmp_path, spec, message):
    with pytest.raises(ScaleDAGError, match=message) as info:
        prepare_corpus(spec, tmp_path)
    assert "'c'" in str(info.value)


def test_too_small_corpus_has_an_empty_split(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [doc(0)])
    with pytest.raises(ScaleDAGError, match=r"corpus 'tiny'.*split is empty"):
        prepare_corpus({"name": "tiny", "sources": [str(tmp_path / "a.jsonl")]}, tmp_path / "o")
    assert not list((tmp_path / "o").glob("*.jsonl"))


def test_generated_corpus_and_cli(tmp_path):
    spec = {"name": "synth", "generated": {"documents": 120, "seed": 5}, "valid_fraction": 0.1}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "workflow.corpus", "--spec", json.dumps(spec), "--out-dir", str(out),
                           "--progress-every", "50"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "100 documents read" in proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_read"] == 120 and stats["spec"]["min_chars"] == 50
    assert len(all_texts(out)) == 120 - stats["exact_duplicates"]
    bad = subprocess.run([sys.executable, "-m", "workflow.corpus", "--spec", '{"name": "x"}', "--out-dir", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "corpus 'x'" in bad.stderr
