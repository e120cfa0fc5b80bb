"""The results layout, written once: every path a rule reads or writes under results/ and logs/.

Rules build their output patterns from it by passing wildcard placeholders as names
(`layout.run_file("{study}", "{run}", "summary.json")` -> `results/tiny/{study}/runs/{run}/summary.json`),
and Python code builds concrete paths from the same methods, so the two cannot drift apart.

    results/<scale>/
      data/<corpus>/{train,valid,test}.jsonl, stats.json, tokenizer.json, tokens/<split>.{bin,idx}
      data/zeroshot/<task>.jsonl                 offline zero-shot items, one file per task
      <study>/runs/<run>/                        metrics.jsonl, summary.json, eval_loss.json, checkpoints/, hf/
      <study>/tables/<name>.csv, figures/<name>.{png,pdf}, report/wandb_report.json
      <study>/<part>/...                         a study's own intermediate files (closed_loop/, proxy/, gpt2/, genslm/)
      benchmarks/<rule>/<wildcards>.tsv          Snakemake's `benchmark:` rows, one per job
      plan.csv                                   the cost plan of every job (rule plan)
    results/downloads/                           content-addressed source downloads, shared by every scale
    logs/<scale>/<rule>/<wildcards>.log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")
TOKEN_EXTS = ("bin", "idx")

REPO_ROOT = Path(__file__).resolve().parents[1]  # the repository: workflow/ lies in it


def input_path(path: str | Path) -> Path:
    """Where a data path from config points: relative paths (e.g. `../shared/data/...`) are taken
    from the repository root, so `snakemake -d <elsewhere>` reads the same files."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


@dataclass(frozen=True)
class Layout:
    results: str  # results/<scale>
    logs: str  # logs/<scale>
    downloads: str  # results/downloads: shared by every scale, a download does not depend on it

    @classmethod
    def of(cls, config: dict) -> Layout:
        base, scale = config["results"], config["scale"]
        return cls(f"{base}/{scale}", f"{config['logs']}/{scale}", f"{base}/downloads")

    # -- data ---------------------------------------------------------------------------------------
    def corpus_dir(self, corpus: str) -> str:
        return f"{self.results}/data/{corpus}"

    def corpus_file(self, corpus: str, name: str) -> str:
        """`train.jsonl`, `stats.json`, `tokenizer.json`, ... of a prepared corpus."""
        return f"{self.corpus_dir(corpus)}/{name}"

    def tokens(self, corpus: str, split: str, ext: str) -> str:
        return f"{self.corpus_dir(corpus)}/tokens/{split}.{ext}"

    def token_files(self, corpus: str, splits=("train", "valid")) -> dict[str, str]:
        """`{split}_{ext}` -> path, the names the training and evaluation rules take as inputs."""
        return {f"{s}_{e}": self.tokens(corpus, s, e) for s in splits for e in TOKEN_EXTS}

    def token_shard_dir(self, corpus: str, shard, shards) -> str:
        return f"{self.corpus_dir(corpus)}/tokens/shards/{shard}-of-{shards}"

    def token_shard_file(self, corpus: str, shard, shards, name: str) -> str:
        """`train.bin`, ..., `counts.json` of one tokenize_shard job (temporary: gathered, then removed)."""
        return f"{self.token_shard_dir(corpus, shard, shards)}/{name}"

    def zeroshot_task(self, task: str) -> str:
        return f"{self.results}/data/zeroshot/{task}.jsonl"

    def zeroshot_task_stats(self, task: str) -> str:
        return f"{self.results}/data/zeroshot/{task}.stats.json"

    def bandgap_baselines(self) -> str:
        return f"{self.results}/data/bandgap/baselines.json"  # one per scale: the baselines need no model

    # -- runs ---------------------------------------------------------------------------------------
    def study_dir(self, study: str) -> str:
        return f"{self.results}/{study}"

    def run_dir(self, study: str, run: str) -> str:
        return f"{self.study_dir(study)}/runs/{run}"

    def run_file(self, study: str, run: str, name: str) -> str:
        """`metrics.jsonl`, `summary.json`, `eval_loss.json`, `bandgap.json`, `zeroshot/<task>.json`, `hf`."""
        return f"{self.run_dir(study, run)}/{name}"

    def run_files(self, study: str, runs, name: str) -> list[str]:
        return [self.run_file(study, run, name) for run in runs]

    # -- study outputs ------------------------------------------------------------------------------
    def table(self, study: str, name: str) -> str:
        """`name` without extension is a CSV table; with one (e.g. `scaling_fit.json`) it is kept."""
        return f"{self.study_dir(study)}/tables/{name if '.' in name else name + '.csv'}"

    def figure(self, study: str, name: str, ext: str = "png") -> str:
        return f"{self.study_dir(study)}/figures/{name}.{ext}"

    def figures(self, study: str, name: str) -> list[str]:
        return [self.figure(study, name, ext) for ext in ("png", "pdf")]

    def study_file(self, study: str, part: str) -> str:
        """A study's own intermediate file, e.g. `closed_loop/plan.json`, `proxy/ranking.json`."""
        return f"{self.study_dir(study)}/{part}"

    # -- bookkeeping --------------------------------------------------------------------------------
    def plan(self) -> str:
        """The cost plan of this scale's DAG (rule plan, workflow/hpc/plan.py)."""
        return f"{self.results}/plan.csv"

    def evidence(self, ext: str) -> str:
        """The evidence report of this scale: `csv` or `md` (rule evidence, analysis/evidence.py)."""
        return f"{self.results}/evidence.{ext}"

    def benchmark(self, rule: str, *wildcards: str) -> str:
        return f"{self.results}/benchmarks/{rule}/{'/'.join(wildcards)}.tsv"

    def log(self, rule: str, *wildcards: str) -> str:
        return f"{self.logs}/{rule}/{'/'.join(wildcards)}.log"
