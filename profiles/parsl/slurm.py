"""Parsl config for a generic Slurm cluster (`--parsl-config profiles/parsl/slurm.py`).

Elastic pilot jobs (blocks) of one node, between 0 and SCALEDAG_PARSL_MAX_BLOCKS at once, released
after SCALEDAG_PARSL_IDLE seconds idle; multi-node jobs go to an MPI-mode executor whose blocks span
SCALEDAG_PARSL_MPI_NODES nodes and launch ranks with srun. Cluster specifics come from the
environment, so the file needs no edits: SBATCH_ACCOUNT, SCALEDAG_PARSL_PARTITION,
SCALEDAG_PARSL_CORES (cores a block asks for), SCALEDAG_PARSL_MEM_GB, SCALEDAG_PARSL_WALLTIME,
SCALEDAG_PARSL_EXCLUSIVE (1: whole nodes)."""

import os
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor, MPIExecutor
from parsl.launchers import SimpleLauncher, SrunLauncher
from parsl.providers import SlurmProvider

env = os.environ.get
CORES = int(env("SCALEDAG_PARSL_CORES", "8"))
MEM_GB = int(env("SCALEDAG_PARSL_MEM_GB", "0")) or None
MAX_BLOCKS = int(env("SCALEDAG_PARSL_MAX_BLOCKS", "4"))
MPI_NODES = int(env("SCALEDAG_PARSL_MPI_NODES", "2"))
WORKER_INIT = f"export PATH={os.path.dirname(sys.executable)}:$PATH"


def provider(nodes=1, launcher=None):
    return SlurmProvider(
        partition=env("SCALEDAG_PARSL_PARTITION") or None,
        account=env("SBATCH_ACCOUNT") or None,
        nodes_per_block=nodes,
        cores_per_node=CORES,
        mem_per_node=MEM_GB,
        exclusive=env("SCALEDAG_PARSL_EXCLUSIVE", "0") == "1",
        init_blocks=0,
        min_blocks=0,
        max_blocks=MAX_BLOCKS,
        parallelism=1.0,  # one block per waiting job, up to max_blocks
        walltime=env("SCALEDAG_PARSL_WALLTIME", "01:00:00"),
        worker_init=WORKER_INIT,
        launcher=launcher or SrunLauncher(overrides=f"--cpus-per-task={CORES}"),
    )


config = Config(
    executors=[
        # Single-threaded jobs: one worker per core of each block.
        HighThroughputExecutor(label="core", cores_per_worker=1, max_workers_per_node=CORES, provider=provider()),
        # Multi-threaded jobs: one worker with the block's cores.
        HighThroughputExecutor(label="node", cores_per_worker=CORES, max_workers_per_node=1, provider=provider()),
        # Multi-node / multi-task jobs: the worker on the block's first node launches ranks with srun.
        MPIExecutor(
            label="mpi",
            mpi_launcher="srun",
            max_workers_per_block=1,
            provider=provider(nodes=MPI_NODES, launcher=SimpleLauncher()),
        ),
    ],
    max_idletime=float(env("SCALEDAG_PARSL_IDLE", "30")),
    strategy="htex_auto_scale",
    strategy_period=2,
    usage_tracking=0,
)
