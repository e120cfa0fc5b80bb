"""Cost plan of a scale's DAG, from config alone: what every job will cost before anything runs.

    python -m workflow.hpc.plan --scale paper --profile profiles/frontier [--config allocation_node_hours=2e5]
    snakemake --profile profiles/frontier plan --config scale=paper      (rules/plan.smk: the same CLI)
    make plan SCALE=paper PROFILE=profiles/frontier

writes `results/<scale>/plan.csv` (one row per job) and prints a table per study and rule with the
totals. Per job: its devices (nodes x GPUs per node; one MI250X GCD is one device, 8 per Frontier
node), FLOPs, expected hours, device-hours, node-hours, walltime bin, the resubmissions it needs
against those configured, and an energy estimate. Nothing is submitted, trained or read but config,
the profile and committed benchmark rows.

Where each number comes from:
- FLOPs of a training run: tokens trained (whole global batches, as the trainer rounds) x Chinchilla's
  appendix-F training FLOPs per token of the run's shape (`workflow.model.flops`), plus the in-run
  validation forwards (1/3 of that per token: forward only) over eval_iters x micro-batch x DP x seq
  tokens at every eval_interval and the last step. evaluate_loss: <= eval.max_tokens forwards.
  Benchmarks, zero-shot, band gap, export and analysis jobs have no bounded FLOP count here: they
  are costed at their walltime request, an upper bound (`hours_basis` says which).
- Hours = FLOPs / (devices x sustained FLOP/s per device); sustained = MFU x the device's dense peak
  (`workflow.telemetry.mfu`). MFU: `--mfu`, else the median `mfu_chinchilla` of measured GPT-2 rows
  for this device and dtype in benchmarks/results/*.jsonl, else the scale's own planning figure in
  config (a study's `size_choice`: 0.3 on MI250X GCDs at paper, 0.4 on H100 at small), else
  DEFAULT_MFU. The hours are compute only: start-up and checkpoint restore of each resubmission are
  not counted.
- Walltime bin: the job's runtime request, cut to its machine's bin (`workflow.hpc.resources`:
  Frontier batch <= 91 nodes 2 h, <= 183 nodes 6 h, else 12 h); a rule with scale resources but no
  runtime gets its bin's limit there, a rule without scale resources the profile's default runtime. A job that gets Slurm's pre-walltime signal checkpoints SIGNAL_SECONDS early, so
  it trains walltime - 10 min per job: a run of H hours needs ceil(H / usable) jobs, i.e. that
  minus 1 resubmissions, against `resources.<rule>.resubmits` (else the profile's `retries`).
  Only pretrain resumes from a checkpoint: any other job longer than its walltime is an error.
- Energy: DEVICE_WATTS (vendor maximum board power per device) x device-hours. An ESTIMATE and an
  upper bound for the accelerators alone: no host CPUs, memory, network or cooling.
- Jobs known only once a checkpoint has run are planned from config and marked in `estimated`: the
  Chinchilla closed loop trains at most LOOP_RUNS_PER_BUDGET runs of ~C FLOPs each per budget C, and a
  proxy study's full runs are costed as its top + bottom k costliest candidates.

`allocation_node_hours` (config) turns a plan over the allocation into a one-line error, as does a
run that needs more resubmissions than configured.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from workflow import config as cfg
from workflow.dag import STUDY_TABLE_RULES, Dag
from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.hpc.resources import SIGNAL_SECONDS, machine, rule_resource_spec, rule_retries
from workflow.io import write_csv
from workflow.layout import REPO_ROOT, Layout
from workflow.model.flops import Shape, chinchilla_training_flops_per_token
from workflow.model.gpt import make_model_spec
from workflow.studies import benchmarks as bench
from workflow.studies import isoflop, proxy
from workflow.telemetry.mfu import match_device, normalize_dtype, peak_flops

# A planning figure, not a measurement: the MFU config.yaml already plans the paper scale with
# (studies.chinchilla.isoflop.paper.size_choice: bf16 on MI250X GCDs), used where nothing better is known.
DEFAULT_MFU = 0.3
# The device a machine's GPU jobs get (workflow/hpc/resources.py: FRONTIER has 8 GCDs per node, each
# one torch device); other machines name theirs through a planning figure or --device.
MACHINE_DEVICES = {"frontier": "MI250X GCD"}
# Maximum board power per device as torch sees it (W), for the energy estimate. Sources: AMD Instinct
# MI250X datasheet, 560 W per OAM package of 2 GCDs = 280 W per GCD (MI250: same 560 W); MI300X
# datasheet 750 W; NVIDIA H100/H200 SXM datasheets up to 700 W, H100 PCIe 350 W; A100 SXM 400 W.
DEVICE_WATTS = {
    "MI250X GCD": 280.0,
    "MI250X (whole)": 560.0,
    "MI250 GCD": 280.0,
    "MI300X": 750.0,
    "H100 SXM": 700.0,
    "H100 PCIe": 350.0,
    "H200": 700.0,
    "A100": 400.0,
}
# Rules whose .smk asks `dag.resources(rule)` (scale resources, cut to the machine's bins); every
# other rule gets the profile's default-resources (runtime, nodes=1). tests/hpc/test_plan.py holds
# every job's nodes, runtime and GPUs against Snakemake's own dry run, so this list cannot drift.
SCALE_RESOURCE_RULES = (
    "prepare_corpus",
    "train_tokenizer",
    "tokenize_shard",
    "tokenize_corpus",
    "pretrain",
    "evaluate_loss",
    "evaluate_zeroshot",
    "embed_bandgap",
    "benchmark_block",
    "benchmark_train",
)
RESUMABLE = ("pretrain",)  # continues from its newest checkpoint in the next job
# analysis/chinchilla/closed_loop.py plan_runs: per budget, approaches 1-3's optimum plus an over-
# and an under-sized model; roles that map to one shape train once, so 5 is an upper bound.
LOOP_RUNS_PER_BUDGET = 5
COLUMNS = (
    "study",
    "rule",
    "job",
    "estimated",
    "nodes",
    "devices",
    "device",
    "flops",
    "flops_basis",
    "sustained_tflops_per_device",
    "hours",
    "hours_basis",
    "device_hours",
    "node_hours",
    "partition",
    "walltime_h",
    "resubmits_needed",
    "resubmits_configured",
    "energy_kwh_estimate",
    "problem",
)


@dataclass(frozen=True)
class Defaults:
    """What the profile gives jobs that the scale's resources leave open (Snakemake's own: nothing)."""

    runtime: int | None = None  # minutes (default-resources: runtime)
    partition: str | None = None  # default-resources: slurm_partition
    retries: int = 0  # --retries: resubmissions of a job whose rule sets none


@dataclass(frozen=True)
class Throughput:
    """Sustained training FLOP/s of one device, and where the figure comes from."""

    device: str
    dtype: str
    sustained: float  # FLOP/s per device
    source: str
    watts: float | None


def profile_defaults(profile: str | Path | None) -> Defaults:
    """Defaults from a Snakemake profile directory's config.yaml (`retries`, `default-resources`)."""
    if profile is None:
        return Defaults()
    path = Path(profile) / "config.yaml"
    try:
        prof = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScaleDAGError(f"--profile: {path}: {str(exc).splitlines()[0]}") from None
    res = dict(str(kv).split("=", 1) for kv in prof.get("default-resources", []) if "=" in str(kv))
    runtime = res.get("runtime")
    return Defaults(
        runtime=int(runtime) if runtime and runtime.isdigit() else None,
        partition=res.get("slurm_partition"),
        retries=int(prof.get("retries", 0)),
    )


# -- sustained FLOP/s per device ------------------------------------------------------------------


def planning_figure(config: dict) -> tuple[dict, str] | None:
    """The scale's own planning figure in config: a study's `size_choice` at this scale."""
    for study, st in config["studies"].items():
        choice = (st.get("isoflop") or {}).get(config["scale"], {}).get("size_choice")
        if choice:
            return choice, f"studies.{study}.isoflop.{config['scale']}.size_choice"
    return None


def measured_mfu(key: str, dtype: str, paths) -> tuple[float, str] | None:
    """Median appendix-F MFU of the measured GPT-2 training rows of this device and dtype."""
    values, files = [], set()
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            mfu = row.get("mfu_chinchilla")
            if row.get("status") != "ok" or not isinstance(mfu, (int, float)) or not row.get("dtype"):
                continue
            if match_device(row.get("device")) == key and normalize_dtype(row["dtype"]) == dtype:
                values.append(float(mfu))
                files.add(Path(path).name)
    if not values:
        return None
    return statistics.median(values), f"median MFU of {len(values)} measured rows ({', '.join(sorted(files))})"


def throughput(config: dict, device: str | None = None, mfu: float | None = None, rows=None) -> Throughput:
    """Device, dtype and sustained FLOP/s the plan assumes (precedence in the module docstring)."""
    sc = cfg.scale_config(config)
    dtype = "bf16" if sc["device"] == "gpu" else "fp32"  # what pretrain trains in (config.pretrain_spec)
    figure = planning_figure(config)
    name = device or (figure[0]["device"] if figure else None) or MACHINE_DEVICES.get(machine(config).name)
    if name is None:
        name = "cpu" if sc["device"] == "cpu" else None
    if name is None:
        raise ScaleDAGError(f"plan: no device known for scale {config['scale']!r}; pass --device (e.g. 'H100 SXM')")
    key = match_device(name) or name
    peak = peak_flops(name, dtype, config.get("device_peaks"))
    rows = sorted((REPO_ROOT / "benchmarks" / "results").glob("*.jsonl")) if rows is None else rows
    measured = measured_mfu(key, dtype, rows)
    same_device = figure and (match_device(figure[0]["device"]) or figure[0]["device"]) == key
    if mfu is None and measured is None and same_device and figure[0].get("achieved_tflops"):
        tflops = float(figure[0]["achieved_tflops"])
        return Throughput(
            key, dtype, tflops * 1e12, f"measured {tflops:g} TFLOP/s ({figure[1]})", DEVICE_WATTS.get(key)
        )
    if mfu is not None:
        value, source = float(mfu), "--mfu"
    elif measured is not None:
        value, source = measured
    elif same_device and figure[0].get("mfu"):
        value, source = float(figure[0]["mfu"]), f"planning figure ({figure[1]})"
    else:
        value, source = DEFAULT_MFU, "default (workflow/hpc/plan.py DEFAULT_MFU)"
    if peak is None:
        raise ScaleDAGError(
            f"plan: device {name!r} has no published {dtype} peak; add it to device_peaks or pass --device"
        )
    source = f"MFU {value:g} x {peak / 1e12:g} TFLOP/s {dtype} peak, {source}"
    return Throughput(key, dtype, value * peak, source, DEVICE_WATTS.get(key))


# -- the jobs of the DAG --------------------------------------------------------------------------


def _resources(dag: Dag, rule: str, defaults: Defaults) -> dict:
    res = dag.resources(rule) if rule in SCALE_RESOURCE_RULES else {}
    return {
        "nodes": int(res["nodes"]) if res else 1,  # a rule without cluster resources runs as a one-node job
        "devices": int(res.get("gpu", 0)),
        "runtime": res.get("runtime") or defaults.runtime,
        "partition": res.get("slurm_partition") or defaults.partition,
        "signal": "slurm_extra" in res,  # --signal=USR1@SIGNAL_SECONDS: checkpoint before the walltime
    }


def _job(study: str, rule: str, job: str, res: dict, **extra) -> dict:
    return {"study": study, "rule": rule, "job": job, **res, "flops": None, "flops_basis": "", "estimated": "", **extra}


def training_flops(spec: dict, world: int) -> tuple[float, float]:
    """(FLOPs, appendix-F training FLOPs per token) of one pretrain run, as the trainer will run it."""
    m = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec.get("arch_overrides"))
    fpt = chinchilla_training_flops_per_token(Shape.of(m))
    tr, par = spec["train"], spec["parallel"]
    # The trainer's arithmetic (workflow/train/pretrain.py): whole global batches, and a validation
    # pass of eval_iters micro-batches per data-parallel rank every eval_interval steps and at the end.
    per_iter = int(tr["global_batch_size"]) * m.seq_length
    iters = max(1, math.ceil(float(tr["tokens"]) / per_iter))
    interval = int(tr["eval_interval"])
    evals = iters // interval + (1 if iters % interval else 0)
    dp = max(1, world // (int(par["tp"]) * int(par["pp"])))
    eval_tokens = evals * int(tr["eval_iters"]) * int(tr["micro_batch_size"]) * dp * m.seq_length
    return iters * per_iter * fpt + eval_tokens * fpt / 3, fpt


def pretrain_jobs(config: dict, dag: Dag, study: str, runs, defaults: Defaults, estimated: str = "") -> list[dict]:
    res = _resources(dag, "pretrain", defaults)
    spec_res = rule_resource_spec(config, "pretrain")
    world = int(spec_res["nodes"]) * int(spec_res["tasks_per_node"])
    jobs = []
    for run in runs:
        flops, fpt = training_flops(cfg.pretrain_spec(config, study, run), world)
        basis = f"tokens x {fpt:.4g} appendix-F FLOPs/token + in-run validation"
        job = _job(study, "pretrain", f"{study}/{run}", res, flops=flops, flops_basis=basis, estimated=estimated)
        jobs.append({**job, "fpt": fpt})
    return jobs


def closed_loop_jobs(config: dict, dag: Dag, study: str, defaults: Defaults) -> list[dict]:
    """The closed loop's runs: the plan's own once closed_loop_plan has run, else an upper bound."""
    known = isoflop.closed_loop_runs(config, study)
    if known:
        return pretrain_jobs(config, dag, study, sorted(known), defaults)
    res = _resources(dag, "pretrain", defaults)
    jobs = []
    for budget in isoflop.closed_loop_settings(config, study)["budgets"]:
        # D = C / FLOPs per token of whichever shape the fit picks: ~C FLOPs per run, whatever the shape.
        for i in range(1, LOOP_RUNS_PER_BUDGET + 1):
            name = f"{study}/loop{isoflop.budget_tag(budget)}_planned-{i}"
            basis = f"budget C = {budget:.3g} (D = C / FLOPs per token)"
            jobs.append(_job(study, "pretrain", name, res, flops=budget, flops_basis=basis, estimated="after fit"))
    return jobs


def proxy_full_jobs(config: dict, dag: Dag, study: str, defaults: Defaults) -> list[dict]:
    """Full runs the ranking picks: known with `full: all` or once proxy_rank has run; otherwise
    the top + bottom k costliest candidates, so the plan is an upper bound."""
    s = proxy.proxy_settings(config, study)
    full = sorted(r for r, spec in cfg.study_runs(config, study).items() if spec["variant"] == "full")
    sel = proxy.full_selection(s)
    if sel is None:
        return pretrain_jobs(config, dag, study, full, defaults)
    ranking = Path(dag.layout.study_file(study, "proxy/ranking.json"))
    if ranking.exists():
        chosen = [f"full_{shape}" for shape in json.loads(ranking.read_text())["full"]]
        return pretrain_jobs(config, dag, study, chosen, defaults)
    k = min(len(full), int(sel["top"]) + int(sel["bottom"]))
    jobs = sorted(pretrain_jobs(config, dag, study, full, defaults), key=lambda j: -j["flops"])[:k]
    for j in jobs:
        j["estimated"] = f"after ranking: {k} costliest of {len(full)} candidates"
    return jobs


def one(study: str, rule: str, dag: Dag, defaults: Defaults, job: str | None = None) -> dict:
    return _job(study, rule, job or f"{study}/{rule}", _resources(dag, rule, defaults))


def each(study: str, rule: str, dag: Dag, defaults: Defaults, runs) -> list[dict]:
    """One job of `rule` per run (evaluate_loss, evaluate_zeroshot, embed_bandgap, bandgap, export_hf)."""
    return [one(study, rule, dag, defaults, f"{study}/{run}") for run in runs]


def study_jobs(config: dict, dag: Dag, study: str, defaults: Defaults) -> list[dict]:
    """Every job of one study, following workflow.dag.Dag.study_targets and the rules' inputs."""
    kind, runs = dag.kind(study), dag.run_names(study)
    jobs = []
    if kind == "benchmarks":
        sweep = bench.block_sweep(config, study)
        for arch in sweep["archs"] if sweep else []:
            jobs.append(one(study, "benchmark_block", dag, defaults, f"{study}/{arch}"))
        base = _resources(dag, "benchmark_train", defaults)
        for workload in bench.train_workloads(config, study):
            for name in bench.train_jobs(config, study, workload):
                n = bench.job_devices(name)  # ranks; Dag.train_resources sets nodes and GPUs per job
                nodes = bench.train_nodes(config, study, workload, name)
                res = {**base, "nodes": nodes, "devices": n if base["devices"] else 0}
                jobs.append(_job(study, "benchmark_train", f"{study}/{workload}/{name}", {**res, "signal": False}))
        jobs.append(one(study, "efficiency_figures", dag, defaults))
    elif kind == "proxy":
        proxies = sorted(r for r, spec in cfg.study_runs(config, study).items() if spec["variant"] == "proxy")
        jobs += pretrain_jobs(config, dag, study, proxies, defaults)
        jobs.append(one(study, "proxy_rank", dag, defaults))
        jobs += proxy_full_jobs(config, dag, study, defaults)
        jobs.append(one(study, "proxy_report", dag, defaults))
    elif kind == "isoflop":
        jobs += pretrain_jobs(config, dag, study, runs, defaults)
        for rule in ("isoflop_points", "isoflop_fit", "isoflop_curves_figure", "parametric_contour_figure"):
            jobs.append(one(study, rule, dag, defaults))
        if dag.layout.table(study, "seed_noise") in dag.isoflop_targets(study):  # noise_seeds: the runs are above
            jobs.append(one(study, "isoflop_seed_noise", dag, defaults))
        if dag.closed_loop_budgets(study):
            jobs.append(one(study, "closed_loop_plan", dag, defaults))
            jobs += closed_loop_jobs(config, dag, study, defaults)
            jobs.append(one(study, "closed_loop_report", dag, defaults))
    else:  # `runs`: train, evaluate, curves, then the downstream stages its targets ask for
        jobs += pretrain_jobs(config, dag, study, runs, defaults)
        fpt = {j["job"]: j["fpt"] for j in jobs}
        tokens = dag.study_eval_tokens(study)  # evaluate_loss reads at most this many valid tokens
        for job in each(study, "evaluate_loss", dag, defaults, runs):
            # A forward pass is 1/3 of appendix F's training FLOPs per token (backward = 2 x forward).
            jobs.append(
                {**job, "flops": tokens * fpt[job["job"]] / 3, "flops_basis": f"<= {tokens:.3g} tokens forward"}
            )
        jobs.append(one(study, "loss_curves", dag, defaults))
        targets = set(dag.downstream_targets(study))
        if dag.layout.table(study, "zeroshot") in targets:
            jobs += each(study, "evaluate_zeroshot", dag, defaults, runs) + [
                one(study, "zeroshot_table", dag, defaults)
            ]
        if dag.layout.table(study, "bandgap") in targets:
            jobs += each(study, "embed_bandgap", dag, defaults, runs) + each(study, "bandgap", dag, defaults, runs)
            jobs.append(one(study, "bandgap_table", dag, defaults))
        if dag.study_table_targets(study):
            jobs.append(one(study, STUDY_TABLE_RULES[study], dag, defaults))
    exported = [Path(t).parent.name for t in dag.hf_export_targets(study)]
    jobs += each(study, "export_hf", dag, defaults, exported)
    if dag.has_report(study):
        jobs.append(one(study, "report", dag, defaults))
    return jobs


def dag_jobs(config: dict, defaults: Defaults = Defaults()) -> list[dict]:
    """Every job the DAG of this scale runs (but `all` and `plan`): data stages per corpus the runs
    train on, the zero-shot and band-gap data shared by the studies, then each enabled study's."""
    dag = Dag(config)
    jobs = [j for study in cfg.enabled_studies(config) for j in study_jobs(config, dag, study, defaults)]
    corpora = {  # planned closed-loop rows train on the sweep's corpus, which its runs already name
        cfg.run_corpus(config, j["study"], j["job"].split("/", 1)[1])
        for j in jobs
        if j["rule"] == "pretrain" and "_planned-" not in j["job"]
    }
    for study in cfg.enabled_studies(config):  # training benchmarks read their workload's tokens
        if dag.kind(study) == "benchmarks":
            corpora |= {bench.train_sweep(config, study, w)["corpus"] for w in bench.train_workloads(config, study)}
    data = []
    for corpus in sorted(corpora):
        shards = int(cfg.corpus_tokenizer(config, corpus)["shards"])
        data.append(one("data", "prepare_corpus", dag, defaults, f"data/{corpus}"))
        data.append(one("data", "train_tokenizer", dag, defaults, f"data/{corpus}"))
        data += [one("data", "tokenize_shard", dag, defaults, f"data/{corpus}/{k}-of-{shards}") for k in range(shards)]
        data.append(one("data", "tokenize_corpus", dag, defaults, f"data/{corpus}"))
    if any(j["rule"] == "evaluate_zeroshot" for j in jobs):
        data += [one("shared", "prepare_zeroshot", dag, defaults, f"zeroshot/{t}") for t in dag.zeroshot_tasks]
    if any(j["rule"] == "bandgap" for j in jobs):
        data.append(one("shared", "bandgap_baselines", dag, defaults, "bandgap/baselines"))
    return data + jobs + [one("shared", "evidence", dag, defaults, "evidence")]  # reads every study's tables


# -- costing --------------------------------------------------------------------------------------


def _retries_key(config: dict, rule: str) -> tuple[int | None, str]:
    """Resubmissions a job of `rule` may use, and the key that sets them."""
    n = rule_retries(config, rule)
    if n is not None:
        return n, f"scales.{config['scale']}.resources.{rule}.resubmits"
    return None, "the profile's retries"


def cost(config: dict, jobs: list[dict], tput: Throughput, defaults: Defaults = Defaults()) -> list[dict]:
    """One plan row per job: hours, device- and node-hours, walltime bin, resubmissions, energy."""
    cpu_scale = cfg.scale_config(config)["device"] == "cpu"
    rows = []
    for j in jobs:
        nodes, devices, runtime = j["nodes"], j["devices"], j["runtime"]
        walltime = runtime / 60 if runtime else None
        problem = ""
        if j["flops"] is not None:
            devices = devices or (1 if cpu_scale else 0)  # at tiny a job's one CPU process is its device
            if not devices:
                raise ScaleDAGError(
                    f"config: scales.{config['scale']}.resources.{j['rule']}.gpus_per_task: {j['job']} "
                    "computes on no GPU; give the rule GPUs"
                )
            # Hours = FLOPs / (devices x sustained FLOP/s per device), e.g. MatGPT 1.7B on 15B tokens:
            # 1.81e20 FLOPs / (128 GCDs x 57.45 TFLOP/s) = 2.47e4 s = 6.85 h.
            hours, basis = j["flops"] / (devices * tput.sustained) / 3600, "FLOPs / sustained FLOP/s"
        elif walltime is not None:
            hours, basis = walltime, "walltime request (upper bound)"
        else:
            hours, basis = 0.0, "not costed: no walltime and no FLOP count"
        configured, key = _retries_key(config, j["rule"])
        configured = defaults.retries if configured is None else configured
        needed = 0
        if j["flops"] is not None and walltime is not None:
            # The pre-walltime signal leaves walltime - SIGNAL_SECONDS of training per job (2 h - 10 min
            # = 1.83 h): a run of H hours takes ceil(H / 1.83) jobs, all but the first resubmissions
            # (less 1e-9 so that a run of exactly k jobs' worth is not rounded up to k + 1 by float error).
            usable = walltime - (SIGNAL_SECONDS / 3600 if j["signal"] else 0.0)
            needed = max(1, math.ceil(hours / usable - 1e-9)) - 1
            bin_ = f"{runtime} min walltime" + (f" ({j['partition']})" if j["partition"] else "")
            if j["rule"] not in RESUMABLE and needed:
                needed = None  # a restart begins again from scratch: resubmissions do not help
                problem = (
                    f"{j['rule']} {j['job']} needs {hours:.2f} h on {devices} device(s), more than its {bin_}"
                    f" (scales.{config['scale']}.resources.{j['rule']}.runtime), and it cannot resume"
                )
            elif needed > configured:
                per_job = f"{usable * 60:.0f} min" + (" (less the checkpoint signal)" if j["signal"] else "")
                problem = (
                    f"{j['rule']} {j['job']} needs {hours:.1f} h = {needed + 1} jobs of {per_job} in its {bin_}, "
                    f"i.e. {needed} resubmissions, but {key} allows {configured}"
                )
        rows.append(
            {
                **{k: j[k] for k in ("study", "rule", "job", "estimated", "nodes", "flops", "flops_basis")},
                "devices": devices,
                "device": tput.device if devices else "",
                "sustained_tflops_per_device": tput.sustained / 1e12 if j["flops"] is not None else None,
                "hours": hours,
                "hours_basis": basis,
                "device_hours": devices * hours,
                "node_hours": nodes * hours,
                "partition": j["partition"] or "",
                "walltime_h": walltime,
                "resubmits_needed": needed,
                "resubmits_configured": configured,
                # kWh = W x devices x hours / 1000; CPU-only jobs add no accelerator energy.
                "energy_kwh_estimate": None if tput.watts is None else tput.watts * devices * hours / 1000,
                "problem": problem,
            }
        )
    return rows


@functools.lru_cache(maxsize=8)
def _config_throughput(config_json: str) -> Throughput:
    return throughput(json.loads(config_json), rows=[])


def run_prediction(dag: Dag, study: str, run: str) -> dict:
    """What the plan predicts for one pretrain run: its plan row's FLOPs and hours, at the
    throughput config alone gives (the scale's planning figure, else DEFAULT_MFU). The trainer prints
    it as its first line. It travels in the run's spec, a Snakemake param, so it must not depend on
    the committed benchmark rows `make plan` also reads: a new row would change every run's params
    and Snakemake would retrain them all. {"error": ...} when config gives no throughput."""
    config = dag.config
    try:
        tput = _config_throughput(json.dumps(config, sort_keys=True, default=str))
        row = cost(config, pretrain_jobs(config, dag, study, [run], Defaults()), tput)[0]
    except ScaleDAGError as exc:
        return {"error": str(exc)}
    return {"flops": row["flops"], "devices": row["devices"], "seconds": row["hours"] * 3600, "basis": tput.source}


def planned_pretrain_spec(dag: Dag, wildcards) -> str:
    """Rule pretrain's spec: the run's spec (Dag.pretrain_spec) with its plan prediction, which the
    trainer prints first. Here rather than in Dag, which this module builds on."""
    spec = json.loads(dag.pretrain_spec(wildcards))
    return json.dumps(dict(spec, plan=run_prediction(dag, wildcards.study, wildcards.run)))


def plan(
    config: dict, defaults: Defaults = Defaults(), device: str | None = None, mfu: float | None = None, rows=None
) -> tuple[list[dict], Throughput]:
    """(plan rows, the throughput assumed) of the selected scale's DAG."""
    tput = throughput(config, device, mfu, rows)
    return cost(config, dag_jobs(config, defaults), tput, defaults), tput


def totals(rows: list[dict], by: str | None = "study") -> dict[str, dict]:
    """Sums of jobs, FLOPs, device-hours, node-hours and energy, per `by` value (None: one "total")."""
    out: dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r[by] if by else "total", {"jobs": 0, "estimated_jobs": 0, "flops": 0.0})
        t["jobs"] += 1
        t["estimated_jobs"] += bool(r["estimated"])
        t["flops"] += r["flops"] or 0.0
        for k in ("device_hours", "node_hours", "energy_kwh_estimate"):
            t[k] = None if r[k] is None or t.get(k, 0.0) is None else t.get(k, 0.0) + r[k]
    return out


def check(config: dict, rows: list[dict]) -> None:
    """One-line error for an allocation overrun, then for the first job that cannot finish."""
    problems = [r["problem"] for r in rows if r["problem"]]
    allocation = config.get("allocation_node_hours")
    need = totals(rows, by=None)["total"]["node_hours"] if rows else 0.0
    if allocation is not None and need > allocation:
        more = f" (and {len(problems)} jobs that cannot finish: see problem in plan.csv)" if problems else ""
        raise ScaleDAGError(
            f"allocation_node_hours: the {config['scale']} plan needs {need:,.0f} node-hours, "
            f"{need - allocation:,.0f} more than the allocation of {allocation:,.0f}{more}"
        )
    if problems:
        more = f" (+{len(problems) - 1} more jobs: see problem in plan.csv)" if len(problems) > 1 else ""
        raise ScaleDAGError(problems[0] + more)


# -- output ---------------------------------------------------------------------------------------


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(header: list[str], body: list[list[str]]) -> str:
    """Plain-text columns: the first two left-aligned (names), the rest right-aligned (numbers)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def _resubmits(rule: str, rs: list[dict]) -> str:
    """`needed/configured` (most of any job) for a resumable rule; whether the others fit; `!` on a problem."""
    flag = " !" if any(r["problem"] for r in rs) else ""
    if rule in RESUMABLE:
        return f"{max(r['resubmits_needed'] for r in rs)}/{min(r['resubmits_configured'] for r in rs)}{flag}"
    if rs[0]["flops"] is not None and rs[0]["walltime_h"] is not None:
        return "too long !" if flag else "fits"
    return "-"


def render(config: dict, rows: list[dict], tput: Throughput, defaults: Defaults, profile: str | None = None) -> str:
    """The printed plan: assumptions, one line per (study, rule), per-study totals, the whole DAG."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["study"], r["rule"]), []).append(r)
    body = []
    for (study, rule), rs in groups.items():
        t = totals(rs, by=None)["total"]
        est = sum(bool(r["estimated"]) for r in rs)
        body.append(
            [
                study,
                rule,
                f"{len(rs)}" + (f" ({est} est.)" if est else ""),
                "/".join(sorted({str(r["devices"]) for r in rs}, key=int)),
                _fmt(t["flops"] or None, ".3g"),
                _fmt(t["device_hours"], ",.0f"),
                _fmt(t["node_hours"], ",.0f"),
                _fmt(t["energy_kwh_estimate"], ",.1f"),
                _resubmits(rule, rs),
                "FLOPs" if rs[0]["flops"] is not None else ("walltime" if rs[0]["walltime_h"] else "-"),
            ]
        )
    head = ["study", "rule", "jobs", "devices", "FLOPs", "device-h", "node-h", "kWh (est.)", "resubmits", "hours from"]
    by_study = [
        [s, "", f"{t['jobs']}", "", _fmt(t["flops"] or None, ".3g"), _fmt(t["device_hours"], ",.0f")]
        + [_fmt(t["node_hours"], ",.0f"), _fmt(t["energy_kwh_estimate"], ",.1f")]
        for s, t in [*totals(rows).items(), *totals(rows, by=None).items()]
    ]
    allocation = config.get("allocation_node_hours")
    lines = [
        f"ScaleDAG cost plan: scale {config['scale']} on {machine(config).name}, {len(rows)} jobs, nothing submitted"
        f" (profile {profile or 'as Snakemake was given'}: default runtime "
        f"{f'{defaults.runtime} min' if defaults.runtime else 'none'}, retries {defaults.retries})",
        f"device {tput.device}, {tput.dtype}: {tput.sustained / 1e12:.4g} TFLOP/s sustained per device = {tput.source}",
        "energy: ESTIMATE = "
        + (f"{tput.watts:g} W per device (vendor max board power) x device-hours" if tput.watts else "no power figure")
        + "; accelerators only (no host, network, cooling)",
        "est. = planned from config before a checkpoint decides (closed loop after the fit: an upper bound"
        " of 5 runs per budget; proxy full runs after the ranking: the costliest candidates)",
        "resubmits: most needed/configured of one pretrain job; other FLOP-costed jobs must fit their walltime;"
        " '!': a job cannot finish (plan.csv column problem)",
        "",
        _table(head, body),
        "",
        _table(["study", "", "jobs", "", "FLOPs", "device-h", "node-h", "kWh (est.)"], by_study),
    ]
    if allocation is not None:
        need = totals(rows, by=None)["total"]["node_hours"]
        lines.append(f"allocation_node_hours {allocation:,.0f}: {need / allocation:.1%} used by this plan")
    return "\n".join(lines) + "\n"


def write_plan(rows: list[dict], out: str | Path) -> None:
    import pandas as pd  # the CSV writer (workflow.io.write_csv) takes a DataFrame

    write_csv(pd.DataFrame(rows, columns=list(COLUMNS)), out, float_format="%.10g")


def _override(pair: str) -> tuple[str, object]:
    """`key=value` as Snakemake's --config reads it: a number if it is one (5e5 too), else YAML."""
    if "=" not in pair:
        raise ScaleDAGError(f"--config: expected KEY=VALUE, got {pair!r}")
    key, text = pair.split("=", 1)
    for parse in (int, float):
        try:
            return key, parse(text)
        except ValueError:
            pass
    return key, yaml.safe_load(text)


@main_guard
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=str(REPO_ROOT / "config.yaml"))
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE", help="top-level overrides, as Snakemake's")
    p.add_argument("--config-json", help="the whole config as JSON (what rule plan passes); wins over the above")
    p.add_argument("--scale", help="shorthand for --config scale=SCALE")
    p.add_argument("--profile", help="Snakemake profile directory: its retries and default-resources")
    p.add_argument("--retries", type=int, help="resubmissions of a job whose rule sets none (default: the profile's)")
    p.add_argument(
        "--default-runtime", default=None, help="minutes of a job whose rule sets none (default: the profile's)"
    )
    p.add_argument(
        "--device", help="device to plan for, e.g. 'H100 SXM' (default: the scale's planning figure or machine)"
    )
    p.add_argument("--mfu", type=float, help="model FLOP utilisation to assume (default: measured rows, then config)")
    p.add_argument("--out", help="plan CSV (default: results/<scale>/plan.csv)")
    args = p.parse_args(argv)
    if args.config_json:
        config = cfg.validate_config(json_option("--config-json", args.config_json))
    else:
        overrides = dict(map(_override, args.config))
        if args.scale:
            overrides["scale"] = args.scale
        config = cfg.load_config(args.configfile, overrides)
    d = profile_defaults(args.profile)
    runtime = int(args.default_runtime) if args.default_runtime not in (None, "") else d.runtime
    d = Defaults(runtime, d.partition, d.retries if args.retries is None else args.retries)
    rows, tput = plan(config, d, args.device, args.mfu)
    out = args.out or Layout.of(config).plan()
    write_plan(rows, out)
    print(render(config, rows, tput, d, args.profile), end="")
    print(f"wrote {out}")
    sys.stdout.flush()
    check(config, rows)


if __name__ == "__main__":
    main()
