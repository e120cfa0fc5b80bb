"""Download a source file once into a content-addressed cache, verified against its sha256.

An interrupted download leaves `<sha>.partial`; the next attempt resumes it with an HTTP Range
request (falling back to a fresh download if the server ignores Range). The file only appears
under its final name after its checksum matched, so the cache never holds a bad file, and a lock
keeps two jobs from downloading the same file at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from workflow.errors import ScaleDAGError

log = logging.getLogger(__name__)
CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def cached_name(url: str, sha256: str) -> str:
    """`<sha256>-<basename>`: content-addressed, and the suffix still tells the file format."""
    base = os.path.basename(urlparse(url).path) or "download"
    return f"{sha256}-{base}"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, partial: Path, timeout: float) -> None:
    """Append the rest of `url` to `partial` (a Range request if some of it is already there)."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the partial file is already whole
            return
        raise
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.info("%s: server ignored the Range request; downloading from the start", url)
        total = response.headers.get("Content-Length")
        mode = "ab" if resumed else "wb"
        done = have if resumed else 0
        with open(partial, mode) as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
        log.info("%s: %d bytes%s", url, done, f" (resumed at {have})" if resumed else "")
        if total is not None and done - (have if resumed else 0) != int(total):
            raise ScaleDAGError(f"{url}: connection closed after {done} bytes; run again to resume")


def download(url: str, sha256: str, cache_dir: str | os.PathLike, timeout: float = 60.0) -> Path:
    """Path of the verified local copy of `url`, downloading (or resuming) it if needed."""
    sha256 = sha256.lower()
    if not _SHA256.match(sha256):
        raise ScaleDAGError(f"source {url}: sha256 must be 64 hex digits, got {sha256!r}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / cached_name(url, sha256)
    if final.exists():
        return final
    partial = final.with_name(final.name + ".partial")
    with open(final.with_name(final.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():  # another job finished it while we waited
            return final
        for attempt in ("resume", "fresh"):
            try:
                _fetch(url, partial, timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise ScaleDAGError(f"source {url}: download failed ({exc}); run again to resume") from None
            got = _sha256_of(partial)
            if got == sha256:
                os.replace(partial, final)
                return final
            partial.unlink()  # a corrupt partial file: start again once from zero
            log.warning("%s: sha256 %s does not match the expected %s (%s attempt)", url, got, sha256, attempt)
        raise ScaleDAGError(f"source {url}: downloaded file has sha256 {got}, expected {sha256}")
