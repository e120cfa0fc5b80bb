# Shared setup: config validation (one-line errors) and the input functions every stage uses.
# The logic lives in workflow/config.py; these are thin adapters from wildcards to it.
import json
import os
import sys

from workflow.config import (
    NAME_PATTERN,
    corpus_spec,
    corpus_tokenizer,
    data_dir,
    enabled_studies,
    logs_root,
    pretrain_spec,
    results_root,
    run_corpus,
    scale_config,
    study_runs,
    validate_config,
)
from workflow.errors import ScaleDAGError
from workflow.hpc.resources import account_problem, machine, rule_resources, rule_retries

try:
    validate_config(config)
except ScaleDAGError as exc:
    sys.stderr.write(f"ScaleDAG {exc}\n")
    sys.exit(1)

# HPC (issue #7): the account check needs the executor, known only once the run starts (onstart
# hooks run neither in dry runs nor inside cluster jobs), so a dry run only warns.
if account_problem(config, None, os.environ):
    sys.stderr.write(f"ScaleDAG warning: {account_problem(config, None, os.environ)}; a real run will stop\n")


onstart:
    if account_problem(config, workflow.executor_plugin.name, os.environ):
        sys.stderr.write(f"ScaleDAG {account_problem(config, workflow.executor_plugin.name, os.environ)}\n")
        sys.exit(1)

R = results_root(config)
LOGS = logs_root(config)
SCALE = config["scale"]
CORPUS = scale_config(config)["corpus"]
DATA = data_dir(config)


wildcard_constraints:
    corpus=NAME_PATTERN,  # the names config.py accepts at load
    study=NAME_PATTERN,
    run=r"[A-Za-z0-9.-]+_[A-Za-z0-9.-]+",
    split=r"train|valid",


def get_corpus_spec(wildcards):
    return json.dumps(corpus_spec(config, wildcards.corpus))


# -- data stages (issue #3): tokenizer inputs and the tokenize scatter/gather ------------------------
def get_tokenizer_inputs(wildcards):
    """The train split, plus the pre-existing tokenizer file when config names one."""
    from workflow.config import input_path

    inputs = {"train": f"{R}/data/{wildcards.corpus}/train.jsonl"}
    if corpus_tokenizer(config, wildcards.corpus).get("file"):
        inputs["existing"] = str(input_path(corpus_tokenizer(config, wildcards.corpus)["file"]))
    return inputs


def get_tokenizer_vocab(wildcards):
    return corpus_tokenizer(config, wildcards.corpus)["vocab_size"]


def get_tokenizer_args(wildcards, input):
    import shlex

    tok = corpus_tokenizer(config, wildcards.corpus)
    args = f"--type {tok.get('type', 'byte-bpe')} --min-frequency {tok.get('min_frequency', 2)}"
    return args + (f" --existing {shlex.quote(input.existing)}" if "existing" in input.keys() else "")


def get_token_shard_dirs(wildcards):
    """One directory per tokenize_shard job (the scatter); tokenize_corpus gathers them in order."""
    shards = corpus_tokenizer(config, wildcards.corpus).get("shards", 1)
    return [f"{R}/data/{wildcards.corpus}/tokens/shards/{k}-of-{shards}" for k in range(shards)]


def get_token_shards(wildcards):
    return [f"{d}/{split}.{ext}" for d in get_token_shard_dirs(wildcards)
            for split in ("train", "valid", "test") for ext in ("bin", "idx")] + [
        f"{d}/counts.json" for d in get_token_shard_dirs(wildcards)]


def get_pretrain_spec(wildcards):
    return json.dumps(pretrain_spec(config, wildcards.study, wildcards.run))


def get_run_data(wildcards):
    """Tokenizer and token files of the corpus this run trains on (runs may name their own)."""
    ddir = data_dir(config, run_corpus(config, wildcards.study, wildcards.run))
    return {
        "tokenizer": f"{ddir}/tokenizer.json",
        **{f"{split}_{ext}": f"{ddir}/tokens/{split}.{ext}" for split in ("train", "valid") for ext in ("bin", "idx")},
    }


def get_run_valid_data(wildcards):
    return {k: v for k, v in get_run_data(wildcards).items() if k.startswith("valid_")}


def get_run_threads(wildcards):
    return scale_config(config).get("threads_per_run", 1)


def get_run_names(study):
    return sorted(study_runs(config, study))


def get_study_summaries(wildcards):
    return expand(f"{R}/{wildcards.study}/runs/{{run}}/summary.json", run=get_run_names(wildcards.study))


def get_study_metrics(wildcards):
    return expand(f"{R}/{wildcards.study}/runs/{{run}}/metrics.jsonl", run=get_run_names(wildcards.study))


def get_study_evals(wildcards):
    return expand(f"{R}/{wildcards.study}/runs/{{run}}/eval_loss.json", run=get_run_names(wildcards.study))


# Each stage registers, below, a function `(study, study_config) -> list of paths`; `rule all`
# asks every registered function about every enabled study. (Functions live here, not in the
# stage files, as `snakemake --lint` wants.)
FINAL_TARGET_PROVIDERS = []


def final_targets_provider(func):
    FINAL_TARGET_PROVIDERS.append(func)
    return func


def get_final_targets():
    targets = []
    for study in enabled_studies(config):
        for provider in FINAL_TARGET_PROVIDERS:
            targets += provider(study, config["studies"][study])
    return targets


@final_targets_provider
def get_loss_curve_targets(study, study_config):
    if study_config.get("benchmarks") or study_config.get("generator") == "proxy":
        return []  # efficiency studies (issue #9) have their own figures: get_efficiency_targets
    if study_config.get("generator") == "isoflop":
        return []  # IsoFLOP sweeps (issue #6): their own tables and figures, get_isoflop_targets
    return [f"{R}/{study}/figures/loss_curves.{ext}" for ext in ("png", "pdf")] + [f"{R}/{study}/tables/loss.csv"]


def get_rule_resources(rule):
    """Cluster resources of `rule` at this scale (nodes, tasks, runtime, partition, `mpi` launcher)."""
    return rule_resources(config, rule, threads=scale_config(config).get("threads_per_run", 1))


def get_rule_retries(rule):
    return rule_retries(config, rule)


# -- efficiency studies (issue #9): block / GPT-2 benchmarks, architecture design by proxy ---------
from workflow.studies import benchmarks as _eff
from workflow.studies import proxy as _proxy

EFFICIENCY_FIGURES = ["block_throughput", "gpt2_seq_length", "gpt2_grad_accum", "gpt2_scaling", "sparsity"]
EFFICIENCY_TABLES = ["block", "gpt2", "scaling", "sparsity"]


@final_targets_provider
def get_efficiency_targets(study, study_config):
    if study_config.get("benchmarks"):
        return [f"{R}/{study}/figures/{f}.png" for f in EFFICIENCY_FIGURES] + [
            f"{R}/{study}/tables/{t}.csv" for t in EFFICIENCY_TABLES]
    if study_config.get("generator") == "proxy":
        return [f"{R}/{study}/tables/proxy.csv", f"{R}/{study}/figures/proxy_predicted_vs_actual.png"]
    return []


def get_block_spec(wildcards):
    return json.dumps(_eff.block_spec(config, wildcards.study, wildcards.arch))


def get_gpt2_spec(wildcards):
    return json.dumps(_eff.gpt2_spec(config, wildcards.study, wildcards.job))


def get_gpt2_launcher(wildcards):
    return _eff.gpt2_launcher(config, wildcards.study, wildcards.job)


def get_gpt2_threads(wildcards):
    return _eff.gpt2_job_devices(wildcards.job) * scale_config(config).get("threads_per_run", 1)


def get_gpt2_nodes(wildcards):
    return _eff.gpt2_nodes(config, wildcards.study, wildcards.job)


def get_gpt2_tasks(wildcards):
    return _eff.gpt2_job_devices(wildcards.job)


def get_gpt2_resources():
    """Cluster resources of benchmark_gpt2: the rule's configured ones (runtime, cores, GPUs per rank),
    with nodes, ranks and GPUs set per job by its device count (the launcher is params.launcher)."""
    res = {k: v for k, v in get_rule_resources("benchmark_gpt2").items() if k not in ("mpi", "slurm_extra")}
    res.update(nodes=get_gpt2_nodes, tasks=get_gpt2_tasks)
    if "gpu" in res:
        res["gpu"] = get_gpt2_tasks
    return res


def get_scale_data(wildcards):
    return {"tokenizer": f"{DATA}/tokenizer.json",
            **{f"{split}_{ext}": f"{DATA}/tokens/{split}.{ext}" for split in ("train", "valid") for ext in ("bin", "idx")}}


def get_block_rows(wildcards):
    sweep = _eff.block_sweep(config, wildcards.study)
    return [f"{R}/{wildcards.study}/block/{arch}.jsonl" for arch in (sweep["archs"] if sweep else [])]


def get_gpt2_rows(wildcards):
    return [f"{R}/{wildcards.study}/gpt2/{job}.jsonl" for job in _eff.gpt2_jobs(config, wildcards.study)]


def get_external_rows(wildcards):
    """Benchmark rows measured on other machines (committed under benchmarks/results/), shown beside ours."""
    from workflow.config import REPO_ROOT

    return sorted(str(p) for p in (REPO_ROOT / "benchmarks" / "results").glob("efficiency_*.jsonl"))


def _proxy_runs(study, variant):
    return sorted(r for r, spec in study_runs(config, study).items() if spec["variant"] == variant)


def get_proxy_metrics(wildcards):
    return [f"{R}/{wildcards.study}/runs/{r}/metrics.jsonl" for r in _proxy_runs(wildcards.study, "proxy")]


def get_proxy_summaries(wildcards):
    return [f"{R}/{wildcards.study}/runs/{r}/summary.json" for r in _proxy_runs(wildcards.study, "proxy")]


def get_proxy_settings(wildcards):
    return json.dumps(_proxy.proxy_settings(config, wildcards.study))


def _full_runs(wildcards):
    """Full runs the ranking selects; every candidate when `full: all` (known without the ranking)."""
    if _proxy.full_selection(_proxy.proxy_settings(config, wildcards.study)) is None:
        return _proxy_runs(wildcards.study, "full")
    ranking = checkpoints.proxy_rank.get(study=wildcards.study).output.ranking
    with open(ranking) as fh:
        return [f"full_{shape}" for shape in json.load(fh)["full"]]


def get_full_metrics(wildcards):
    return [f"{R}/{wildcards.study}/runs/{r}/metrics.jsonl" for r in _full_runs(wildcards)]


def get_full_summaries(wildcards):
    return [f"{R}/{wildcards.study}/runs/{r}/summary.json" for r in _full_runs(wildcards)]


# -- END efficiency studies (issue #9) ----------------------------------------------------------


def get_envmodules():
    """Modules a GPU job loads on this scale's machine (Snakemake's env-modules deployment)."""
    return list(machine(config).modules)


# -- downstream evaluation (issue #8): zero-shot through lm-eval, band gap from embeddings ----------
from workflow.evaluate import downstream as _ds
from workflow.config import input_path

ZS = _ds.zeroshot_settings(config)
BG = _ds.bandgap_settings(config)
ZS_TASKS = list(ZS["tasks"])
_ZS_MISSING = _ds.missing_zeroshot_data(config)
_BG_MISSING = _ds.missing_bandgap_data(config)
ZS_TASK_PATTERN = "|".join(ZS_TASKS)
ZS_DATA_DIR = str(input_path(ZS["data_dir"]))
ZS_LIMIT_ARG = f"--limit {_ds.zeroshot_limit(config)}" if _ds.zeroshot_limit(config) else ""
BG_DATA_DIR = str(input_path(BG["data_dir"]))
BG_ROWS = _ds.bandgap_rows(config) or "all"


def get_run_tokenizer(wildcards):
    return get_run_data(wildcards)["tokenizer"]


def get_bandgap_title(wildcards):
    return f"Band gap MAE: {config['studies'][wildcards.study]['title']}"


def _downstream_study(study, study_config, settings):
    return study in settings["studies"] and bool(study_config.get("runs")) and not study_config.get("generator")


@final_targets_provider
def get_downstream_targets(study, study_config):
    """Zero-shot and band-gap tables of a study, each only when its offline data is there."""
    targets = []
    zs = _downstream_study(study, study_config, ZS)
    bg = _downstream_study(study, study_config, BG)
    if zs and _ZS_MISSING:
        sys.stderr.write(f"ScaleDAG warning: zero-shot evaluation of {study} skipped: {_ZS_MISSING[0]} is missing"
                         f" (zeroshot.data_dir)\n")
    if bg and _BG_MISSING:
        sys.stderr.write(f"ScaleDAG warning: band-gap evaluation of {study} skipped: {_BG_MISSING[0]} is missing"
                         f" (bandgap.data_dir)\n")
    if zs and not _ZS_MISSING:
        targets.append(f"{R}/{study}/tables/zeroshot.csv")
    if bg and not _BG_MISSING:
        targets += [f"{R}/{study}/tables/bandgap.csv", f"{R}/{study}/figures/bandgap_mae.png"]
    if zs and not _ZS_MISSING and (not bg or not _BG_MISSING):
        targets.append(f"{R}/{study}/tables/downstream.csv")
    return targets


def get_zeroshot_raw(wildcards):
    from workflow.config import input_path
    from workflow.evaluate.zeroshot_tasks import task_files

    return [str(p) for p in task_files(wildcards.task, input_path(ZS["data_dir"]))]


def get_zeroshot_inputs(wildcards):
    return {"summary": f"{R}/{wildcards.study}/runs/{wildcards.run}/summary.json",
            "tokenizer": get_run_data(wildcards)["tokenizer"],
            **{task: f"{R}/data/zeroshot/{task}.jsonl" for task in ZS_TASKS}}


def get_zeroshot_args(wildcards, input, output):
    import shlex

    data = " ".join(shlex.quote(f"{t}={input[t]}") for t in ZS_TASKS)
    out = " ".join(shlex.quote(f"{t}={output[t]}") for t in ZS_TASKS)
    return f"--data {data} --out {out}"


def get_study_zeroshot(wildcards):
    return [f"{R}/{wildcards.study}/runs/{run}/zeroshot/{task}.json"
            for run in get_run_names(wildcards.study) for task in ZS_TASKS]


def get_study_runs_json(wildcards):
    return json.dumps(study_runs(config, wildcards.study))


def get_bandgap_raw(wildcards):
    from workflow.config import input_path

    return str(input_path(BG["data_dir"]) / "matbench_expt_gap.csv")


def get_study_bandgap_fits(wildcards):
    return [f"{R}/{wildcards.study}/runs/{run}/bandgap.json" for run in get_run_names(wildcards.study)]


def get_downstream_summary_inputs(wildcards):
    inputs = {"zeroshot": f"{R}/{wildcards.study}/tables/zeroshot.csv", "evals": get_study_evals(wildcards)}
    if _downstream_study(wildcards.study, config["studies"][wildcards.study], BG):
        inputs["bandgap"] = f"{R}/{wildcards.study}/tables/bandgap.csv"
    return inputs


def get_downstream_summary_args(wildcards, input):
    import shlex

    runs = study_runs(config, wildcards.study)  # one architecture, several variants: an ablation study
    kind = "ablation" if len({r["arch"] for r in runs.values()}) == 1 and len(runs) > 1 else "architecture"
    args = f"--kind {kind}" + (f" --bandgap {shlex.quote(input.bandgap)}" if "bandgap" in input.keys() else "")
    return args


# -- END downstream evaluation (issue #8) ---------------------------------------------------------


# -- compute-optimal scaling (issue #6): IsoFLOP sweeps and Chinchilla's three approaches ----------
from workflow.studies.isoflop import analysis_settings as _isoflop_settings
from workflow.studies.isoflop import closed_loop_settings as _closed_loop_settings
from workflow.studies.isoflop import fit_conventions as _fit_conventions


def get_isoflop(wildcards):
    """Budgets of the sweep's runs, FLOP counting, bootstrap, table and target budgets (this scale)."""
    return _isoflop_settings(config, wildcards.study)


def get_isoflop_budgets(wildcards):
    return json.dumps(get_isoflop(wildcards)["budgets"])


def get_fit_conventions(wildcards):
    return json.dumps(_fit_conventions(get_isoflop(wildcards)))


def _run_files(study, runs, name):
    return [f"{R}/{study}/runs/{r}/{name}" for r in runs]


def get_isoflop_points_inputs(wildcards):
    """The IsoFLOP runs (final points) and the dedicated approach-1 runs (curves), kept apart."""
    iso = get_isoflop(wildcards)
    sweep, horizons = sorted(iso["budgets"]), iso["approach1_runs"]
    return {"metrics": _run_files(wildcards.study, sweep, "metrics.jsonl"),
            "summaries": _run_files(wildcards.study, sweep, "summary.json"),
            "curve_metrics": _run_files(wildcards.study, horizons, "metrics.jsonl"),
            "curve_summaries": _run_files(wildcards.study, horizons, "summary.json")}


ISOFLOP_TABLES = ("scaling_exponents.csv", "compute_optimal_allocation.csv", "target_prediction.csv",
                  "isoflop_minima.csv", "approach1_envelope.csv", "scaling_fit.json")
ISOFLOP_FIGURES = ("isoflop_curves", "parametric_contour")


@final_targets_provider
def get_isoflop_targets(study, study_config):
    if study_config.get("generator") != "isoflop":
        return []
    loop = [f"{R}/{study}/tables/{t}.csv" for t in ("closed_loop", "size_choice")] + [
        f"{R}/{study}/figures/closed_loop.{ext}" for ext in ("png", "pdf")] if get_closed_loop_budgets(study) else []
    return [f"{R}/{study}/tables/{name}" for name in ("scaling_points.csv", "scaling_curves.csv", *ISOFLOP_TABLES)] + [
        f"{R}/{study}/figures/{fig}.{ext}" for fig in ISOFLOP_FIGURES for ext in ("png", "pdf")
    ] + loop


def get_closed_loop_budgets(study):
    return _closed_loop_settings(config, study)["budgets"]


def get_closed_loop_settings(wildcards):
    return json.dumps(_closed_loop_settings(config, wildcards.study))


def _closed_loop_run_names(wildcards):
    """The runs the plan chose (known once checkpoint closed_loop_plan has run)."""
    with open(checkpoints.closed_loop_plan.get(study=wildcards.study).output.plan) as fh:
        return [r["run"] for r in json.load(fh)["runs"]]


def get_closed_loop_metrics(wildcards):
    return [f"{R}/{wildcards.study}/runs/{r}/metrics.jsonl" for r in _closed_loop_run_names(wildcards)]


def get_closed_loop_summaries(wildcards):
    return [f"{R}/{wildcards.study}/runs/{r}/summary.json" for r in _closed_loop_run_names(wildcards)]


# -- END compute-optimal scaling (issue #6) --------------------------------------------------------


# -- Hugging Face export and reports (issue #5) ----------------------------------------------------
from workflow.config import run_id as _run_id
from workflow.export.hf import exportable_runs as _exportable_runs


@final_targets_provider
def get_hf_export_targets(study, study_config):
    """runs/<run>/hf of every run of an `export_hf: true` study whose architecture has an HF class."""
    if not study_config.get("export_hf"):
        return []
    ok, skipped = _exportable_runs(config, study)
    for run, why in skipped.items():
        if (study, run) not in _HF_NOTED:
            _HF_NOTED.add((study, run))
            sys.stderr.write(f"ScaleDAG note: {study}/{run} is not exported to Hugging Face: {why}\n")
    return [f"{R}/{study}/runs/{run}/hf" for run in ok]


_HF_NOTED = set()


@final_targets_provider
def get_wandb_report_targets(study, study_config):
    """Every enabled study that trains runs gets a W&B report spec (published later, see README)."""
    return [f"{R}/{study}/report/wandb_report.json"] if study_runs(config, study) else []


def get_study_tables(wildcards):
    """The CSV tables other stages produce for this study (from their final-target providers)."""
    study = wildcards.study
    tables = []
    for provider in FINAL_TARGET_PROVIDERS:
        if provider is not get_wandb_report_targets:
            tables += [t for t in provider(study, config["studies"][study])
                       if os.path.basename(os.path.dirname(t)) == "tables" and t.endswith(".csv")]
    return sorted(set(tables))


def get_report_summaries(wildcards):
    """Summaries the W&B report covers: every run, except that a proxy study's full runs are the
    ones its ranking checkpoint selected (not every candidate)."""
    if config["studies"][wildcards.study].get("generator") == "proxy":
        return get_proxy_summaries(wildcards) + get_full_summaries(wildcards)
    return get_study_summaries(wildcards)


def get_study_report_runs(wildcards):
    """run name -> {run_id, variant}, as JSON for workflow.report.wandb_report."""
    runs = study_runs(config, wildcards.study)
    return json.dumps({run: {"run_id": _run_id(config, wildcards.study, run),
                             "variant": info.get("variant") or run.split("_")[0]} for run, info in runs.items()})


def get_run_dir(wildcards):
    return f"{R}/{wildcards.study}/runs/{wildcards.run}"


# -- END Hugging Face export and reports (issue #5) ------------------------------------------------
