"""The smoke setting (`--config scale=small smoke=True`): the real `small` DAG, executed on a CPU.

Everything a job's code path depends on stays as `small` declares it: the corpus (matsci from
../shared), the tokenizer sizes and shard counts, every shape and sequence length, every rule. Only
what sets how long a job runs is capped:

- training: `STEPS` optimizer steps of one sequence each (micro-batch 1, global batch 1), one
  evaluation iteration, a checkpoint only at the end and of the weights only (fp32 AdamW's two
  moments are 2/3 of a checkpoint: the small DAG's 54 GB of them would not fit a CI disk, and
  every reader of a final checkpoint, evaluation and export, loads only the weights);
- evaluation: one sequence of the longest shape's length of held-out text per evaluated split (2,048
  tokens: two GPT-2 sequences, one GenSLM one), `ZEROSHOT_ITEMS` items per zero-shot task,
  `BANDGAP_ROWS` band-gap rows;
- benchmarks: micro-batch 1, one timed step or repeat and none untimed, the grad-accum sweep at
  global batch 2 (accumulation 1 and 2); the block grid keeps its hidden sizes and sparsity but only
  its `BLOCK_SEQS` shortest sequence lengths (the code path is the same at every length, and a
  layer at 8,192 tokens alone takes minutes on one CPU thread);
- CPU: fp32 (bf16 matmuls are ~30x slower on CPU), one torch thread per job, tokenizer threads 2.

A corpus whose sources need the network (`url`, `hf_dataset`) or a `path` that matches nothing is
replaced by its declared `offline_stand_in` (its own tokenizer settings kept), with one line saying so.
Outputs land under `<results>/smoke/` and logs under `<logs>/smoke/`, never beside real `small`
results: their numbers are of two-step models and measure nothing.
"""

from __future__ import annotations

import copy
import glob
import sys

from workflow.errors import ScaleDAGError
from workflow.layout import input_path

STEPS = 2  # the second step runs on weights the first optimizer step changed
BLOCK_SEQS = 2
ZEROSHOT_ITEMS = 2
BANDGAP_ROWS = 100  # the band-gap heads' 5-fold CV needs a few rows per fold
SUBDIR = "smoke"


def apply(config: dict, say=None) -> dict:
    """Rewrite a validated config in place for a smoke run (idempotent: a second call changes nothing)."""
    if not config.get("smoke"):
        return config
    if config["scale"] != "small":
        raise ScaleDAGError(
            f"config: smoke applies to scale small only (got scale {config['scale']!r}): tiny and mini already "
            "run on CPU, and paper's models are checked by tests/hpc/test_paper_models.py"
        )
    say = say or (lambda line: sys.stderr.write(f"ScaleDAG smoke: {line}\n"))
    for root in ("results", "logs"):
        if config[root].rstrip("/").split("/")[-1] != SUBDIR:
            config[root] = f"{config[root].rstrip('/')}/{SUBDIR}"
    sc = config["scales"]["small"]
    sc["device"] = "cpu"
    sc["threads_per_run"] = 1
    sc["tokenizer"]["threads"] = min(int(sc["tokenizer"]["threads"]), 2)
    sc["parallel"] = {"tp": 1, "pp": 1}
    for res in sc.get("resources", {}).values():
        res.pop("gpus_per_task", None)
    sc["train"].update(micro_batch_size=1, global_batch_size=1, log_interval=1, eval_interval=1, eval_iters=1)
    sc["train"]["save_interval"] = STEPS
    sc["train"]["checkpoint_optimizer"] = False
    sc["eval"]["max_tokens"] = max_seq_length(config)
    for st in config["studies"].values():
        st.get("eval_tokens", {}).pop("small", None)
        for bench in (st.get("benchmarks") or {}).values():
            small = bench.get("small") if isinstance(bench, dict) else None
            if small:
                _cap_benchmark(small)
    if "zeroshot" in config:
        config["zeroshot"]["limit"]["small"] = ZEROSHOT_ITEMS
    if "bandgap" in config:
        config["bandgap"]["rows"]["small"] = BANDGAP_ROWS
    _stand_in_offline(config, say)
    return config


def _cap_benchmark(small: dict) -> None:
    if "repeats" in small:  # the block micro-benchmark
        small.update(micro_batch_size=[1], warmup=0, repeats=1, seq_length=sorted(small["seq_length"])[:BLOCK_SEQS])
    else:  # training-step sweeps: seq x size at micro-batch 1; grad accumulation 1 and 2 at global batch 2
        small.update(micro_batch_size=1, global_batch_size=2, warmup_steps=0, steps=1)
        small["grad_accum"] = [g for g in small["grad_accum"] if g <= 2] or [1]


def cap_train(config: dict, train: dict, seq_length: int) -> dict:
    """A run's resolved train block cut to `STEPS` steps of one sequence (a no-op unless smoke).

    Applied to the fully resolved block, so a study's or a generator's own batch and token budget
    (an IsoFLOP run's C / 6N tokens, the closed loop's predicted D) are capped too."""
    if not config.get("smoke"):
        return train
    out = dict(train, micro_batch_size=1, global_batch_size=1, log_interval=1, eval_iters=1)
    out["tokens"] = min(int(train["tokens"]), STEPS * int(seq_length))
    out["save_interval"] = STEPS
    out["checkpoint_optimizer"] = False
    out["eval_interval"] = min(int(train["eval_interval"]), STEPS)
    return out


def max_seq_length(config: dict) -> int:
    return max(int(s["seq_length"]) for s in config["shapes"].values())


def offline_problem(entry: dict) -> str | None:
    """Why a corpus cannot be read offline here (a network source, a path glob with no match), or None."""
    sources = entry.get("sources") or [{"generated": entry.get("generated")}]
    for src in sources:
        if "url" in src:
            return f"source url {src['url']} needs the network"
        if "hf_dataset" in src:
            return f"source hf_dataset {src['hf_dataset']} needs the network"
        if "path" in src:
            if not glob.glob(str(input_path(src["path"])), recursive=True):
                return f"source path {src['path']} matches no file"
    return None


def _stand_in_offline(config: dict, say) -> None:
    corpora = config["corpora"]
    for name, entry in list(corpora.items()):
        stand_in = entry.get("offline_stand_in")
        problem = offline_problem(entry) if stand_in else None
        if not problem:
            continue
        if stand_in not in corpora or offline_problem(corpora[stand_in]):
            raise ScaleDAGError(f"config: corpora.{name}.offline_stand_in: {stand_in!r} is not an offline corpus")
        replaced = copy.deepcopy(
            {k: v for k, v in corpora[stand_in].items() if k not in ("tokenizer", "offline_stand_in")}
        )
        if "tokenizer" in entry:
            replaced["tokenizer"] = entry["tokenizer"]
        corpora[name] = replaced
        say(f"corpus {name!r}: {problem}; this smoke run reads {stand_in!r} in its place")
