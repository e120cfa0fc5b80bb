"""url sources against a real HTTP server on 127.0.0.1 (http.server in a thread, Range supported)."""

import hashlib
import http.server
import json
import os
import threading

import pytest

from workflow.data.download import cached_name, download
from workflow.errors import ScaleDAGError

PAYLOAD = "".join(
    json.dumps({"text": f"Document {i} about LaSrCoO3 thin films and their band gaps."}) + "\n" for i in range(3000)
).encode()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's directory; honours `Range: bytes=N-` unless the server says not to."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.headers.get("Range"))
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.honour_range:
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "corpus.jsonl").write_bytes(PAYLOAD)
    handler = lambda *a, **kw: RangeHandler(*a, directory=str(root), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests, httpd.honour_range = [], True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_once_verified_then_cached(server, tmp_path):
    httpd, base = server
    path = download(f"{base}/corpus.jsonl", SHA, tmp_path / "cache")
    assert path.read_bytes() == PAYLOAD and path.name == cached_name(f"{base}/corpus.jsonl", SHA)
    assert download(f"{base}/corpus.jsonl", SHA.upper(), tmp_path / "cache") == path
    assert httpd.requests == [None]  # the second call never touched the network
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")) == [path.name]


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    httpd, base = server
    url = f"{base}/corpus.jsonl"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / (cached_name(url, SHA) + ".partial")).write_bytes(PAYLOAD[:12345])
    assert download(url, SHA, cache).read_bytes() == PAYLOAD
    assert httpd.requests == ["bytes=12345-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    httpd, base = server
    httpd.honour_range = False
    url = f"{base}/corpus.jsonl"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / (cached_name(url, SHA) + ".partial")).write_bytes(PAYLOAD[:999])
    assert download(url, SHA, cache).read_bytes() == PAYLOAD


def test_corrupt_partial_is_discarded_and_fetched_again(server, tmp_path):
    httpd, base = server
    url = f"{base}/corpus.jsonl"
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / (cached_name(url, SHA) + ".partial")).write_bytes(b"X" * 500)
    assert download(url, SHA, cache).read_bytes() == PAYLOAD
    assert httpd.requests == ["bytes=500-", None]


def test_wrong_checksum_leaves_nothing_behind(server, tmp_path):
    _, base = server
    with pytest.raises(ScaleDAGError, match=r"corpus.jsonl: downloaded file has sha256 .*expected 0{64}"):
        download(f"{base}/corpus.jsonl", "0" * 64, tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_missing_file_and_bad_checksum_format(server, tmp_path):
    _, base = server
    with pytest.raises(ScaleDAGError, match=r"missing.jsonl: download failed .*404"):
        download(f"{base}/missing.jsonl", SHA, tmp_path / "cache")
    with pytest.raises(ScaleDAGError, match="64 hex digits"):
        download(f"{base}/corpus.jsonl", "abc", tmp_path / "cache")


def test_url_source_in_a_corpus(server, tmp_path):
    from workflow.data.corpus import prepare_corpus

    _, base = server
    spec = {"name": "remote", "sources": [{"url": f"{base}/corpus.jsonl", "sha256": SHA}], "near_dedup": False}
    stats = prepare_corpus(spec, tmp_path / "out", download_dir=tmp_path / "cache")
    assert stats["documents_read"] == 3000 and stats["documents_kept"] == 3000
