"""benchmarks/gpu_check.sh, the prepared check for a lent GPU: its steps fit the 8-minute slot, and
on a machine without a GPU it stops with one line and writes nothing."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def test_step_limits_fit_eight_minutes():
    limits = [int(m) for m in re.findall(r"^step \S+ (\d+) ", SCRIPT.read_text(), flags=re.M)]
    assert len(limits) == 4 and sum(limits) <= 8 * 60


def test_without_a_gpu_one_line_and_nothing_written(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the script would measure")
    before = set((REPO / "benchmarks" / "results").iterdir())
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: benchmarks/gpu_check.sh needs a CUDA GPU and none is visible; nothing was measured"
    ]
    assert set((REPO / "benchmarks" / "results").iterdir()) == before
