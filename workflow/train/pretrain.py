"""The pretraining loop: Megatron-core model, schedules, optimizer and checkpoints; resumable.

Run as `python -m workflow.train.pretrain --spec JSON` (also under `torchrun` or `srun`). The spec is the
resolved run config built by `workflow.config.pretrain_spec`.  Exit codes: 0 done, 2 bad input,
3 non-finite loss (last good checkpoint kept), 4 out of memory (names the micro-batch and the knob),
74 a checkpoint or output could not be written (full disk, I/O error; earlier checkpoints intact),
75 checkpointed on a signal, or signalled during start-up before anything was written ("resume me").

The tests' fault injection (kill, signal, NaN loss or gradient, out of memory at a given step) is
workflow/train/faults.py: inert unless its environment variables are set."""

from __future__ import annotations

import signal


class _StopFlag:
    """Set by SIGTERM/SIGUSR1 (Slurm's pre-walltime signal); checked between steps."""

    def __init__(self):
        self.signum = 0

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        self.signum = signum


STOP = _StopFlag()
if __name__ == "__main__":  # before the imports below (seconds): a signal during start-up is kept, not fatal
    STOP.install()

import argparse  # noqa: E402
import errno  # noqa: E402
import fcntl  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from workflow import schema  # noqa: E402
from workflow.errors import EXIT_IO, ScaleDAGError, json_option, main_guard  # noqa: E402
from workflow.hpc.launch import init_distributed, launch_info, shutdown  # noqa: E402
from workflow.io import atomic_write_json  # noqa: E402
from workflow.model import megatron_cpu  # noqa: E402
from workflow.model.flops import Shape, chinchilla_training_flops_per_token, flops_6nd  # noqa: E402
from workflow.model.gpt import (  # noqa: E402
    build_gpt_model,
    make_model_spec,
    tp_param_split,
    transformer_engine_available,
)
from workflow.telemetry.energy import detect_meter, joules_per_token  # noqa: E402
from workflow.telemetry.mfu import throughput_metrics  # noqa: E402
from workflow.telemetry.tracking import Tracker, wandb_metrics  # noqa: E402
from workflow.train import faults  # noqa: E402
from workflow.train.checkpoint import (  # noqa: E402
    CheckpointWriteError,
    checkpoint_dirs,
    iteration_dir,
    latest_verified,
    max_over_ranks,
    prune_checkpoints,
    resume_latest,
    save_checkpoint,
    weights_finite,
)
from workflow.train.dataset import RandomTokens, build_gpt_datasets  # noqa: E402
from workflow.train.metrics import MetricsLog, Throughput  # noqa: E402
from workflow.train.optim import build_optimizer, build_scheduler  # noqa: E402

EXIT_NONFINITE = 3
EXIT_OOM = 4
EXIT_RESUME = 75  # EX_TEMPFAIL: checkpointed on SIGTERM/SIGUSR1, run again to resume


SUPERSEDED = "superseded"  # checkpoints of an earlier attempt whose metrics log is gone


class NonFiniteLoss(RuntimeError):
    pass


class OutOfMemory(RuntimeError):
    pass


def _collate(dataset, indices: list[int]) -> dict:
    samples = [dataset[i] for i in indices]
    batch = {
        k: torch.stack([torch.as_tensor(s[k]) for s in samples])
        for k in ("tokens", "labels", "loss_mask", "position_ids")
    }
    if torch.cuda.is_available():
        batch = {k: v.cuda(non_blocking=True) for k, v in batch.items()}
    return batch


class _MicroBatches:
    """The iterator Megatron's schedule pulls micro-batches from; remembers which one is in flight
    (for the out-of-memory report) and carries the test faults of its step."""

    def __init__(self, batches: list[dict], poison: bool = False, oom: bool = False):
        self.batches, self.poison, self.oom = batches, poison, oom
        self.index = -1

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        self.index += 1
        if self.index >= len(self.batches):
            raise StopIteration
        if self.oom and self.index == len(self.batches) - 1:
            raise torch.OutOfMemoryError("injected by SCALEDAG_FAULT_OOM_AT_STEP")
        return self.batches[self.index]


def _forward_step(data_iterator, model):
    batch = next(data_iterator)
    poison = getattr(data_iterator, "poison", False)
    with megatron_cpu.model_compute():
        output = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])

    def loss_func(per_token_loss):
        mask = batch["loss_mask"].reshape(-1).float()
        loss = (per_token_loss.float().reshape(-1) * mask).sum() / mask.sum().clamp(min=1)
        if poison:
            loss = loss * float("nan")
        return loss, {"lm loss": loss.detach().clone()}  # clone: Megatron scales `loss` in place

    return output, loss_func


def _reduce_loss(losses: list[dict]) -> float:
    """Mean over micro-batches on the last pipeline stage, shared with every rank, averaged over DP."""
    from megatron.core import parallel_state

    if parallel_state.is_pipeline_last_stage(ignore_virtual=True) and losses:
        value = torch.stack([d["lm loss"].float() for d in losses]).mean().cpu()
    else:
        value = torch.zeros(())
    value = value.reshape(1)
    if torch.distributed.is_initialized():
        device = "cuda" if torch.cuda.is_available() else "cpu"
        value = value.to(device)
        torch.distributed.all_reduce(value, group=parallel_state.get_pipeline_model_parallel_group())
        torch.distributed.all_reduce(value, group=parallel_state.get_data_parallel_group())
        value = value / parallel_state.get_data_parallel_world_size()
    return float(value.item())


def _global_param_count(model) -> int:
    """Parameters of the whole model, summed over tensor- and pipeline-parallel shards.

    A replicated parameter (norms) is held whole on every TP rank, so only TP rank 0 counts it:
    summing every rank's would count it TP times."""
    from megatron.core import parallel_state

    tp_rank = parallel_state.get_tensor_model_parallel_rank() if torch.distributed.is_initialized() else 0
    sharded, replicated = tp_param_split(model)
    local = sharded + (replicated if tp_rank == 0 else 0)
    n = torch.tensor([float(local)], device="cuda" if torch.cuda.is_available() else "cpu")
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(n, group=parallel_state.get_model_parallel_group())
    return int(n.item())


def _flops_per_token(mspec, n_params: int) -> tuple[float, float]:
    """Training FLOPs per token by Chinchilla's appendix-F count and by 6N."""
    return chinchilla_training_flops_per_token(Shape.of(mspec)), flops_6nd(n_params, 1)


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


ATTEMPT_LOCK = "attempt.lock"


def hold_attempt_lock(out_dir: Path, stop: _StopFlag, say, poll_s: float = 1.0):
    """Wait until no other attempt of this run is alive, then hold the run directory until exit.

    A retried job can start while the attempt it replaces is still running: a scheduler marks a
    cancelled job done once the processes it tracks are gone, and a training process whose shell
    died first is no longer among them (Slurm's proctrack/linuxproc) while it still checkpoints and
    writes its metrics log. Resuming next to it would read a log the other process is about to
    rename away. The lock is POSIX (lockf), unlike the flock of the dataset and download caches: it
    also holds on NFS, and forked helpers (dist_checkpointing's workers) do not inherit it, so a
    SIGKILLed attempt's leftover children cannot keep a retry waiting. The kernel releases it when
    its holder exits, however it exits; nothing else in the process may open the file, since
    closing any descriptor of it drops a POSIX lock. A signal while waiting exits 75 with nothing
    written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ATTEMPT_LOCK
    fh = open(path, "a+", encoding="utf-8")
    waited = False
    while True:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            held = exc.errno in (errno.EAGAIN, errno.EACCES)
            if not held:  # no locks on this filesystem (e.g. Lustre mounted without -o flock)
                say(f"warning: cannot lock {path} ({exc.strerror}): not checking for another live attempt")
                return fh
            if not waited:
                fh.seek(0)
                say(f"another attempt of this run ({fh.read().strip() or 'unknown'}) still holds {path}: waiting")
                waited = True
            if stop.signum:
                say(f"signal {stop.signum} while waiting for {path}: exit {EXIT_RESUME} to resume")
                raise SystemExit(EXIT_RESUME) from None
            time.sleep(poll_s)
    if waited:
        say("the other attempt has exited: resuming from what it left")
    fh.truncate(0)
    fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    fh.flush()
    return fh


class Trainer:
    """Holds the model, optimizer and data order of one run; `run()` trains to the token budget."""

    def __init__(self, spec: dict):
        from megatron.core import parallel_state
        from megatron.core.distributed import (
            DistributedDataParallel,
            DistributedDataParallelConfig,
            finalize_model_grads,
        )
        from megatron.core.pipeline_parallel import get_forward_backward_func

        self.spec = spec
        # A spec the DAG wrote is complete; one written by hand (benchmarks, tests) gets the schema's
        # defaults for what it leaves out.
        train = {**schema.defaults("train"), **spec["train"]}
        par = {**schema.defaults("parallel"), **spec.get("parallel", {})}
        self.tp, self.pp = int(par["tp"]), int(par["pp"])
        self.bf16 = bool(spec.get("bf16")) and torch.cuda.is_available()
        self.launch = init_distributed(self.tp, self.pp)
        megatron_cpu.initialize_rng(int(train["seed"]))
        self.rank = torch.distributed.get_rank()
        self.dp = parallel_state.get_data_parallel_world_size()
        self.dp_rank = parallel_state.get_data_parallel_rank()

        self.model_spec = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec.get("arch_overrides"))
        self.seq = self.model_spec.seq_length
        self.micro = int(train["micro_batch_size"])
        self.global_batch = int(train["global_batch_size"])
        if self.global_batch % (self.micro * self.dp):
            raise ScaleDAGError(
                f"train.global_batch_size ({self.global_batch}) must be a multiple of micro_batch_size × data-parallel size ({self.micro} × {self.dp})"
            )
        self.num_microbatches = self.global_batch // (self.micro * self.dp)
        self.train_iters = max(1, math.ceil(float(train["tokens"]) / (self.global_batch * self.seq)))
        self.total_samples = self.train_iters * self.global_batch
        self.eval_interval = int(train["eval_interval"])
        self.eval_iters = int(train["eval_iters"])
        self.log_interval = int(train["log_interval"])
        self.save_interval = int(train.get("save_interval") or self.train_iters)  # unset: only the final one
        self.keep_checkpoints = int(train["keep_checkpoints"])
        self.checkpoint_optimizer = bool(train["checkpoint_optimizer"])

        # Transformer Engine (flash attention, fused kernels) on a GPU that has it; local spec otherwise
        use_te = spec.get("use_te")
        self.use_te = transformer_engine_available() if use_te is None else bool(use_te)
        model = build_gpt_model(self.model_spec, tp=self.tp, pp=self.pp, bf16=self.bf16, use_te=self.use_te)
        if torch.cuda.is_available():
            model = model.cuda()
        self.config = model.config
        self.n_params = _global_param_count(model)
        self.flops_per_token_chinchilla, self.flops_per_token_6n = _flops_per_token(self.model_spec, self.n_params)
        self.world_size = torch.distributed.get_world_size()
        self.device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
        self.model = DistributedDataParallel(
            self.config, DistributedDataParallelConfig(grad_reduce_in_fp32=True), model
        )
        self.config.finalize_model_grads_func = finalize_model_grads
        self.config.no_sync_func = self.model.no_sync
        self.optimizer = build_optimizer([self.model], train, bf16=self.bf16)
        self.scheduler = build_scheduler(self.optimizer, train, self.total_samples)
        self.forward_backward = get_forward_backward_func()

        data = spec["data"]
        eval_samples = self.eval_iters * self.micro * self.dp
        if data.get("random_tokens"):  # throughput benchmarks: no corpus needed
            seed = int(train["seed"])
            self.train_ds = RandomTokens(self.model_spec.vocab_size, self.seq, seed)
            self.valid_ds = RandomTokens(self.model_spec.vocab_size, self.seq, seed + 1)
        else:
            self.train_ds, self.valid_ds = build_gpt_datasets(
                data["train_prefix"],
                data["valid_prefix"],
                data["tokenizer"],
                self.seq,
                int(train["seed"]),
                self.total_samples,
                eval_samples,
            )
        self.out_dir = Path(spec["out_dir"])
        self.ckpt_root = self.out_dir / "checkpoints"
        self.stop = STOP
        self.saved_iteration = None

    # -- data order: sample index depends only on (iteration, micro-batch, dp rank) -----------------
    def _batches(self, iteration: int) -> list[dict]:
        base = iteration * self.global_batch
        return [
            _collate(
                self.train_ds,
                list(
                    range(
                        base + (m * self.dp + self.dp_rank) * self.micro,
                        base + (m * self.dp + self.dp_rank + 1) * self.micro,
                    )
                ),
            )
            for m in range(self.num_microbatches)
        ]

    def _valid_batches(self) -> list[dict]:
        return [
            _collate(
                self.valid_ds,
                list(range((m * self.dp + self.dp_rank) * self.micro, (m * self.dp + self.dp_rank + 1) * self.micro)),
            )
            for m in range(self.eval_iters)
        ]

    def _step(self, iteration: int) -> tuple[float, float | None]:
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        step = iteration + 1
        micro = _MicroBatches(
            self._batches(iteration),
            poison=faults.fault_step("NONFINITE") == step,
            oom=faults.fault_step("OOM") == step,
        )
        try:
            losses = self.forward_backward(
                forward_step_func=_forward_step,
                data_iterator=micro,
                model=[self.model],
                num_microbatches=self.num_microbatches,
                seq_length=self.seq,
                micro_batch_size=self.micro,
                decoder_seq_length=self.seq,
                forward_only=False,
            )
        except torch.OutOfMemoryError:
            raise OutOfMemory(self._oom_message(step, micro.index)) from None
        if faults.fault_step("NONFINITE_GRAD") == step:
            next(p for p in self.model.parameters() if getattr(p, "main_grad", None) is not None).main_grad.fill_(
                float("nan")
            )
        try:
            _, grad_norm, _ = self.optimizer.step()
        except torch.OutOfMemoryError:  # first step: the optimizer's state is allocated here
            raise OutOfMemory(self._oom_message(step, None)) from None
        self.scheduler.step(increment=self.global_batch)
        return _reduce_loss(losses), float(grad_norm) if grad_norm is not None else None

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        losses = self.forward_backward(
            forward_step_func=_forward_step,
            data_iterator=iter(self._valid_batches()),
            model=[self.model],
            num_microbatches=self.eval_iters,
            seq_length=self.seq,
            micro_batch_size=self.micro,
            decoder_seq_length=self.seq,
            forward_only=True,
        )
        self.model.train()
        return _reduce_loss(losses)

    def _save(self, iteration: int) -> None:
        """Checkpoint once per iteration (a signal at a save step does not save it twice); a run
        started over removes the superseded checkpoints only once it has one of its own."""
        import shutil

        if self.saved_iteration == iteration:
            return
        if not weights_finite(self.model.module):
            raise NonFiniteLoss(
                self._nonfinite_message(f"non-finite weights or gradients at step {iteration}, not saved")
            )
        save_checkpoint(
            self.ckpt_root,
            iteration,
            self.model.module,
            self.optimizer if self.checkpoint_optimizer else None,
            self.scheduler,
            {"consumed_samples": iteration * self.global_batch},
            finite=True,
        )  # checked just above
        self.saved_iteration = iteration
        prune_checkpoints(self.ckpt_root, self.keep_checkpoints)
        if self.rank == 0:
            shutil.rmtree(self.ckpt_root / SUPERSEDED, ignore_errors=True)

    def _nonfinite_message(self, what: str) -> str:
        return (
            f"{what}; last good checkpoint kept at {self.ckpt_root} "
            f"(iteration {latest_verified(self.ckpt_root) or 'none'}); lower train.lr or check the data"
        )

    def run(self) -> dict:
        self.stop.install()
        # Rank 0 holds the run directory; the other ranks wait for it in _resume's all-reduce.
        lock = hold_attempt_lock(self.out_dir, self.stop, self._print) if self.rank == 0 else None
        try:
            return self._run()
        finally:
            if lock is not None:
                lock.close()  # releases it; exiting would too

    def _run(self) -> dict:
        start = self._resume()
        if start:
            self._print(f"resumed from checkpoint at iteration {start}")
        if self._should_stop():  # signalled during start-up: nothing of this attempt is written yet
            self._print(f"signal {self.stop.signum} during start-up: exit {EXIT_RESUME} to resume")
            raise SystemExit(EXIT_RESUME)

        is_writer = self.rank == 0
        # No checkpoint (first start, or killed before the first one): rows of an earlier attempt are dropped.
        log = MetricsLog(self.out_dir / "metrics.jsonl", resume_step=start or None, enabled=is_writer)
        tracker = Tracker(
            self.spec.get("run_id") or self.out_dir.name,
            self.spec.get("study"),
            self.spec,
            self.out_dir,
            enabled=is_writer and self.spec.get("wandb", True),
        )
        tracker.continue_from(log.kept_rows)
        meter = detect_meter(device_index=self.launch.local_rank) if is_writer else None
        if meter is not None:
            meter.start()
        wall0 = time.perf_counter()
        if start == 0:
            log.log(kind="valid", step=0, tokens=0, loss=self.evaluate())
        try:
            loss, train_seconds = self._train_loop(start, log, tracker)
        except (OutOfMemory, NonFiniteLoss, CheckpointWriteError) as exc:
            log.close()  # the rows so far stay in metrics.jsonl.partial for the resumed attempt
            tracker.finish(exit_code={OutOfMemory: EXIT_OOM, NonFiniteLoss: EXIT_NONFINITE}.get(type(exc), EXIT_IO))
            raise
        summary = self._summary(loss, time.perf_counter() - wall0, train_seconds)
        if meter is not None:
            energy = meter.stop()
            meter.close()
            # Tokens of this job only: a resumed job's meter saw only the steps it ran.
            summary["energy"] = dict(
                energy,
                joules_per_token=joules_per_token(energy, (self.train_iters - start) * self.global_batch * self.seq),
            )
        if is_writer:
            tracker.summary(summary)  # nested dicts (energy) are flattened to energy/joules_per_token etc.
            tracker.finish()
            log.finalize()
            atomic_write_json(self.out_dir / "summary.json", summary)
        return summary

    def _train_loop(self, start: int, log, tracker) -> tuple[float, float]:
        """Steps `start`..train_iters with logging, evaluation and checkpoints; returns the last
        loss and the seconds spent inside training steps."""
        clock = Throughput()
        tokens_per_iter = self.global_batch * self.seq
        train_seconds = 0.0
        wall0 = time.perf_counter()
        loss = float("nan")
        for iteration in range(start, self.train_iters):
            clock.start()
            loss, grad_norm = self._step(iteration)
            clock.stop(tokens_per_iter)
            step = iteration + 1
            nonfinite = (
                f"non-finite loss ({loss}) at step {step}"
                if not math.isfinite(loss)
                else f"non-finite gradient norm ({grad_norm}) at step {step}, loss {loss:.4f}"
                if grad_norm is not None and not math.isfinite(grad_norm)
                else None
            )
            if nonfinite:
                raise NonFiniteLoss(self._nonfinite_message(nonfinite))
            if step % self.log_interval == 0 or step == self.train_iters:
                seconds, window_tokens = clock.seconds, clock.tokens
                rate = clock.rate_and_reset()
                train_seconds += seconds
                lr = self.optimizer.param_groups[0]["lr"]
                row = dict(
                    kind="train",
                    step=step,
                    tokens=step * tokens_per_iter,
                    loss=loss,
                    lr=lr,
                    grad_norm=float("nan") if grad_norm is None else grad_norm,
                    tokens_per_s=rate,
                    **self._throughput(window_tokens, seconds),
                )
                log.log(**row)
                tracker.log(wandb_metrics(row), step=step)
                self._print(
                    f"step {step}/{self.train_iters} loss {loss:.4f} lr {lr:.2e} {rate:,.0f} tok/s "
                    f"{progress_eta(time.perf_counter() - wall0, step - start, self.train_iters - step)}"
                )
            if step % self.eval_interval == 0 or step == self.train_iters:
                row = dict(kind="valid", step=step, tokens=step * tokens_per_iter, loss=self.evaluate())
                log.log(**row)
                tracker.log(wandb_metrics(row), step=step)
            if step % self.save_interval == 0 or step == self.train_iters:
                self._save(step)
            faults.after_step(step)  # after the step's checkpoint, if it has one
            if self._should_stop() and step < self.train_iters:
                self._save(step)
                log.close()
                tracker.finish(exit_code=EXIT_RESUME)
                self._print(f"signal {self.stop.signum}: checkpointed at step {step}; exit {EXIT_RESUME} to resume")
                raise SystemExit(EXIT_RESUME)
        return loss, train_seconds + clock.seconds

    def _throughput(self, tokens: int, seconds: float) -> dict:
        """Achieved TFLOP/s per device and MFU under both FLOP counts (MFU null when the peak is unknown)."""
        if seconds <= 0:
            return {}
        m = throughput_metrics(
            tokens,
            seconds,
            self.flops_per_token_chinchilla,
            self.flops_per_token_6n,
            self.world_size,
            self.device_name,
            "bf16" if self.bf16 else "fp32",
            self.spec.get("device_peaks"),
        )
        return {k: m[k] for k in ("tflops_per_device_chinchilla", "tflops_per_device_6n", "mfu_chinchilla", "mfu_6n")}

    def _resume(self) -> int:
        """Load the newest checkpoint that verifies, or return 0 to train from scratch.

        Checkpoints are only resumed together with the metrics log they belong to: if it is gone
        (e.g. `snakemake --forcerun` deleted a finished run's outputs, not its checkpoints), the
        loss curve could not be rebuilt, so the run starts over. Its old checkpoints are moved to
        `checkpoints/superseded/` and deleted only once the new run has saved one of its own, so
        nothing that verifies is lost before something newer does. Every rank agrees first."""
        has_log = (self.out_dir / "metrics.jsonl.partial").exists()
        if max_over_ranks(0.0 if has_log else 1.0) == 0.0:
            return resume_latest(self.ckpt_root, self.model.module, self.optimizer, self.scheduler, self._print)
        old = checkpoint_dirs(self.ckpt_root)
        if old and self.rank == 0:
            aside = self.ckpt_root / SUPERSEDED
            aside.mkdir(exist_ok=True)
            for _, folder in old:
                folder.rename(aside / folder.name)
            self._print(
                f"the metrics log of the checkpoints in {self.ckpt_root} is gone (outputs removed, e.g. by "
                f"--forcerun): training from scratch; the old ones wait in {aside} until this run saves one"
            )
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
        return 0

    def _oom_message(self, step: int, micro_index: int | None) -> str:
        """One line: where it failed, how big the micro-batch was, and which config knob to turn."""
        scale = self.spec.get("scale") or str(self.spec.get("run_id") or "<scale>").split(".")[0]
        memory = ""
        if torch.cuda.is_available():
            total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
            memory = f"; peak {torch.cuda.max_memory_allocated() / 2**30:.1f} of {total / 2**30:.1f} GiB"
        where = (
            f"micro-batch {micro_index + 1}/{self.num_microbatches}"
            if micro_index is not None
            else "in the optimizer step"
        )
        return (
            f"out of memory at step {step}, {where} "
            f"(micro_batch_size {self.micro} × seq_length {self.seq}, TP {self.tp}, PP {self.pp}{memory}); "
            f"lower scales.{scale}.train.micro_batch_size (global_batch_size is kept by more accumulation) "
            f"or raise scales.{scale}.parallel.tp"
        )

    def _should_stop(self) -> bool:
        flag = torch.tensor([float(self.stop.signum)])
        if torch.distributed.is_initialized() and not torch.cuda.is_available():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return flag.item() > 0

    def _summary(self, final_loss: float, wall: float, train_seconds: float) -> dict:
        tokens = self.train_iters * self.global_batch * self.seq
        return {
            "run_id": self.spec.get("run_id"),
            "arch": self.spec["arch"],
            "model": self.model_spec.to_dict(),
            "parameters": self.n_params,
            "iterations": self.train_iters,
            "tokens": tokens,
            "global_batch_size": self.global_batch,
            "micro_batch_size": self.micro,
            "num_microbatches": self.num_microbatches,
            "parallel": {"tp": self.tp, "pp": self.pp, "dp": self.dp},
            "final_train_loss": final_loss,
            "wall_seconds": wall,
            "planned_seconds": (self.spec.get("plan") or {}).get("seconds"),  # the cost plan's prediction
            "train_tokens_per_s": tokens / train_seconds if train_seconds > 0 else None,
            "flops_per_token": {"chinchilla": self.flops_per_token_chinchilla, "6n": self.flops_per_token_6n},
            "peak_memory_mb": _peak_memory_mb(),
            "checkpoint": str(iteration_dir(self.ckpt_root, self.train_iters).relative_to(self.out_dir)),
            "device": self.device_name,
            "dtype": "bf16" if self.bf16 else "fp32",
            "layer_spec": "transformer_engine" if self.use_te else "local",
            "versions": _versions(),
        }

    def _print(self, msg: str) -> None:
        if self.rank == 0:
            print(msg, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_eta(elapsed: float, steps_done: int, steps_left: int) -> str:
    """ "elapsed 0:01:05 eta 0:03:10": the time left at this attempt's own pace so far (evaluation
    and checkpoints included, so the estimate is what the wall clock will show)."""
    eta = elapsed / steps_done * steps_left if steps_done > 0 else float("nan")
    return f"elapsed {_clock(elapsed)} eta {_clock(eta) if eta == eta else '?'}"


def _versions() -> dict:
    from importlib.metadata import version

    return {"torch": torch.__version__, "megatron-core": version("megatron-core"), "python": platform.python_version()}


def plan_line(plan: dict | None) -> str:
    """The cost plan's prediction for this run (workflow.hpc.plan.run_prediction, in the spec)."""
    if not plan:
        return "plan: no prediction in the spec (run outside the DAG)"
    if "error" in plan:
        return f"plan: no prediction ({plan['error']})"
    return (
        f"plan: {plan['flops']:.3g} FLOPs on {plan['devices']} device(s), predicted {_clock(plan['seconds'])} "
        f"of training ({plan['basis']}); the progress lines below give its own ETA"
    )


def train(spec: dict) -> dict:
    """Train (or resume) one run to its token budget; returns the summary."""
    if launch_info(os.environ).rank == 0:
        print(plan_line(spec.get("plan")), flush=True)
    megatron_cpu.activate()
    threads = spec.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return Trainer(spec).run()
    finally:
        shutdown()


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--spec", help="resolved run spec as a JSON string")
    group.add_argument("--spec-file", help="resolved run spec as a JSON file")
    args = parser.parse_args(argv)
    try:
        spec = (
            json_option("--spec", args.spec)
            if args.spec
            else json_option(args.spec_file, Path(args.spec_file).read_text())
        )
    except OSError as exc:
        raise ScaleDAGError(f"--spec-file: {exc}") from None
    try:
        train(spec)
    except NonFiniteLoss as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_NONFINITE) from None
    except OutOfMemory as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_OOM) from None


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
