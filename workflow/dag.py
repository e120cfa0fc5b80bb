"""What each rule reads and which files the DAG ends in, as plain Python of config and wildcards.

`rules/common.smk` builds one `Dag(config, checkpoints)` and the rules name its methods as input,
params and resource functions (`input: unpack(dag.run_data)`); Snakemake passes `wildcards` (and
`input`/`output` where a method asks for them). Kept out of the .smk files so every function is
unit-tested without Snakemake and `snakemake --lint` stays clean. Sections follow the stages, then
the studies; `final_targets` asks every study's section which outputs `rule all` wants.

Nothing here imports torch, megatron, pandas or numpy (tests/unit/test_dag_parse_imports.py): the DAG
is parsed by every Snakemake process, cluster jobs included.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import sys

from workflow import config as cfg
from workflow.errors import ScaleDAGError
from workflow.evaluate import settings as ds
from workflow.evaluate.zeroshot_tasks import task_files
from workflow.export.hf_classes import exportable_runs
from workflow.hpc.resources import machine, rule_resources, rule_retries
from workflow.layout import Layout
from workflow.studies import benchmarks as bench
from workflow.studies import isoflop, proxy

# The efficiency study's outputs (analysis/efficiency.py writes them all in one job): the block and
# sparsity figures, and per training workload (GPT-2, GenSLM) the same three figures and one table.
EFFICIENCY_FIGURES = (
    "block_throughput",
    *(f"{w}_{fig}" for w in bench.TRAIN_WORKLOADS for fig in ("seq_length", "grad_accum", "scaling")),
    "sparsity",
)
EFFICIENCY_TABLES = ("block", *bench.TRAIN_WORKLOADS, "scaling", "sparsity")
# Chinchilla's outputs (analysis/chinchilla/approaches.py fit).
ISOFLOP_TABLES = (
    "scaling_points.csv",
    "scaling_curves.csv",
    "scaling_exponents.csv",
    "compute_optimal_allocation.csv",
    "target_prediction.csv",
    "isoflop_minima.csv",
    "approach1_envelope.csv",
    "scaling_fit.json",
)
ISOFLOP_FIGURES = ("isoflop_curves", "parametric_contour")
CLOSED_LOOP_TABLES = ("closed_loop", "size_choice")
# `runs` studies with a table of their own: study -> (the rule in rules/<study>.smk that writes it,
# the table's name); the function is in analysis/<study>.py. A `downstream` table reads the zero-shot
# (and band-gap) tables, so it waits for their data.
STUDY_TABLES = {
    "matgpt": ("matgpt_table", "downstream"),
    "bloom_ablations": ("bloom_ablations_table", "downstream"),
    "genslm": ("genslm_table", "codon_loss"),
}
STUDY_TABLE_RULES = {study: rule for study, (rule, _) in STUDY_TABLES.items()}


class Dag:
    def __init__(self, config: dict, checkpoints=None):
        self.config = config
        self.checkpoints = checkpoints  # Snakemake's `checkpoints` (rules whose outputs decide later inputs)
        self.layout = Layout.of(config)
        self.zeroshot = ds.zeroshot_settings(config)
        self.bandgap = ds.bandgap_settings(config)
        self.zeroshot_tasks = list(self.zeroshot["tasks"])
        self.zeroshot_missing = ds.missing_zeroshot_data(config)
        self.bandgap_missing = ds.missing_bandgap_data(config)
        self._warned: set[str] = set()

    def _warn_once(self, line: str) -> None:
        if line not in self._warned:  # final targets are asked again by rule `report`
            self._warned.add(line)
            sys.stderr.write(line + "\n")

    def _study(self, wildcards) -> dict:
        return self.config["studies"][wildcards.study]

    def kind(self, study: str) -> str:
        return cfg.study_kind(self.config, study)

    def run_names(self, study: str) -> list[str]:
        for variant, why in cfg.skipped_variants(self.config, study).items():
            self._warn_once(f"ScaleDAG note: {study}/{variant} does not run at scale {self.config['scale']}: {why}")
        return sorted(cfg.study_runs(self.config, study))

    @property
    def threads_per_run(self) -> int:
        return cfg.scale_config(self.config)["threads_per_run"]

    # -- cluster resources ----------------------------------------------------------------------------
    def resources(self, rule: str) -> dict:
        """Cluster resources of `rule` at this scale (nodes, tasks, runtime, partition, `mpi` launcher)."""
        return rule_resources(self.config, rule, threads=self.threads_per_run)

    def retries(self, rule: str) -> int:
        return rule_retries(self.config, rule)

    def envmodules(self) -> list[str]:
        """Modules a GPU job loads on this scale's machine (Snakemake's env-modules deployment)."""
        return list(machine(self.config).modules)

    # -- data stage -----------------------------------------------------------------------------------
    def corpus_spec(self, wildcards) -> str:
        spec = cfg.corpus_spec(self.config, wildcards.corpus)
        for i, src in enumerate(spec.get("sources", [])):  # a dry run says what prepare_corpus will stop on
            if "path" in src and not glob.glob(str(cfg.input_path(src["path"])), recursive=True):
                self._warn_once(
                    f"ScaleDAG warning: corpora.{wildcards.corpus}.sources[{i}]: {src['path']!r} matches no file "
                    "(is ../shared beside the repo?); put the files there or configure that source as a "
                    "`url` + `sha256` or an `hf_dataset`"
                )
        return json.dumps(spec)

    def tokenizer_inputs(self, wildcards) -> dict[str, str]:
        """The train split, plus the pre-existing tokenizer file when config names one."""
        inputs = {"train": self.layout.corpus_file(wildcards.corpus, "train.jsonl")}
        existing = cfg.corpus_tokenizer(self.config, wildcards.corpus).get("file")
        if existing:
            inputs["existing"] = str(cfg.input_path(existing))
        return inputs

    def tokenizer_vocab(self, wildcards) -> int:
        return cfg.corpus_tokenizer(self.config, wildcards.corpus)["vocab_size"]

    def tokenizer_args(self, wildcards, input) -> str:
        tok = cfg.corpus_tokenizer(self.config, wildcards.corpus)
        args = f"--type {tok['type']} --min-frequency {tok['min_frequency']}"
        return args + (f" --existing {shlex.quote(input['existing'])}" if "existing" in input.keys() else "")

    def tokenize_threads(self) -> int:
        return cfg.scale_config(self.config)["tokenizer"]["threads"]

    def token_shard_dirs(self, wildcards) -> list[str]:
        """One directory per tokenize_shard job (the scatter); tokenize_corpus gathers them in order."""
        shards = cfg.corpus_tokenizer(self.config, wildcards.corpus)["shards"]
        return [self.layout.token_shard_dir(wildcards.corpus, k, shards) for k in range(shards)]

    def token_shards(self, wildcards) -> list[str]:
        dirs = self.token_shard_dirs(wildcards)
        return [
            f"{d}/{split}.{ext}" for d in dirs for split in ("train", "valid", "test") for ext in ("bin", "idx")
        ] + [f"{d}/counts.json" for d in dirs]

    # -- training and evaluation stages ---------------------------------------------------------------
    def pretrain_spec(self, wildcards) -> str:
        return json.dumps(cfg.pretrain_spec(self.config, wildcards.study, wildcards.run))

    def corpus_data(self, corpus: str) -> dict[str, str]:
        """A corpus's tokenizer and Megatron token files (what training and benchmark jobs read)."""
        return {"tokenizer": self.layout.corpus_file(corpus, "tokenizer.json"), **self.layout.token_files(corpus)}

    def run_data(self, wildcards) -> dict[str, str]:
        """Tokenizer and token files of the corpus this run trains on (runs may name their own)."""
        corpus = cfg.run_corpus(self.config, wildcards.study, wildcards.run)
        return self.corpus_data(corpus)

    def run_valid_data(self, wildcards) -> dict[str, str]:
        return {k: v for k, v in self.run_data(wildcards).items() if k.startswith("valid_")}

    def run_eval_data(self, wildcards) -> dict[str, str]:
        """evaluate_loss's data: the run's validation tokens, plus the validation JSONL of its study's
        `language_eval` corpus at this scale (tagged by language), where the study declares one."""
        found = self.run_valid_data(wildcards)
        corpus = self._study(wildcards).get("language_eval", {}).get(self.config["scale"])
        if corpus:
            found["language_text"] = self.layout.corpus_file(corpus, "valid.jsonl")
        return found

    @staticmethod
    def language_eval_arg(wildcards, input) -> str:
        return f"--text {shlex.quote(input['language_text'])}" if "language_text" in input.keys() else ""

    def run_tokenizer(self, wildcards) -> str:
        return self.run_data(wildcards)["tokenizer"]

    def run_threads(self, wildcards) -> int:
        return self.threads_per_run

    def run_dir(self, wildcards) -> str:
        return self.layout.run_dir(wildcards.study, wildcards.run)

    def study_eval_tokens(self, study: str) -> int:
        """Held-out tokens of one run's evaluate_loss: the study's `eval_tokens.<scale>`, else the scale's."""
        own = self.config["studies"][study].get("eval_tokens", {}).get(self.config["scale"])
        return own or cfg.scale_config(self.config)["eval"]["max_tokens"]

    def eval_max_tokens(self, wildcards) -> int:
        return self.study_eval_tokens(wildcards.study)

    def study_run_files(self, name: str):
        """An input function: `name` (e.g. `summary.json`) of every run of the wildcards' study."""
        return lambda wildcards: self.layout.run_files(wildcards.study, self.run_names(wildcards.study), name)

    def study_title(self, wildcards) -> str:
        return self._study(wildcards)["title"]

    # -- downstream evaluation: zero-shot through lm-eval, band gap from embeddings -------------------
    def _downstream(self, study: str, which: str) -> bool:
        return ds.evaluates(self.config, study, which)  # the schema allows it on `runs` studies only

    def zeroshot_task_pattern(self) -> str:
        return "|".join(self.zeroshot_tasks)

    def zeroshot_data_dir(self) -> str:
        return str(cfg.input_path(self.zeroshot["data_dir"]))

    def zeroshot_limit_arg(self) -> str:
        limit = ds.zeroshot_limit(self.config)
        return f"--limit {limit}" if limit else ""

    def zeroshot_raw(self, wildcards) -> list[str]:
        return [str(p) for p in task_files(wildcards.task, cfg.input_path(self.zeroshot["data_dir"]))]

    def zeroshot_inputs(self, wildcards) -> dict[str, str]:
        return {
            "summary": self.layout.run_file(wildcards.study, wildcards.run, "summary.json"),
            "tokenizer": self.run_tokenizer(wildcards),
            **{task: self.layout.zeroshot_task(task) for task in self.zeroshot_tasks},
        }

    def zeroshot_args(self, wildcards, input, output) -> str:
        data = " ".join(shlex.quote(f"{t}={input[t]}") for t in self.zeroshot_tasks)
        out = " ".join(shlex.quote(f"{t}={output[t]}") for t in self.zeroshot_tasks)
        return f"--data {data} --out {out}"

    def study_zeroshot(self, wildcards) -> list[str]:
        return [
            self.layout.run_file(wildcards.study, run, f"zeroshot/{task}.json")
            for run in self.run_names(wildcards.study)
            for task in self.zeroshot_tasks
        ]

    def study_runs_json(self, wildcards) -> str:
        return json.dumps(cfg.study_runs(self.config, wildcards.study))

    def bandgap_data_dir(self) -> str:
        return str(cfg.input_path(self.bandgap["data_dir"]))

    def bandgap_rows(self):
        return ds.bandgap_rows(self.config) or "all"

    def bandgap_raw(self, wildcards) -> str:
        return str(cfg.input_path(self.bandgap["data_dir"]) / ds.BANDGAP_DATA_FILE)

    def bandgap_title(self, wildcards) -> str:
        return f"Band gap MAE: {self._study(wildcards)['title']}"

    def downstream_targets(self, study: str) -> list[str]:
        """Zero-shot and band-gap tables of a study, each only when its offline data is there."""
        zs, bg = self._downstream(study, "zeroshot"), self._downstream(study, "bandgap")
        if zs and self.zeroshot_missing:
            self._warn_once(
                f"ScaleDAG warning: zero-shot evaluation of {study} skipped: {self.zeroshot_missing[0]}"
                " is missing (zeroshot.data_dir)"
            )
        if bg and self.bandgap_missing:
            self._warn_once(
                f"ScaleDAG warning: band-gap evaluation of {study} skipped: {self.bandgap_missing[0]}"
                " is missing (bandgap.data_dir)"
            )
        zs, bg_ok = zs and not self.zeroshot_missing, bg and not self.bandgap_missing
        targets = [self.layout.table(study, "zeroshot")] if zs else []
        if bg_ok:
            targets += [self.layout.table(study, "bandgap"), self.layout.figure(study, "bandgap_mae")]
        return targets

    # -- studies.matgpt, bloom_ablations, genslm (kind: runs, each with a table of its own) -----------
    def study_table_targets(self, study: str) -> list[str]:
        """The table of a study with its own table rule; a `downstream` one once its zero-shot table
        (and band-gap table, where it has one) can be built."""
        if study not in STUDY_TABLES:
            return []
        name = STUDY_TABLES[study][1]
        zs, bg = self._downstream(study, "zeroshot"), self._downstream(study, "bandgap")
        ready = name != "downstream" or (zs and not self.zeroshot_missing and (not bg or not self.bandgap_missing))
        if not ready:
            return []
        # a downstream table rule also writes each variant over its seeds (analysis/seeds.py)
        return [self.layout.table(study, name)] + (
            [self.layout.table(study, "variants")] if name == "downstream" else []
        )

    def _study_corpus(self, study: str) -> str:
        """The corpus of a study whose runs share one (genslm: studies.genslm.corpus.<scale>)."""
        return cfg.run_corpus(self.config, study, self.run_names(study)[0])

    def genslm_table_inputs(self, study: str):
        """The gene corpus's train/valid tokens (the codon-frequency baseline) and every run's loss."""

        def inputs(wildcards) -> dict:
            runs, corpus = self.run_names(study), self._study_corpus(study)
            return {
                "train": self.layout.tokens(corpus, "train", "bin"),
                "valid": self.layout.tokens(corpus, "valid", "bin"),
                "evals": self.layout.run_files(study, runs, "eval_loss.json"),
                "summaries": self.layout.run_files(study, runs, "summary.json"),
            }

        return inputs

    def study_vocab(self, study: str):
        return lambda wildcards: cfg.corpus_tokenizer(self.config, self._study_corpus(study))["vocab_size"]

    def study_table_inputs(self, study: str):
        """The input function of `<study>_table`: the zero-shot table, every run's eval loss, and the
        band-gap table where the study regresses band gap."""

        def inputs(wildcards) -> dict:
            found = {
                "zeroshot": self.layout.table(study, "zeroshot"),
                "evals": self.layout.run_files(study, self.run_names(study), "eval_loss.json"),
            }
            if self._downstream(study, "bandgap"):
                found["bandgap"] = self.layout.table(study, "bandgap")
            return found

        return inputs

    def runs_json(self, study: str):
        return lambda wildcards: json.dumps(cfg.study_runs(self.config, study))

    @staticmethod
    def bandgap_arg(wildcards, input) -> str:
        return f"--bandgap {shlex.quote(input['bandgap'])}" if "bandgap" in input.keys() else ""

    # -- export and report stages ---------------------------------------------------------------------
    def hf_export_targets(self, study: str) -> list[str]:
        """runs/<run>/hf of every run of an `export_hf: true` study whose architecture has an HF class."""
        if not self.config["studies"][study].get("export_hf"):
            return []
        ok, skipped = exportable_runs(self.config, study)
        runs = cfg.study_runs(self.config, study)
        groups: dict[tuple[str, str], list[str]] = {}  # one note per variant x size, not one per seed
        for run, why in skipped.items():
            seed = runs[run].get("seed")
            groups.setdefault((cfg.seed_group(run), why), []).append("" if seed is None else str(seed))
        for (run, why), seeds in groups.items():
            which = f" (seeds {', '.join(seeds)})" if any(seeds) else ""
            self._warn_once(f"ScaleDAG note: {study}/{run}{which} is not exported to Hugging Face: {why}")
        return [self.layout.run_file(study, run, "hf") for run in ok]

    def report_summaries(self, wildcards) -> list[str]:
        """Summaries the W&B report covers: every run, except that a proxy study's full runs are the
        ones its ranking checkpoint selected (not every candidate)."""
        if self.kind(wildcards.study) == "proxy":
            return self.proxy_files(wildcards, "summary.json") + self.full_files(wildcards, "summary.json")
        return self.study_run_files("summary.json")(wildcards)

    def _tables(self, studies: list[str]) -> list[str]:
        """The CSV tables (under a `tables/` folder) among these studies' final targets."""
        return sorted(
            {
                t
                for study in studies
                for t in self.study_targets(study, report=False)
                if t.endswith(".csv") and os.path.basename(os.path.dirname(t)) == "tables"
            }
        )

    def report_tables(self, wildcards) -> list[str]:
        """The CSV tables the other stages produce for this study (from its final targets)."""
        return self._tables([wildcards.study])

    def report_runs(self, wildcards) -> str:
        """run name -> {run_id, variant}, as JSON for workflow.report.wandb_report."""
        runs = cfg.study_runs(self.config, wildcards.study)
        return json.dumps(
            {
                run: {
                    "run_id": cfg.run_id(self.config, wildcards.study, run),
                    "variant": info.get("variant") or run.split("_")[0],
                }
                for run, info in runs.items()
            }
        )

    def offline_runs(self, wildcards) -> str:
        return self.layout.run_file(wildcards.study, "*", "wandb/offline-run-*")

    # -- studies.efficiency (kind: benchmarks) --------------------------------------------------------
    def block_spec(self, wildcards) -> str:
        return json.dumps(bench.block_spec(self.config, wildcards.study, wildcards.arch))

    def train_spec(self, wildcards) -> str:
        return json.dumps(bench.train_spec(self.config, wildcards.study, wildcards.workload, wildcards.job))

    def train_launcher(self, wildcards) -> str:
        return bench.train_launcher(self.config, wildcards.study, wildcards.workload, wildcards.job)

    def train_threads(self, wildcards) -> int:
        return bench.job_devices(wildcards.job) * self.threads_per_run

    def train_nodes(self, wildcards) -> int:
        return bench.train_nodes(self.config, wildcards.study, wildcards.workload, wildcards.job)

    def train_tasks(self, wildcards) -> int:
        return bench.job_devices(wildcards.job)

    def train_resources(self) -> dict:
        """Cluster resources of benchmark_train: the rule's configured ones (runtime, cores, GPUs per rank),
        with nodes, ranks and GPUs set per job by its device count (the launcher is params.launcher)."""
        res = {k: v for k, v in self.resources("benchmark_train").items() if k not in ("mpi", "slurm_extra")}
        res.update(nodes=self.train_nodes, tasks=self.train_tasks)
        if "gpu" in res:
            res["gpu"] = self.train_tasks
        return res

    def train_data(self, wildcards) -> dict[str, str]:
        """Tokenizer and token files of the workload's corpus (GPT-2: the scale's; GenSLM: genes)."""
        corpus = bench.train_sweep(self.config, wildcards.study, wildcards.workload)["corpus"]
        return self.corpus_data(corpus)

    def block_rows(self, wildcards) -> list[str]:
        sweep = bench.block_sweep(self.config, wildcards.study)
        return [
            self.layout.study_file(wildcards.study, f"block/{arch}.jsonl") for arch in (sweep["archs"] if sweep else [])
        ]

    def train_rows(self, workload: str):
        """Input function: the rows of every benchmark job of `workload` (none where it has no sweep)."""
        return lambda wildcards: [
            self.layout.study_file(wildcards.study, f"{workload}/{job}.jsonl")
            for job in bench.train_jobs(self.config, wildcards.study, workload)
        ]

    def external_rows(self, wildcards) -> list[str]:
        """Benchmark rows measured on other machines (committed under benchmarks/results/), shown beside ours."""
        return sorted(str(p) for p in (cfg.REPO_ROOT / "benchmarks" / "results").glob("efficiency_*.jsonl"))

    def efficiency_targets(self, study: str) -> list[str]:
        return [self.layout.figure(study, f) for f in EFFICIENCY_FIGURES] + [
            self.layout.table(study, t) for t in EFFICIENCY_TABLES
        ]

    # -- studies.arch_proxy (kind: proxy) -------------------------------------------------------------
    def _proxy_runs(self, study: str, variant: str) -> list[str]:
        return sorted(r for r, spec in cfg.study_runs(self.config, study).items() if spec["variant"] == variant)

    def proxy_files(self, wildcards, name: str) -> list[str]:
        return self.layout.run_files(wildcards.study, self._proxy_runs(wildcards.study, "proxy"), name)

    def proxy_metrics(self, wildcards) -> list[str]:
        return self.proxy_files(wildcards, "metrics.jsonl")

    def proxy_summaries(self, wildcards) -> list[str]:
        return self.proxy_files(wildcards, "summary.json")

    def proxy_settings(self, wildcards) -> str:
        return json.dumps(proxy.proxy_settings(self.config, wildcards.study))

    def _full_runs(self, wildcards) -> list[str]:
        """Full runs the ranking selects; every candidate when `full: all` (known without the ranking)."""
        if proxy.full_selection(proxy.proxy_settings(self.config, wildcards.study)) is None:
            return self._proxy_runs(wildcards.study, "full")
        with open(self.checkpoints.proxy_rank.get(study=wildcards.study).output.ranking) as fh:
            return [f"full_{shape}" for shape in json.load(fh)["full"]]

    def full_files(self, wildcards, name: str) -> list[str]:
        return self.layout.run_files(wildcards.study, self._full_runs(wildcards), name)

    def full_metrics(self, wildcards) -> list[str]:
        return self.full_files(wildcards, "metrics.jsonl")

    def full_summaries(self, wildcards) -> list[str]:
        return self.full_files(wildcards, "summary.json")

    def proxy_targets(self, study: str) -> list[str]:
        return [self.layout.table(study, "proxy"), self.layout.figure(study, "proxy_predicted_vs_actual")]

    # -- studies.chinchilla (kind: isoflop) -----------------------------------------------------------
    def isoflop(self, wildcards) -> dict:
        """Budgets of the sweep's runs, FLOP counting, bootstrap, table and target budgets (this scale)."""
        return isoflop.analysis_settings(self.config, wildcards.study)

    def isoflop_budgets(self, wildcards) -> str:
        return json.dumps(self.isoflop(wildcards)["budgets"])

    def fit_conventions(self, wildcards) -> str:
        return json.dumps(isoflop.fit_conventions(self.isoflop(wildcards)))

    def isoflop_points_inputs(self, wildcards) -> dict[str, list[str]]:
        """The IsoFLOP runs (final points) and the dedicated approach-1 runs (curves), kept apart."""
        iso, study = self.isoflop(wildcards), wildcards.study
        sweep, horizons = sorted(iso["budgets"]), iso["approach1_runs"]
        files = self.layout.run_files
        return {
            "metrics": files(study, sweep, "metrics.jsonl"),
            "summaries": files(study, sweep, "summary.json"),
            "curve_metrics": files(study, horizons, "metrics.jsonl"),
            "curve_summaries": files(study, horizons, "summary.json"),
        }

    def closed_loop_budgets(self, study: str) -> list[float]:
        return isoflop.closed_loop_settings(self.config, study)["budgets"]

    def closed_loop_settings(self, wildcards) -> str:
        return json.dumps(isoflop.closed_loop_settings(self.config, wildcards.study))

    def _closed_loop_runs(self, wildcards) -> list[str]:
        """The runs the plan chose (known once checkpoint closed_loop_plan has run)."""
        with open(self.checkpoints.closed_loop_plan.get(study=wildcards.study).output.plan) as fh:
            return [r["run"] for r in json.load(fh)["runs"]]

    def closed_loop_metrics(self, wildcards) -> list[str]:
        return self.layout.run_files(wildcards.study, self._closed_loop_runs(wildcards), "metrics.jsonl")

    def closed_loop_summaries(self, wildcards) -> list[str]:
        return self.layout.run_files(wildcards.study, self._closed_loop_runs(wildcards), "summary.json")

    def seed_noise_inputs(self, wildcards) -> dict[str, object]:
        """The sweep run that `noise_seeds` replicates, and its replicates (metrics.jsonl each)."""
        noise = isoflop.noise_runs(self.config, wildcards.study)
        return {
            "base": self.layout.run_file(wildcards.study, noise["base"], "metrics.jsonl"),
            "replicates": self.layout.run_files(wildcards.study, noise["runs"], "metrics.jsonl"),
        }

    def seed_noise_seeds(self, wildcards) -> str:
        """The base run's seed (the scale's train seed, or the study's override), then each replicate's."""
        seeds = [p["seed"] for p in isoflop.noise_plan(self.config, wildcards.study)]
        return " ".join(str(k) for k in [int(cfg.study_train(self.config, wildcards.study)["seed"]), *seeds])

    def isoflop_targets(self, study: str) -> list[str]:
        targets = [self.layout.table(study, name) for name in ISOFLOP_TABLES]
        if isoflop.noise_runs(self.config, study)["runs"]:
            targets.append(self.layout.table(study, "seed_noise"))
        targets += [f for fig in ISOFLOP_FIGURES for f in self.layout.figures(study, fig)]
        if self.closed_loop_budgets(study):
            targets += [self.layout.table(study, t) for t in CLOSED_LOOP_TABLES] + self.layout.figures(
                study, "closed_loop"
            )
        return targets

    # -- rule all -------------------------------------------------------------------------------------
    def study_targets(self, study: str, report: bool = True) -> list[str]:
        """The outputs a study ends in: its kind's own tables and figures, then the shared stages'."""
        kind = self.kind(study)
        if kind == "benchmarks":
            targets = self.efficiency_targets(study)
        elif kind == "proxy":
            targets = self.proxy_targets(study)
        elif kind == "isoflop":
            targets = self.isoflop_targets(study)
        else:  # a `runs` study: loss curves of its runs, and its downstream evaluations
            targets = self.layout.figures(study, "loss_curves") + [self.layout.table(study, "loss")]
            targets += self.downstream_targets(study) + self.study_table_targets(study)
        targets += self.hf_export_targets(study)
        if report and self.has_report(study):  # a W&B report spec (published later, see README)
            targets.append(self.layout.study_file(study, "report/wandb_report.json"))
        return targets

    def study_target(self, study: str):
        """Input function of the rule named after a study (`snakemake chinchilla`): its targets, or one
        line saying why it has none at this scale. Evaluated only when that rule is asked for."""

        def inputs(wildcards=None) -> list[str]:
            if study not in cfg.enabled_studies(self.config):
                raise ScaleDAGError(
                    f"study {study!r} has nothing to run at scale {self.config['scale']!r}: it is disabled or "
                    f"this scale declares no runs for it (config.yaml: studies.{study})"
                )
            return self.study_targets(study)

        return inputs

    def has_report(self, study: str) -> bool:
        """Whether the study gets a W&B report spec: it trains runs, or it is a benchmarks study (whose
        spec holds its tables)."""
        return bool(cfg.study_runs(self.config, study)) or self.kind(study) == "benchmarks"

    def final_targets(self) -> list[str]:
        targets = [t for study in cfg.enabled_studies(self.config) for t in self.study_targets(study)]
        return targets + [self.layout.evidence("csv"), self.layout.evidence("md")]

    def evidence_skipped(self) -> list[str]:
        """`VARIANT=REASON` for each BLOOM variant this scale skips, so the evidence report can say
        which findings were not measured and why (analysis.evidence --skipped)."""
        if "bloom_ablations" not in cfg.enabled_studies(self.config):
            return []
        return [f"{v}={why}" for v, why in cfg.skipped_variants(self.config, "bloom_ablations").items()]

    def evidence_tables(self, wildcards=None) -> list[str]:
        """Every CSV table of every enabled study at this scale: the evidence report reads the ones
        its findings need (analysis/evidence.py) and waits for all, so it is written last."""
        return self._tables(cfg.enabled_studies(self.config))
