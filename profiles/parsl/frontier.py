"""Parsl config for OLCF Frontier (`--parsl-config profiles/parsl/frontier.py`; SBATCH_ACCOUNT set).

Nodes have 8 MI250X GCDs and 56 usable cores (7 per GCD). Blocks: one node of 8 one-GCD workers for
GPU jobs, one node as a single 56-core worker for data stages (with node-local NVMe, -C nvme), and
16-node blocks in MPI mode for pretraining (ranks launched by srun, one GCD each). Every block
stays inside the `batch` partition's 2 h bin for <= 91 nodes; runs resume from checkpoints."""

import os
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor, MPIExecutor
from parsl.launchers import SimpleLauncher, SrunLauncher
from parsl.providers import SlurmProvider

ACCOUNT = os.environ.get("SBATCH_ACCOUNT")
if not ACCOUNT:
    raise RuntimeError("SBATCH_ACCOUNT is not set: Frontier jobs need a project account")
MPI_NODES = int(os.environ.get("SCALEDAG_PARSL_MPI_NODES", "16"))
WORKER_INIT = "; ".join(
    [
        "module load PrgEnv-gnu rocm craype-accel-amd-gfx90a",
        "export NCCL_SOCKET_IFNAME=hsn0",
        "export MIOPEN_USER_DB_PATH=/tmp/miopen-$USER-$SLURM_JOB_ID MIOPEN_CUSTOM_CACHE_DIR=/tmp/miopen-$USER-$SLURM_JOB_ID",
        f"export PATH={os.path.dirname(sys.executable)}:$PATH",
    ]
)


def provider(nodes=1, max_blocks=8, launcher=None, constraint=None, gpus_per_node=None):
    return SlurmProvider(
        partition="batch",
        account=ACCOUNT,
        constraint=constraint,
        nodes_per_block=nodes,
        cores_per_node=56,
        gpus_per_node=gpus_per_node,
        exclusive=True,
        init_blocks=0,
        min_blocks=0,
        max_blocks=max_blocks,
        parallelism=1.0,
        walltime="02:00:00",  # batch bin for 1-91 nodes
        scheduler_options="#SBATCH --signal=USR1@600",
        worker_init=WORKER_INIT,
        launcher=launcher or SrunLauncher(overrides="-c 56"),
    )


config = Config(
    executors=[
        HighThroughputExecutor(
            label="gcd", cores_per_worker=7, max_workers_per_node=8, available_accelerators=8, provider=provider()
        ),
        HighThroughputExecutor(
            label="node", cores_per_worker=56, max_workers_per_node=1, provider=provider(constraint="nvme")
        ),
        MPIExecutor(
            label="mpi",
            mpi_launcher="srun",
            max_workers_per_block=1,
            provider=provider(nodes=MPI_NODES, max_blocks=4, launcher=SimpleLauncher(), gpus_per_node=8),
        ),
    ],
    max_idletime=120,
    strategy="htex_auto_scale",
    usage_tracking=0,
)
