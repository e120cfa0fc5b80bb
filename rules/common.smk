# Validation, the DAG's input functions and its targets. Every input function is a method of
# workflow.dag.Dag (plain Python of config and wildcards, unit-tested without Snakemake); every
# results path comes from workflow.layout.Layout.
import os
import sys

from workflow import warm
from workflow.config import NAME_PATTERN, validate_config
from workflow.dag import Dag
from workflow.errors import ScaleDAGError
from workflow.hpc.plan import planned_pretrain_spec
from workflow.hpc.resources import account_problem
from workflow.layout import Layout

try:
    validate_config(config)
except ScaleDAGError as exc:
    sys.stderr.write(f"ScaleDAG {exc}\n")
    sys.exit(1)

# The account check needs the executor, known only once the run starts (onstart hooks run neither
# in dry runs nor inside cluster jobs), so a dry run only warns.
if account_problem(config, None, os.environ):
    sys.stderr.write(f"ScaleDAG warning: {account_problem(config, None, os.environ)}; a real run will stop\n")


# Rules run `python -m workflow.warm -m <module>` (warm.PYTHON): with the server below, the job forks
# from a process that imported torch, megatron and transformers once; without it, plain python.
_warm_server = []


onstart:
    if account_problem(config, workflow.executor_plugin.name, os.environ):
        sys.stderr.write(f"ScaleDAG {account_problem(config, workflow.executor_plugin.name, os.environ)}\n")
        sys.exit(1)
    # Local jobs only: a cluster job belongs to its scheduler's node, cgroup and accounting.
    if config["warm_worker"] and workflow.executor_plugin.name == "local":
        proc, os.environ[warm.ENV] = warm.start(os.path.join(config["logs"], config["scale"]))
        _warm_server.append(proc)


onsuccess:
    for proc in _warm_server:
        warm.stop(proc)


onerror:
    for proc in _warm_server:
        warm.stop(proc)


layout = Layout.of(config)
dag = Dag(config, checkpoints)


wildcard_constraints:
    corpus=NAME_PATTERN,  # the names config.py accepts at load
    study=NAME_PATTERN,
    run=r"[A-Za-z0-9.-]+(_[A-Za-z0-9.-]+)+",  # <variant>_<shape>[_s<seed>]
    split=r"train|valid",
