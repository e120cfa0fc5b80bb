"""Zero-shot evaluation of a run's final checkpoint through lm-evaluation-harness, fully offline.

The task definitions are the YAMLs in workflow/evaluate/lm_eval_tasks/ (lm-eval's standard prompts and
metrics); here each one gets `data_files` pointed at the JSONL that workflow.evaluate.zeroshot_tasks
prepared, and lm-eval runs it on `MegatronLM` (or on any lm-eval model, e.g. `hf` over the HF
export, for the agreement check). One JSON per (run, task) holds lm-eval's metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.evaluate.lm_eval_megatron import MegatronLM
from workflow.hpc.launch import shutdown
from workflow.io import atomic_write_json
from workflow.model import megatron_cpu

TASK_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"
TASK_NAMES = sorted(p.stem for p in TASK_DIR.glob("*.yaml"))
# The headline number of each task: acc everywhere (BLOOM's tables), LAMBADA also reports perplexity.
HEADLINE = "acc"


def offline_env() -> None:
    """lm-eval / datasets / transformers must never reach the network.

    huggingface_hub and datasets read these variables once, at import; when a warm worker
    (workflow.warm) imported them before this job started, their flags are set here too."""
    import sys

    for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[key] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if "huggingface_hub.constants" in sys.modules:
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True
    if "datasets.config" in sys.modules:
        sys.modules["datasets.config"].HF_HUB_OFFLINE = sys.modules["datasets.config"].HF_DATASETS_OFFLINE = True


def task_config(task: str, data_file: str | Path) -> dict:
    """The repo's YAML for `task`, with its data file set to `data_file`."""
    import yaml

    yaml_path = TASK_DIR / f"{task}.yaml"
    if not yaml_path.is_file():
        raise ScaleDAGError(f"zero-shot task {task!r}: no {yaml_path}; expected one of {TASK_NAMES}")
    data_file = Path(data_file)
    if not data_file.is_file():
        raise ScaleDAGError(f"zero-shot task {task}: prepared data {data_file} is missing")
    cfg = yaml.safe_load(yaml_path.read_text())  # plain YAML: no !function in these tasks
    cfg["dataset_kwargs"] = {"data_files": {"test": str(data_file.resolve())}}
    return cfg


def run_lm_eval(
    lm, tasks: dict[str, str | Path], batch_size: int = 16, limit: int | None = None, device: str | None = None
) -> dict:
    """lm-eval's `simple_evaluate` on `lm` (an LM, or ("hf", model_args) for the export) -> {task: metrics}."""
    offline_env()
    import lm_eval

    configs = [task_config(t, f) for t, f in tasks.items()]
    kwargs = {} if not isinstance(lm, tuple) else {"model_args": lm[1]}
    model = lm[0] if isinstance(lm, tuple) else lm
    out = lm_eval.simple_evaluate(
        model=model,
        tasks=configs,
        num_fewshot=0,
        batch_size=batch_size,
        limit=limit,
        bootstrap_iters=0,
        log_samples=False,
        device=device,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
        **kwargs,
    )
    results = {}
    for task in tasks:
        raw = out["results"][task]
        metrics = {k.split(",")[0]: v for k, v in raw.items() if "," in k and not k.split(",")[0].endswith("_stderr")}
        metrics["samples"] = out.get("n-samples", {}).get(task, {}).get("effective")
        results[task] = metrics
    return results


def evaluate_run(
    spec: dict, tasks: dict[str, str], outs: dict[str, str], tokenizer: str | None = None, batch_size: int = 16
) -> dict:
    offline_env()
    megatron_cpu.activate()
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    for task, path in tasks.items():  # a missing task file fails before the (slow) model load
        task_config(task, path)
    t0 = time.perf_counter()
    try:
        lm = MegatronLM.from_run(spec, tokenizer, batch_size=batch_size)
        print(f"loaded {spec.get('run_id')} iteration {lm.iteration} in {time.perf_counter() - t0:.1f}s", flush=True)
        results = run_lm_eval(lm, tasks, batch_size=batch_size)
    finally:
        shutdown()
    for task, metrics in results.items():
        stats_path = Path(tasks[task]).with_suffix(".stats.json")
        stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
        record = {
            "run_id": spec.get("run_id"),
            "study": spec.get("study"),
            "run": spec.get("run"),
            "task": task,
            "iteration": lm.iteration,
            "model": "megatron",
            "tokenizer_sha256": lm.tokenizer_sha256,
            "metrics": metrics,
            "random_acc": stats.get("random_acc"),
            "items": stats.get("items"),
            "skipped_lines": stats.get("skipped"),
        }
        atomic_write_json(outs[task], record)
        print(json.dumps({"task": task, **metrics}), flush=True)
    print(f"zero-shot done in {time.perf_counter() - t0:.1f}s", flush=True)
    return results


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for v in values:
        if "=" not in v:
            raise ScaleDAGError(f"--{what} {v!r}: expected TASK=PATH")
        task, path = v.split("=", 1)
        pairs[task] = path
    return pairs


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="zero-shot lm-eval tasks on a run's final checkpoint")
    parser.add_argument("--spec", required=True, help="resolved run spec (JSON)")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the spec's)")
    parser.add_argument("--data", nargs="+", required=True, help="TASK=prepared.jsonl")
    parser.add_argument("--out", nargs="+", required=True, help="TASK=result.json")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    tasks, outs = _pairs(args.data, "data"), _pairs(args.out, "out")
    if set(tasks) != set(outs):
        raise ScaleDAGError(f"--data tasks {sorted(tasks)} and --out tasks {sorted(outs)} differ")
    evaluate_run(json_option("--spec", args.spec), tasks, outs, args.tokenizer, args.batch_size)


if __name__ == "__main__":
    main()
