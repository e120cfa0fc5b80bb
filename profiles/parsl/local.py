"""Parsl config for this machine (`--parsl-config profiles/parsl/local.py`): one pilot of workers
started by a LocalProvider, one core per worker; multi-threaded jobs take a whole-machine worker."""

import os
import sys

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

CORES = os.cpu_count() or 1
# Workers find this Python's process_worker_pool.py (the venv Snakemake runs from).
WORKER_INIT = f"export PATH={os.path.dirname(sys.executable)}:$PATH"

config = Config(
    executors=[
        # Single-threaded jobs (data stages, tiny pretrain runs): one worker per core.
        HighThroughputExecutor(
            label="core",
            cores_per_worker=1,
            max_workers_per_node=CORES,
            provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1, worker_init=WORKER_INIT),
        ),
        # Jobs asking for more threads: one worker with every core.
        HighThroughputExecutor(
            label="machine",
            cores_per_worker=CORES,
            max_workers_per_node=1,
            provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1, worker_init=WORKER_INIT),
        ),
    ],
    max_idletime=10,  # release a block idle for 10 s
    strategy="htex_auto_scale",
    strategy_period=1,  # look at the task queue every second
    usage_tracking=0,
)
