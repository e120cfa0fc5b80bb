"""The training loop end to end on CPU: loss falls, outputs are complete, resume is bit-identical."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import TRAINED_STEPS as STEPS
from conftest import make_run_spec, train_run
from workflow.train.checkpoint import LATEST, latest_iteration
from workflow.train.metrics import read_metrics
from workflow.train.pretrain import EXIT_RESUME


def _train_rows(out_dir) -> list[tuple]:
    rows = read_metrics(Path(out_dir) / "metrics.jsonl")
    return [(r["kind"], r["step"], r["tokens"], r["loss"], r.get("lr"), r.get("grad_norm")) for r in rows]


@pytest.fixture
def reference_run(trained_run):
    return trained_run


def test_training_lowers_loss_and_writes_complete_outputs(reference_run):
    rows = read_metrics(reference_run / "metrics.jsonl")
    valid = [r["loss"] for r in rows if r["kind"] == "valid"]
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    assert valid[0] > math.log(512) - 0.5  # starts near uniform over the vocabulary
    assert valid[-1] < valid[0] - 1.5, valid
    assert all(r["tokens_per_s"] > 0 for r in train)
    assert not (reference_run / "metrics.jsonl.partial").exists()
    summary = json.loads((reference_run / "summary.json").read_text())
    assert summary["iterations"] == STEPS and summary["tokens"] == STEPS * 8 * 64
    assert summary["num_microbatches"] == 2  # global batch 8 = 2 micro-batches of 4: accumulation
    assert (reference_run / summary["checkpoint"]).is_dir()
    assert latest_iteration(reference_run / "checkpoints") == STEPS
    # the learning rate warms up, then decays by cosine to min_lr exactly at the token budget
    lrs = [r["lr"] for r in train]
    assert max(lrs) == pytest.approx(3e-3, rel=0.05) and lrs[-1] == pytest.approx(3e-4, rel=1e-6)


# save_interval is 10: killed before the first checkpoint (nothing to resume: starts over), right
# after one (step 10 is saved, then SIGKILL), and mid-interval (steps 11-17 are lost and redone).
@pytest.mark.parametrize(
    "kill_step,resumes_from",
    [(6, None), (10, 10), (17, 10)],
    ids=["before-first-checkpoint", "right-after-checkpoint", "mid-interval"],
)
def test_resume_after_kill_is_bit_identical(tiny_corpus, reference_run, tmp_path, kill_step, resumes_from):
    spec = make_run_spec(tiny_corpus, tmp_path / "killed", steps=STEPS)
    proc = train_run(spec, env={"SCALEDAG_FAULT_KILL_AT_STEP": str(kill_step)}, check=False)
    assert proc.returncode == -9
    assert not (tmp_path / "killed" / "summary.json").exists()
    assert not (tmp_path / "killed" / "metrics.jsonl").exists()  # nothing complete-looking is left
    assert latest_iteration(tmp_path / "killed" / "checkpoints") == resumes_from
    resumed = train_run(spec)
    assert ("resumed from checkpoint" in resumed.stdout) == (resumes_from is not None)
    assert _train_rows(tmp_path / "killed") == _train_rows(reference_run)
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["final_train_loss"] == json.loads((reference_run / "summary.json").read_text())["final_train_loss"]
    # one training run is one W&B run: the resumed attempt's offline run holds every step, and the
    # killed attempt's partial one is gone, so `wandb sync` uploads one complete run
    from wandb_offline import read_offline_run

    [offline] = (tmp_path / "killed" / "wandb").glob("offline-run-*")
    steps = [h["_step"] for h in read_offline_run(offline)["history"] if "train/loss" in h]
    assert steps == list(range(1, STEPS + 1))
    if kill_step == 10:
        # `snakemake --forcerun` deletes a finished run's outputs but not its checkpoints: the run
        # must train again (not "resume" at the end with an empty loss curve)
        (tmp_path / "killed" / "metrics.jsonl").unlink()
        (tmp_path / "killed" / "summary.json").unlink()
        again = train_run(spec)
        assert "training from scratch" in again.stdout
        assert _train_rows(tmp_path / "killed") == _train_rows(reference_run)


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tiny_corpus, tmp_path):
    from workflow.train.pretrain import EXIT_NONFINITE

    out = tmp_path / "nan"
    spec = make_run_spec(tiny_corpus, out, steps=STEPS)
    proc = train_run(spec, env={"SCALEDAG_FAULT_NONFINITE_AT_STEP": "13"}, check=False)
    assert proc.returncode == EXIT_NONFINITE
    line = _error_line(proc.stderr)
    assert line.startswith("error: non-finite loss (nan) at step 13; last good checkpoint kept at ")
    assert "(iteration 10)" in line and "lower train.lr" in line
    assert latest_iteration(out / "checkpoints") == 10 and not (out / "checkpoints" / "iter_0000020").exists()
    assert not (out / "summary.json").exists()
    # the kept checkpoint is good: without the fault the run resumes from it and finishes finite
    train_run(spec)
    losses = [r for r in _train_rows(out) if r[0] == "train"]
    assert all(math.isfinite(r[3]) for r in losses) and len(losses) == STEPS


def test_out_of_memory_names_the_micro_batch_and_the_knob(tiny_corpus, tmp_path):
    from workflow.train.pretrain import EXIT_OOM

    out = tmp_path / "oom"
    spec = make_run_spec(tiny_corpus, out, steps=STEPS)
    proc = train_run(spec, env={"SCALEDAG_FAULT_OOM_AT_STEP": "4"}, check=False)
    assert proc.returncode == EXIT_OOM
    assert _error_line(proc.stderr) == (
        "error: out of memory at step 4, micro-batch 2/2 (micro_batch_size 4 × seq_length 64, TP 1, PP 1); "
        "lower scales.test.train.micro_batch_size (global_batch_size is kept by more accumulation) "
        "or raise scales.test.parallel.tp"
    )
    assert "Traceback" not in proc.stderr


def test_signal_checkpoints_and_asks_to_be_resumed(tiny_corpus, reference_run, tmp_path):
    spec = make_run_spec(tiny_corpus, tmp_path / "signalled", steps=STEPS)
    proc = train_run(spec, env={"SCALEDAG_FAULT_SIGNAL_AT_STEP": "13"}, check=False)
    assert proc.returncode == EXIT_RESUME, proc.stderr[-2000:]
    assert latest_iteration(tmp_path / "signalled" / "checkpoints") == 13
    train_run(spec)
    assert _train_rows(tmp_path / "signalled") == _train_rows(reference_run)


def test_partial_checkpoint_is_never_picked_up(tmp_path):
    from workflow.train.checkpoint import MANIFEST

    root = tmp_path / "checkpoints"
    (root / "iter_0000010").mkdir(parents=True)
    (root / "iter_0000010" / MANIFEST).write_text("{}")
    (root / "iter_0000020.tmp").mkdir()  # a save that never finished
    (root / "iter_0000030").mkdir()  # renamed into place without a manifest: not published
    (root / LATEST).write_text("20\n")
    assert latest_iteration(root) == 10
    (root / "iter_0000010" / MANIFEST).unlink()
    assert latest_iteration(root) is None


def test_bad_spec_is_one_line_error(tmp_path):
    from conftest import run_module

    proc = run_module("workflow.train.pretrain", ["--spec", "{not json"], check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: --spec: not JSON")


def test_run_records_flops_energy_and_wandb_offline(reference_run):
    from wandb_offline import read_offline_run

    summary = json.loads((reference_run / "summary.json").read_text())
    assert (
        summary["flops_per_token"]["chinchilla"] > 0 and summary["flops_per_token"]["6n"] == 6 * summary["parameters"]
    )
    assert summary["peak_memory_mb"] > 0
    energy = summary["energy"]
    # measured joules, or null with the reason; never an estimate
    assert (energy["joules"] is None) == (energy["reason"] is not None) == (energy["joules_per_token"] is None)
    train = [r for r in read_metrics(reference_run / "metrics.jsonl") if r["kind"] == "train"]
    assert all(r["tflops_per_device_chinchilla"] > 0 for r in train)
    assert all(r["mfu_chinchilla"] is None for r in train)  # no published peak for a CPU
    runs = sorted((reference_run / "wandb").glob("offline-run-*"))
    assert runs, "W&B offline run folder missing"
    logged = read_offline_run(runs[-1])
    assert logged["name"] == "test.llama" and logged["group"] == "test"
    assert [h["train/loss"] for h in logged["history"] if "train/loss" in h] == [r["loss"] for r in train]
    # nested summary values reach W&B flattened (the report's energy panel reads energy/joules_per_token)
    assert logged["summary"]["flops_per_token/chinchilla"] == summary["flops_per_token"]["chinchilla"]
    assert logged["summary"].get("energy/joules_per_token") == energy["joules_per_token"]


def test_progress_lines_give_elapsed_time_and_eta():
    from workflow.train.pretrain import progress_eta

    assert progress_eta(65, 10, 30) == "elapsed 0:01:05 eta 0:03:15"  # 6.5 s/step x 30 steps left
    assert progress_eta(3725, 1, 0) == "elapsed 1:02:05 eta 0:00:00"
    assert progress_eta(2, 0, 5) == "elapsed 0:00:02 eta ?"  # no pace yet


def test_a_retry_started_while_the_old_attempt_still_finishes_waits_for_it(tiny_corpus, reference_run, tmp_path):
    """What Slurm does when a cancelled job's training process outlives the job: the retry starts
    while the old attempt sits between its final checkpoint and renaming its metrics log. Resuming
    next to it ended with an empty metrics.jsonl; the retry must wait, then train a complete run."""
    import subprocess
    import sys
    import time

    from conftest import REPO, module_env, train_args

    spec = make_run_spec(tiny_corpus, tmp_path / "run", steps=STEPS)
    until = tmp_path / "release"
    cmd = [sys.executable, "-m", "workflow.train.pretrain", *train_args(spec)]

    def start(name, **extra):
        out = (tmp_path / f"{name}.log").open("w")
        return subprocess.Popen(cmd, cwd=REPO, env=module_env(extra), stdout=out, stderr=subprocess.STDOUT)

    def wait_for(what, done):  # a guard against a hang, not a timing assertion
        deadline = time.monotonic() + 600
        while not done():
            assert time.monotonic() < deadline, f"never happened: {what}"
            time.sleep(0.1)

    old = start("old", SCALEDAG_FAULT_PAUSE_AT_STEP=str(STEPS), SCALEDAG_FAULT_PAUSE_UNTIL=str(until))
    new = None
    try:
        wait_for("the old attempt reached its last checkpoint", lambda: Path(f"{until}.reached").exists())
        new = start("new")
        wait_for(
            "the retry waits or ends",
            lambda: "still holds" in (tmp_path / "new.log").read_text() or new.poll() is not None,
        )
        assert new.poll() is None, "the retry did not wait: " + (tmp_path / "new.log").read_text()[-2000:]
        assert not (tmp_path / "run" / "summary.json").exists()
        until.touch()
        assert old.wait(timeout=600) == 0 and new.wait(timeout=600) == 0, (tmp_path / "new.log").read_text()
    finally:
        for proc in (old, new):
            if proc is not None and proc.poll() is None:
                proc.kill()
    log = (tmp_path / "new.log").read_text()
    assert f"pid {old.pid} on " in log and "the other attempt has exited" in log
    assert _train_rows(tmp_path / "run") == _train_rows(reference_run)  # complete, and the same curve
