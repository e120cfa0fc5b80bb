"""Snakemake executor plugin that runs each job as a Parsl bash app: `snakemake --executor parsl`.

Why: Parsl's HighThroughputExecutor keeps elastic pilot jobs (blocks) on a cluster and packs many
short jobs into them, and its MPI mode hands multi-node jobs a ready `srun` prefix, so one
allocation pattern serves both the tokenizer and a 16-node pretrain. Snakemake has no Parsl plugin.

The Parsl config is a Python file defining `config` (a `parsl.config.Config`); profiles/parsl/ ships
local, slurm and frontier ones. Each job goes to the smallest executor whose workers fit its
`cpus_per_task` (or threads), `mem_mb` and `gpu(s)`; jobs with more than one node or task go to an
executor in MPI mode with `parsl_resource_specification` (`num_nodes`, `ranks_per_node`), whose
`$PARSL_MPI_PREFIX` the rule's `{resources.mpi}` uses.
"""

import os
import shlex
import sys
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from snakemake_executor_plugin_parsl.placement import Slot, choose_slot, job_needs, load_parsl_config


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    # Optional[X], not X | None: snakemake-interface-common recognises only typing.Union when it builds
    # the command-line options (a `Path | None` type would be called on the value and fail).
    config: Optional[Path] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Python file defining `config`, a parsl.config.Config (e.g. profiles/parsl/slurm.py); "
            "default: one HighThroughputExecutor on this machine (LocalProvider).",
            "env_var": False,
            "required": False,
        },
    )
    max_blocks: Optional[int] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Override every provider's max_blocks (pilot jobs at once).", "required": False},
    )
    max_idletime: Optional[float] = field(  # noqa: UP045
        default=None,
        metadata={"help": "Seconds a block may sit idle before Parsl releases it.", "required": False},
    )
    run_dir: Optional[Path] = field(  # noqa: UP045
        default=None,
        metadata={
            "help": "Parsl's run directory (logs, pilot job scripts); default .snakemake/parsl.",
            "required": False,
        },
    )


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    pass_envvar_declarations_to_cmd=True,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
)


def _run_command(command: str, stdout: str, stderr: str, parsl_resource_specification: dict | None = None) -> str:
    """Body of the Parsl bash app: the job's `python -m snakemake ...` line."""
    return command


class Executor(RemoteExecutor):
    def __post_init__(self):
        import parsl

        settings = self.workflow.executor_settings
        # Parsl starts interchange.py and process_worker_pool.py by name: use this Python's scripts.
        bindir = os.path.dirname(sys.executable)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        self.workdir = os.getcwd()
        run_dir = Path(settings.run_dir or ".snakemake/parsl").resolve()
        self.log_dir = Path(".snakemake/parsl_logs").resolve()
        self.config_path = settings.config
        config = load_parsl_config(settings.config, run_dir)
        if settings.max_idletime is not None:
            config.max_idletime = settings.max_idletime
        if settings.max_blocks is not None:
            for ex in config.executors:
                ex.provider.max_blocks = settings.max_blocks
        self.slots = [Slot.from_executor(ex) for ex in config.executors]
        self.dfk = parsl.load(config)
        self.apps = {s.label: parsl.bash_app(_run_command, executors=[s.label]) for s in self.slots}
        # Polling a future costs nothing (no scheduler query): look every second.
        self.next_seconds_between_status_checks = 1
        self.logger.info("Parsl executors: " + "; ".join(s.describe() for s in self.slots))

    def run_job(self, job: JobExecutorInterface):
        needs = job_needs(job)
        slot = choose_slot(self.slots, needs)
        if slot is None:
            raise WorkflowError(
                f"Parsl: no executor in {self.config_path or 'the default config'} fits job {job.jobid} "
                f"(rule {job.name}: {needs}); available: " + "; ".join(s.describe() for s in self.slots)
            )
        log = self.log_dir / job.name / f"{job.jobid}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = f"cd {shlex.quote(self.workdir)} && {self.format_job_exec(job)}"
        kwargs = {}
        if slot.mpi:
            spec = {"num_nodes": needs.nodes, "ranks_per_node": max(1, needs.tasks // needs.nodes)}
            options = f"-c {needs.cpus_per_task}"
            if needs.gpus:
                options += f" --gpus-per-task={max(1, needs.gpus // needs.tasks)} --gpu-bind=closest"
            spec["launcher_options"] = options
            kwargs["parsl_resource_specification"] = spec
        future = self.apps[slot.label](command, stdout=str(log), stderr=str(log), **kwargs)
        self.report_job_submission(
            SubmittedJobInfo(job, external_jobid=f"{slot.label}:{future.tid}", aux={"future": future, "log": log})
        )

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]) -> AsyncGenerator[SubmittedJobInfo, None]:
        for job_info in active_jobs:
            future = job_info.aux["future"]
            if not future.done():
                yield job_info
                continue
            error = future.exception() if not future.cancelled() else "cancelled"
            if error is None:
                self.report_job_success(job_info)
            else:
                self.report_job_error(
                    job_info,
                    msg=f"Parsl task {job_info.external_jobid} failed: {error}. ",
                    aux_logs=[str(job_info.aux["log"])],
                )

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]):
        # Parsl futures cannot be cancelled (AppFuture.cancel raises): the tasks end with their pilot
        # jobs, which shutdown() (called right after this by RemoteExecutor.cancel) releases.
        for job_info in active_jobs:
            self.logger.info(f"Cancelling {job_info.job} (Parsl task {job_info.external_jobid}) with its pilot job")

    def shutdown(self):
        super().shutdown()
        if self.dfk is None:  # cancel() already shut down
            return
        import parsl

        # Scales every block in: the provider cancels the pilot jobs (scancel on Slurm).
        self.dfk.cleanup()
        self.dfk = None
        parsl.clear()
