"""Sweep expansion of the efficiency study (`studies.<s>.benchmarks` in config.yaml).

Turns the per-scale sweep lists into explicit points, and groups the training-throughput points of
each workload (GPT-2 on text, GenSLM on codons: `TRAIN_WORKLOADS`) into jobs (`<size>.dp<n>`: one
process or one torchrun/srun launch per model size and device count), so the rules, the benchmark
scripts and the integration test all agree on what "every declared point" is.
"""

from __future__ import annotations

import itertools
import math

from workflow import warm
from workflow.errors import ScaleDAGError
from workflow.hpc.resources import launch_prefix, machine
from workflow.resolve import corpus_name, corpus_tokenizer, data_dir, results_root, scale_config

# Workloads timed through whole training steps, each a `studies.<s>.benchmarks.<workload>` section:
# GPT-2 on the scale's text corpus, and GenSLM's codon models on its gene corpus.
TRAIN_WORKLOADS = ("gpt2", "genslm")


def benchmarks(config: dict, study: str) -> dict:
    st = config["studies"][study]
    if "benchmarks" not in st:
        raise ScaleDAGError(f"config: studies.{study}: has no 'benchmarks' section")
    return st["benchmarks"]


def block_sweep(config: dict, study: str) -> dict | None:
    """The block benchmark's settings at the selected scale (None: not declared there)."""
    b = benchmarks(config, study).get("block")
    return (
        None
        if b is None or config["scale"] not in b
        else {**b[config["scale"]], "archs": b["archs"], "sparsity": b["sparsity"]}
    )


def block_points(sweep: dict) -> list[dict]:
    """Full grid seq_length x micro_batch_size x hidden (heads = hidden / head_dim)."""
    points = []
    for hidden, seq, micro in itertools.product(sweep["hidden"], sweep["seq_length"], sweep["micro_batch_size"]):
        if hidden % sweep["head_dim"]:
            raise ScaleDAGError(f"block sweep: hidden {hidden} is not a multiple of head_dim {sweep['head_dim']}")
        points.append(
            {"hidden": hidden, "heads": hidden // sweep["head_dim"], "seq_length": seq, "micro_batch_size": micro}
        )
    return points


def block_spec(config: dict, study: str, arch: str) -> dict:
    sweep = block_sweep(config, study)
    return {
        "study": study,
        "scale": config["scale"],
        "arch": arch,
        "points": block_points(sweep),
        "warmup": sweep["warmup"],
        "repeats": sweep["repeats"],
        "sparsity": sweep["sparsity"],
        "bf16": scale_config(config)["device"] == "gpu",
        "threads": scale_config(config).get("threads_per_run"),
    }


def train_sweep(config: dict, study: str, workload: str) -> dict | None:
    """One workload's sweeps at the selected scale, with its arch, overrides and corpus (None: not
    declared there)."""
    if workload not in TRAIN_WORKLOADS:
        raise ScaleDAGError(f"benchmark workload {workload!r}: expected one of {list(TRAIN_WORKLOADS)}")
    g = benchmarks(config, study).get(workload)
    if g is None or config["scale"] not in g:
        return None
    corpus = g.get("corpus", {}).get(config["scale"]) or corpus_name(config)
    if corpus not in config["corpora"]:
        raise ScaleDAGError(
            f"config: studies.{study}.benchmarks.{workload}.corpus.{config['scale']}: unknown corpus {corpus!r}"
        )
    return {**g[config["scale"]], "arch": g["arch"], "overrides": g.get("overrides", {}), "corpus": corpus}


def train_workloads(config: dict, study: str) -> list[str]:
    """The workloads with sweeps at the selected scale."""
    return [w for w in TRAIN_WORKLOADS if train_sweep(config, study, w) is not None]


def train_jobs(config: dict, study: str, workload: str) -> dict[str, list[dict]]:
    """Job name `<size>.dp<n>` -> its points. Three sweeps:

    - `seq`: every size x seq_length, micro_batch_size per step, no accumulation, 1 device;
    - `grad_accum`: the `focus` size at `base_seq_length`, fixed global_batch_size split into
      1, 2, 4, ... micro-batches (micro = global / accum), 1 device;
    - `devices`: the focus size at base_seq_length, micro_batch_size per device (weak scaling:
      global batch = micro x n), on n = each of `devices`.
    """
    g = train_sweep(config, study, workload)
    if g is None:
        return {}
    where = f"config: studies.{study}.benchmarks.{workload}.{config['scale']}"
    focus = g.get("focus") or g["sizes"][0]
    if focus not in g["sizes"]:
        raise ScaleDAGError(f"{where}.focus: {focus!r} is not one of its sizes {g['sizes']}")
    base_seq = g["base_seq_length"]
    micro = g["micro_batch_size"]
    jobs: dict[str, list[dict]] = {}
    for size in g["sizes"]:
        if size not in config["shapes"]:
            raise ScaleDAGError(f"{where}.sizes: unknown shape {size!r}")
        pts = [
            {"sweep": "seq", "size": size, "seq_length": s, "micro_batch_size": micro, "grad_accum": 1, "devices": 1}
            for s in g["seq_length"]
        ]
        if size == focus:
            gbs = g["global_batch_size"]
            for acc in g["grad_accum"]:
                if gbs % acc:
                    raise ScaleDAGError(f"{where}.grad_accum: {acc} does not divide global_batch_size {gbs}")
                pts.append(
                    {
                        "sweep": "grad_accum",
                        "size": size,
                        "seq_length": base_seq,
                        "micro_batch_size": gbs // acc,
                        "grad_accum": acc,
                        "devices": 1,
                    }
                )
            pts.append(
                {
                    "sweep": "devices",
                    "size": size,
                    "seq_length": base_seq,
                    "micro_batch_size": micro,
                    "grad_accum": 1,
                    "devices": 1,
                }
            )
        jobs[f"{size}.dp1"] = pts
    for n in g["devices"]:
        if n > 1:
            jobs[f"{focus}.dp{n}"] = [
                {
                    "sweep": "devices",
                    "size": focus,
                    "seq_length": base_seq,
                    "micro_batch_size": micro,
                    "grad_accum": 1,
                    "devices": n,
                }
            ]
    return jobs


def job_devices(job: str) -> int:
    return int(job.rsplit(".dp", 1)[1])


def train_launcher(config: dict, study: str, workload: str, job: str) -> str:
    """How the job's ranks start: python through the warm worker (1 device; workflow.warm); torchrun on one local node; on a cluster
    machine (workflow.hpc.resources, e.g. Frontier) srun across `ceil(n / devices_per_node)` nodes."""
    n = job_devices(job)
    per_node = train_sweep(config, study, workload)["devices_per_node"]
    mach = machine(config)
    if n == 1:
        return warm.PYTHON
    if n > per_node and n % per_node:
        raise ScaleDAGError(
            f"{workload} benchmark job {job}: {n} devices is not a whole number of {per_node}-device nodes"
        )
    if mach.partitions:
        threads = scale_config(config)["threads_per_run"]
        return f"{launch_prefix(mach, train_nodes(config, study, workload, job), min(n, per_node), threads, 1)} python"
    if n > per_node:
        raise ScaleDAGError(
            f"{workload} benchmark job {job}: {n} devices need several nodes, but scale {config['scale']!r} runs on a local machine"
        )
    return f"python -m torch.distributed.run --standalone --nproc_per_node {n}"


def train_nodes(config: dict, study: str, workload: str, job: str) -> int:
    return math.ceil(job_devices(job) / train_sweep(config, study, workload)["devices_per_node"])


def train_spec(config: dict, study: str, workload: str, job: str) -> dict:
    """What `workflow.bench.train` runs: the points plus a Trainer run-spec template per point."""
    g = train_sweep(config, study, workload)
    jobs = train_jobs(config, study, workload)
    if job not in jobs:
        raise ScaleDAGError(
            f"study {study!r} has no {workload} benchmark job {job!r} at scale {config['scale']!r}; expected one of {sorted(jobs)}"
        )
    sc = scale_config(config)
    ddir = data_dir(config, g["corpus"])
    return {
        "study": study,
        "scale": config["scale"],
        "workload": workload,
        "job": job,
        "corpus": g["corpus"],
        "arch": g["arch"],
        "overrides": g["overrides"],
        "shapes": {p["size"]: config["shapes"][p["size"]] for p in jobs[job]},
        "points": jobs[job],
        "warmup_steps": g["warmup_steps"],
        "steps": g["steps"],
        "vocab_size": corpus_tokenizer(config, g["corpus"])["vocab_size"],
        "data": {
            "tokenizer": f"{ddir}/tokenizer.json",
            "train_prefix": f"{ddir}/tokens/train",
            "valid_prefix": f"{ddir}/tokens/valid",
        },
        "train": dict(sc["train"]),
        "bf16": sc["device"] == "gpu",
        "threads": sc.get("threads_per_run"),
        "scratch": f"{results_root(config)}/{study}/{workload}/scratch/{job}",
    }
