"""Checkpoints are verified before any use: tampered, corrupt or unpublished ones are refused with
one line, resume falls back to the newest one that verifies, and nothing that verifies is deleted."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, make_run_spec, run_module, train_run
from conftest import TRAINED_STEPS as STEPS
from workflow.train.checkpoint import (
    LATEST,
    MANIFEST,
    checkpoint_dirs,
    latest_verified,
    verify_checkpoint,
    write_manifest,
)
from workflow.train.metrics import read_metrics


def _rows(out_dir) -> list[tuple]:
    return [(r["kind"], r["step"], r["loss"]) for r in read_metrics(Path(out_dir) / "metrics.jsonl")]


def _warnings(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("warning:")]


@pytest.fixture(scope="module")
def killed_at_20(tiny_corpus, tmp_path_factory) -> Path:
    """A run SIGKILLed right after its step-20 checkpoint: iter_0000010 and iter_0000020 on disk."""
    out = tmp_path_factory.mktemp("killed") / "run"
    proc = train_run(
        make_run_spec(tiny_corpus, out, steps=STEPS), env={"SCALEDAG_FAULT_KILL_AT_STEP": "20"}, check=False
    )
    assert proc.returncode == -9
    assert [i for i, _ in checkpoint_dirs(out / "checkpoints")] == [20, 10]
    return out


@pytest.fixture
def killed(killed_at_20, tiny_corpus, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(killed_at_20, out)
    return out, make_run_spec(tiny_corpus, out, steps=STEPS)


class _Payload:
    """Unpickling this calls os.system: what a hostile `.metadata` would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_payload(folder: Path, marker: Path, fix_manifest: bool) -> None:
    (folder / ".metadata").write_bytes(pickle.dumps(_Payload(marker)))
    if fix_manifest:  # an attacker who can write the folder can rewrite the manifest too
        write_manifest(folder, int(folder.name.split("_")[1]), finite=True)


@pytest.mark.parametrize("fix_manifest", [False, True], ids=["manifest-mismatch", "manifest-rewritten"])
def test_tampered_metadata_never_runs_code_on_resume(killed, trained_run, tmp_path, fix_manifest):
    out, spec = killed
    marker = tmp_path / "pwned"
    _plant_payload(out / "checkpoints" / "iter_0000020", marker, fix_manifest)
    proc = train_run(spec)
    assert not marker.exists()
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    [warning] = _warnings(proc.stdout)
    assert warning.startswith("warning: skipped checkpoint iter_0000020: ") and ".metadata" in warning
    assert ("refused to load posix.system" if fix_manifest else "the manifest says") in warning
    assert "resumed from checkpoint at iteration 10" in proc.stdout
    assert (out / "checkpoints" / "iter_0000020.rejected" / ".metadata").exists()  # kept for inspection
    assert _rows(out) == _rows(trained_run)


@pytest.mark.parametrize("fix_manifest", [False, True], ids=["manifest-mismatch", "manifest-rewritten"])
def test_evaluation_refuses_a_tampered_final_checkpoint(trained_run, tiny_corpus, tmp_path, fix_manifest):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "pwned"
    _plant_payload(run / "checkpoints" / f"iter_{STEPS:07d}", marker, fix_manifest)
    spec = make_run_spec(tiny_corpus, run, steps=STEPS)
    proc = run_module(
        "workflow.evaluate.loss", ["--spec", json.dumps(spec), "--out", str(tmp_path / "eval.json")], check=False
    )
    assert proc.returncode == 2 and not marker.exists() and not (tmp_path / "eval.json").exists()
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert f"iter_{STEPS:07d}/.metadata" in line and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_bits(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in (len(data) // 3, len(data) // 2):  # inside the tensor bytes: would load silently
        data[offset] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage,name",
    [
        (_truncate, "__0_0.distcp"),
        (_flip_bits, "__0_0.distcp"),
        (Path.unlink, "common.pt"),
        (_truncate, "common.pt"),
    ],
    ids=["truncated-shard", "bit-flipped-shard", "missing-common", "truncated-common"],
)
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(killed, trained_run, damage, name):
    out, spec = killed
    damage(out / "checkpoints" / "iter_0000020" / name)
    proc = train_run(spec)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    [warning] = _warnings(proc.stdout)
    assert warning.startswith("warning: skipped checkpoint iter_0000020: ") and f"iter_0000020/{name}" in warning
    assert "resumed from checkpoint at iteration 10" in proc.stdout
    assert _rows(out) == _rows(trained_run)  # same curve as a run never interrupted


@pytest.mark.parametrize("pointer", [None, "", "garbage\n", "40\n"], ids=["missing", "empty", "garbage", "dangling"])
def test_a_bad_pointer_loses_no_checkpoint(killed, trained_run, pointer):
    out, spec = killed
    root = out / "checkpoints"
    if pointer is None:
        (root / LATEST).unlink()
    else:
        (root / LATEST).write_text(pointer)
    proc = train_run(spec)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    [warning] = _warnings(proc.stdout)
    assert (
        warning.startswith(f"warning: {root / LATEST} ")
        and "looking for the newest checkpoint that verifies" in warning
    )
    assert "resumed from checkpoint at iteration 20" in proc.stdout and "from scratch" not in proc.stdout
    assert _rows(out) == _rows(trained_run)
    assert [i for i, _ in checkpoint_dirs(root)] == [30, 20]


def test_nan_only_in_the_gradients_stops_before_a_save(tiny_corpus, tmp_path):
    from workflow.train.pretrain import EXIT_NONFINITE

    out = tmp_path / "nan-grad"
    proc = train_run(
        make_run_spec(tiny_corpus, out, steps=STEPS), env={"SCALEDAG_FAULT_NONFINITE_GRAD_AT_STEP": "13"}, check=False
    )
    assert proc.returncode == EXIT_NONFINITE
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: non-finite gradient norm (nan) at step 13, loss ") and "(iteration 10)" in line
    assert latest_verified(out / "checkpoints") == 10
    assert verify_checkpoint(out / "checkpoints" / "iter_0000010")["finite"] is True


def test_manifest_records_every_file_and_unlisted_files_are_refused(trained_run, tmp_path):
    from workflow.train.checkpoint import CheckpointError

    folder = tmp_path / "ckpt"
    shutil.copytree(trained_run / "checkpoints" / f"iter_{STEPS:07d}", folder)
    manifest = verify_checkpoint(folder)
    assert set(manifest["files"]) >= {".metadata", "common.pt", "metadata.json"} and manifest["iteration"] == STEPS
    (folder / "extra.distcp").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="extra.distcp: not in the checkpoint's manifest"):
        verify_checkpoint(folder)
    (folder / "extra.distcp").unlink()
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json: unreadable"):
        verify_checkpoint(folder)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 3 MB tmpfs: room for one 2.2 MB checkpoint of the test model, not for a second."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(tiny_corpus, small_tmpfs):
    from workflow.errors import EXIT_IO

    out = small_tmpfs / "run"
    spec = make_run_spec(tiny_corpus, out, steps=STEPS)
    spec["wandb"] = False
    proc = train_run(spec, check=False)
    assert proc.returncode == EXIT_IO, proc.stderr[-2000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: saving checkpoint iter_0000020 failed at ") and "No space left on device" in line
    assert "Traceback" not in proc.stderr
    root = out / "checkpoints"
    assert not list(root.glob("*.tmp")) and latest_verified(root) == 10


def test_a_signal_during_start_up_exits_75_and_writes_nothing(tiny_corpus, tmp_path):
    from workflow.train.pretrain import ATTEMPT_LOCK, EXIT_RESUME

    out = tmp_path / "early"
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(make_run_spec(tiny_corpus, out, steps=STEPS)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflow.train.pretrain", "--spec-file", str(spec_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # inside `import torch` / megatron: long before the training loop
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_RESUME, stderr[-2000:]
    assert "during start-up" in stdout
    # Only the attempt lock (who held the run directory, see hold_attempt_lock): no checkpoint, no log.
    written = sorted(p for p in out.rglob("*") if p.name != ATTEMPT_LOCK) if out.exists() else []
    assert written == [], written


def test_a_weights_only_checkpoint_serves_evaluation_and_a_resume_starts_over(tiny_corpus, trained_run, tmp_path):
    """train.checkpoint_optimizer false (the smoke setting): the fp32 AdamW moments, 2/3 of a
    checkpoint, are not saved; evaluation reads the weights, and a retry says why it starts over."""
    out = tmp_path / "run"
    spec = make_run_spec(tiny_corpus, out, steps=20, checkpoint_optimizer=False)
    proc = train_run(spec, env={"SCALEDAG_FAULT_KILL_AT_STEP": "10"}, check=False)
    assert proc.returncode == -9
    manifest = verify_checkpoint(out / "checkpoints" / "iter_0000010")
    full = verify_checkpoint(trained_run / "checkpoints" / f"iter_{STEPS:07d}")
    assert manifest["optimizer"] is False and full["optimizer"] is True

    def size(m):
        return sum(f["size"] for f in m["files"].values())

    assert size(manifest) < 0.5 * size(full), (size(manifest), size(full))  # weights vs weights + 2 moments
    result = tmp_path / "eval.json"
    run_module("workflow.evaluate.loss", ["--spec", json.dumps(spec), "--max-tokens", "4000", "--out", str(result)])
    evaluated = json.loads(result.read_text())
    # the trained weights, not a fresh init: ln 512 = 6.24 untrained, ~5.6 after 10 steps
    assert evaluated["iteration"] == 10 and evaluated["loss"] < 5.9, evaluated

    proc = train_run(spec)  # the retry: the step-10 checkpoint cannot restore AdamW, so it starts over
    [warning] = _warnings(proc.stdout)
    assert "saved without optimizer state (train.checkpoint_optimizer: false)" in warning, warning
    assert (out / "checkpoints" / "iter_0000010.rejected" / "REJECTED.txt").is_file()  # kept, never retried
    assert [i for i, _ in checkpoint_dirs(out / "checkpoints")] == [20, 10]  # the new run's own two
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"] == list(range(1, 21))
