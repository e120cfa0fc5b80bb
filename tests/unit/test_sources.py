import gzip
import io
import json
import tarfile

import pyarrow
import pyarrow.parquet as pq
import pytest
import zstandard

from workflow.data.sources import Counters, parse_arxiv_listing, read_source
from workflow.errors import ScaleDAGError

DOC = "Document {} about TiO2 and LaSrCoO3 with enough words to pass any length filter."


def jsonl(texts, field="text"):
    return "".join(json.dumps({field: t}) + "\n" for t in texts).encode()


def read(source, counters=None, **kw):
    return list(read_source(source, counters if counters is not None else Counters(), **kw))


def test_txt_one_document_per_file_sorted(tmp_path):
    for i in (2, 0, 1):
        (tmp_path / f"{i}.txt").write_text(DOC.format(i))
    assert read({"path": str(tmp_path / "*.txt")}) == [DOC.format(i) for i in range(3)]


@pytest.mark.parametrize(
    "suffix, pack",
    [
        (".jsonl", lambda b: b),
        (".jsonl.gz", gzip.compress),
        (".jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_jsonl_plain_gzip_zstd_with_text_field(tmp_path, suffix, pack):
    (tmp_path / f"a{suffix}").write_bytes(pack(jsonl([DOC.format(i) for i in range(5)], field="body")))
    assert read({"path": str(tmp_path / f"a{suffix}"), "text_field": "body"}) == [DOC.format(i) for i in range(5)]


def test_parquet(tmp_path):
    table = pyarrow.table({"content": [DOC.format(0), None, DOC.format(2)], "id": [1, 2, 3]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=2)
    counters = Counters()
    assert read({"path": str(tmp_path / "a.parquet"), "text_field": "content"}, counters) == [
        DOC.format(0),
        DOC.format(2),
    ]
    assert counters["missing_text_field"] == 1
    with pytest.raises(ScaleDAGError, match="no column 'text'"):
        read({"path": str(tmp_path / "a.parquet")})
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ScaleDAGError, match="bad.parquet: truncated or corrupt parquet file"):
        read({"path": str(tmp_path / "bad.parquet")})


def test_generated_source_is_the_generated_corpus():
    from workflow.data.synthetic import generate_documents

    assert read({"generated": {"documents": 5, "seed": 3}}) == generate_documents(5, 3)


OLD_FORMAT = """[1]. [*Spin ice on a breathing pyrochlore*](https://arxiv.org/abs/2505.00767 "Spin ice")
A. Author, B. Author
Spin ice systems represent a prime example of constrained spin systems.

[2]. [*Moir\\'e qubits*](https://arxiv.org/abs/2505.00800v2 "Moir\\'e qubits")
C. Author
Gate-defined moir\\'e quantum dots are a platform.
"""
NEW_FORMAT = """[1]. [*Spin ice on a breathing pyrochlore*](https://arxiv.org/abs/2505.00767 "Spin ice")

A. Author, B. Author

arXiv:2505.00767v3 Announce Type: replace 
Abstract: A revised abstract of the same paper.



[2]. [*Velocity hierarchy in matter waves*](https://arxiv.org/abs/2608.05241 "Velocity")

X. Yu, W. Chen

arXiv:2608.05241v1 Announce Type: new 
Abstract: Classical waves in dispersive media exhibit distinct phase and group velocities.
"""  # noqa: W291 - the feed's "Announce Type: <kind> " lines end in a space


def test_parse_arxiv_listing_both_formats():
    assert list(parse_arxiv_listing(OLD_FORMAT)) == [
        (
            "2505.00767",
            "Spin ice on a breathing pyrochlore\n\nSpin ice systems represent a prime example of constrained spin systems.",
        ),
        ("2505.00800", "Moir\\'e qubits\n\nGate-defined moir\\'e quantum dots are a platform."),
    ]
    new = list(parse_arxiv_listing(NEW_FORMAT))
    assert new[1] == (
        "2608.05241",
        "Velocity hierarchy in matter waves\n\n"
        "Classical waves in dispersive media exhibit distinct phase and group velocities.",
    )
    assert all("Announce" not in text and "Abstract:" not in text and "Author" not in text for _, text in new)


def test_arxiv_tarball_keeps_each_paper_once(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("data/2025-05-05_origin.md", OLD_FORMAT), ("data/2026-08-07_origin.md", NEW_FORMAT)):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    (tmp_path / "listing.tar.gz").write_bytes(buf.getvalue())
    counters = Counters()
    docs = read({"path": str(tmp_path / "listing.tar.gz"), "format": "arxiv-listing"}, counters)
    assert [d.split("\n")[0] for d in docs] == [
        "Spin ice on a breathing pyrochlore",
        "Moir\\'e qubits",
        "Velocity hierarchy in matter waves",
    ]
    assert "constrained spin systems" in docs[0]  # the first announcement wins over the replacement
    assert counters["arxiv_entries"] == 4 and counters["arxiv_repeated_ids"] == 1
    (tmp_path / "2025-05-05_origin.md").write_text(OLD_FORMAT)  # loose files are recognised by name
    assert len(read({"path": str(tmp_path / "*_origin.md")})) == 2


def test_bad_input_is_counted_not_fatal(tmp_path, caplog):
    lines = [
        json.dumps({"text": DOC.format(0)}).encode(),
        b'{"text": "broken',
        json.dumps({"body": "x"}).encode(),
        json.dumps({"text": "caf\u00e9"}).encode().replace(b"\\u00e9", b"\xc3\x28"),
        b"",
        b"[1, 2]",
    ]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    counters = Counters()
    with caplog.at_level("WARNING"):
        docs = read({"path": str(tmp_path / "a.jsonl")}, counters)
    assert docs[0] == DOC.format(0) and "\ufffd" in docs[1] and len(docs) == 2
    assert counters["bad_json_lines"] == 2 and counters["missing_text_field"] == 1  # [1, 2] is no record
    assert counters["invalid_utf8_documents"] == 1
    assert counters["bad_json_lines_examples"] == [f"{tmp_path / 'a.jsonl'}:2", f"{tmp_path / 'a.jsonl'}:6"]
    assert "a.jsonl:2" in caplog.text and "a.jsonl:6" in caplog.text


def test_ten_megabyte_single_line(tmp_path):
    big = "word " * (2 * 1024 * 1024)  # 10 MB, one line
    (tmp_path / "big.jsonl").write_bytes(jsonl([big, DOC.format(1)]))
    (tmp_path / "big.txt").write_text(big)
    assert [len(d) for d in read({"path": str(tmp_path / "big.jsonl")})] == [len(big), len(DOC.format(1))]
    assert len(read({"path": str(tmp_path / "big.txt")})[0]) == len(big)


# A damaged file of any kind is refused with the same one line, never read as a shorter corpus.
def numbered_jsonl(n=400):
    return jsonl([f"{DOC.format(i)} {' '.join(str(i * j) for j in range(40))}" for i in range(n)])


def tarball(texts, mode="w:gz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for i, text in enumerate(texts):
            info = tarfile.TarInfo(f"data/2025-05-{i + 1:02d}_origin.md")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def parquet_bytes(n=400):
    buf = io.BytesIO()
    pq.write_table(pyarrow.table({"text": [DOC.format(i) for i in range(n)]}), buf, row_group_size=50)
    return buf.getvalue()


def assert_damaged(path, kind, source):
    with pytest.raises(ScaleDAGError) as info:
        read(source)
    message = str(info.value)
    assert message.startswith(f"{path}: truncated or corrupt {kind} file (") and message.endswith(")")
    assert "\n" not in message


ZSTD = zstandard.ZstdCompressor().compress


@pytest.mark.parametrize(
    "name, kind, whole, cut",
    [
        ("a.jsonl.gz", "gzip", lambda: gzip.compress(numbered_jsonl()), lambda b: b[: int(len(b) * 0.9)]),
        ("a.jsonl.zst", "zstd", lambda: ZSTD(numbered_jsonl()), lambda b: b[: int(len(b) * 0.9)]),
        ("a.jsonl.gz", "gzip", lambda: gzip.compress(numbered_jsonl()), lambda b: b[:-4]),  # only the length lost
        ("a.jsonl.zst", "zstd", lambda: ZSTD(numbered_jsonl()), lambda b: b[:-1]),
        ("a.jsonl.zst", "zstd", lambda: ZSTD(numbered_jsonl(200)) + ZSTD(numbered_jsonl(200)), lambda b: b[:-100]),
        ("a.jsonl.gz", "gzip", lambda: gzip.compress(numbered_jsonl()), lambda b: b"not gzip" + b),
        ("a.jsonl.zst", "zstd", lambda: ZSTD(numbered_jsonl()), lambda b: b + b"trailing garbage"),
        ("a.parquet", "parquet", parquet_bytes, lambda b: b[: int(len(b) * 0.9)]),
        ("l.tar.gz", "tar", lambda: tarball([OLD_FORMAT, NEW_FORMAT] * 20), lambda b: b[: int(len(b) * 0.9)]),
        ("l.tar", "tar", lambda: tarball([OLD_FORMAT, NEW_FORMAT] * 20, "w"), lambda b: b[: 512 * 6]),  # at a member
    ],
    ids=[
        "gz-cut",
        "zst-cut",
        "gz-no-trailer",
        "zst-last-byte",
        "zst-second-frame",
        "gz-bad-magic",
        "zst-trailing-garbage",
        "parquet-cut",
        "tar.gz-cut",
        "tar-cut-between-members",
    ],
)
def test_damaged_file_is_one_clear_error(tmp_path, name, kind, whole, cut):
    data = whole()
    (tmp_path / name).write_bytes(data)
    fmt = {"format": "arxiv-listing"} if ".tar" in name else {}
    assert read({"path": str(tmp_path / name), **fmt})  # the whole file reads
    (tmp_path / name).write_bytes(cut(data))
    assert_damaged(tmp_path / name, kind, {"path": str(tmp_path / name), **fmt})


def test_concatenated_zstd_frames_are_one_stream(tmp_path):
    (tmp_path / "a.jsonl.zst").write_bytes(ZSTD(jsonl([DOC.format(0)])) + ZSTD(jsonl([DOC.format(1)])))
    assert read({"path": str(tmp_path / "a.jsonl.zst")}) == [DOC.format(0), DOC.format(1)]


def test_any_undecodable_line_is_counted_with_its_location(tmp_path, caplog):
    lines = [
        jsonl([DOC.format(0)]),
        b"[" * 100_000 + b"]" * 100_000 + b"\n",
        b'"just a string"\n',
        b"42\n",
        b"\xff\xfe{\n",
        jsonl([DOC.format(1)]),
    ]
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines))
    counters = Counters()
    with caplog.at_level("WARNING"):
        assert read({"path": str(tmp_path / "a.jsonl")}, counters) == [DOC.format(0), DOC.format(1)]
    assert counters["bad_json_lines"] == 4
    assert counters["bad_json_lines_examples"] == [f"{tmp_path / 'a.jsonl'}:{n}" for n in (2, 3, 4, 5)]
    assert "a.jsonl:2: skipping a line that is not valid JSON (RecursionError" in caplog.text


def test_a_file_of_no_json_objects_is_an_error(tmp_path):
    (tmp_path / "a.jsonl").write_text("[1, 2]\nplain text\n")
    with pytest.raises(ScaleDAGError, match=r"a\.jsonl: none of its 2 lines is a JSON object .*a\.jsonl:1\)"):
        read({"path": str(tmp_path / "a.jsonl")})


def test_wrong_text_field_names_the_fields_seen(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(
        b"".join(json.dumps({"id": i, "body": DOC.format(i)}).encode() + b"\n" for i in range(400))
    )
    with pytest.raises(ScaleDAGError) as info:
        read({"path": str(tmp_path / "a.jsonl")})
    assert str(info.value) == f"{tmp_path / 'a.jsonl'}: 400 records lack field 'text' (fields seen: body, id)"
    (tmp_path / "a.jsonl").write_bytes(b"".join(json.dumps({"id": i, "text": None}).encode() + b"\n" for i in range(3)))
    with pytest.raises(ScaleDAGError, match=r"3 records have no string in field 'text' \(fields seen: id, text\)$"):
        read({"path": str(tmp_path / "a.jsonl")})
    table = pyarrow.table({"text": pyarrow.array([None] * 4, pyarrow.string()), "id": [1, 2, 3, 4]})
    pq.write_table(table, tmp_path / "a.parquet")
    with pytest.raises(ScaleDAGError, match=r"a\.parquet: 4 records have no string in field 'text'"):
        read({"path": str(tmp_path / "a.parquet")})


def test_records_lacking_the_field_in_part_are_counted(tmp_path):
    records = [{"text": DOC.format(i)} if i % 4 else {"body": DOC.format(i)} for i in range(400)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    counters = Counters()
    assert len(read({"path": str(tmp_path / "a.jsonl")}, counters)) == 300
    assert counters["missing_text_field"] == 100 and len(counters["missing_text_field_examples"]) == 5


def test_empty_glob_and_unknown_format_name_the_source(tmp_path):
    with pytest.raises(ScaleDAGError, match=r"nothing/\*\.jsonl.*matches no file"):
        read({"path": str(tmp_path / "nothing" / "*.jsonl")})
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(ScaleDAGError, match="a.csv: cannot tell the format"):
        read({"path": str(tmp_path / "a.csv")})


def test_relative_paths_are_taken_from_the_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the working directory
    docs = read({"path": "workflow/schemas/*.yaml", "format": "txt"})
    assert docs and "ScaleDAG config.yaml" in docs[0]
