"""Atomic output writing: a killed job must never leave a file that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `final` only if the block succeeds.

    Works for files and directories (whatever the block creates at the temp path)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # let the block create a file or a directory
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# One resolution for every figure the DAG draws: at the 6-7 in widths the figures use, 150 dpi is
# ~1000 px wide, sharp in the Snakemake report; the PDF beside each PNG is the print copy.
FIGURE_DPI = 150


def save_figure(fig, *paths: str | os.PathLike) -> None:
    """Save a matplotlib figure to each path atomically, the format taken from the suffix."""
    for path in map(Path, paths):
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=FIGURE_DPI)


def write_csv(df, path: str | os.PathLike, float_format: str | None = None) -> None:
    """Write a result table (a pandas DataFrame) as CSV atomically, without the index."""
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, float_format=float_format)
