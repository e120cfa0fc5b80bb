"""Turn the offline zero-shot files (../shared/data/zeroshot, several formats) into one JSONL per task
in the schema of the Hugging Face dataset that lm-eval's standard task YAML reads.

Why a conversion step: the copies are in llm-foundry's ICL format, PIQA's split labels file and a
6-lines-per-item HellaSwag text; converting them to the HF field names (goal/sol1/sol2/label,
question/choices.text, passage/question, query/choices) lets `workflow/evaluate/lm_eval_tasks/*.yaml` keep
lm-eval's own prompts and metrics. A malformed line is skipped and counted (stats JSON), never
fatal; a missing file is one error naming it. A seeded sample (file order kept) keeps tiny fast.
"""

from __future__ import annotations

import argparse
import bz2
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path, atomic_write_json

Item = dict
Parsed = Iterator[tuple[int, Item | None, str]]  # (line number, item or None, why skipped)


def _jsonl(path: Path) -> Iterator[tuple[int, dict | None, str]]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"not JSON ({exc.msg})"
                continue
            yield lineno, obj if isinstance(obj, dict) else None, "" if isinstance(obj, dict) else "not a JSON object"


def _mc(obj: dict) -> tuple[list[str], int]:
    """Choices and gold index of an llm-foundry multiple-choice record (KeyError/ValueError if bad)."""
    choices, gold = obj["choices"], obj["gold"]
    if not (isinstance(choices, list) and len(choices) >= 2 and all(isinstance(c, str) for c in choices)):
        raise ValueError("'choices' must be a list of >= 2 strings")
    if not (isinstance(gold, int) and 0 <= gold < len(choices)):
        raise ValueError(f"'gold' must be an index into choices, got {gold!r}")
    return choices, gold


def _records(path: Path, convert: Callable[[dict], Item]) -> Parsed:
    for lineno, obj, why in _jsonl(path):
        if obj is None:
            yield lineno, None, why
            continue
        try:
            yield lineno, convert(obj), ""
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            yield lineno, None, f"{type(exc).__name__}: {exc}"


def _lambada(obj: dict) -> Item:
    ctx, cont = obj["context"], obj["continuation"]
    if not (isinstance(ctx, str) and isinstance(cont, str) and ctx.strip() and cont.strip()):
        raise ValueError("'context' and 'continuation' must be non-empty strings")
    # lm-eval's lambada_openai splits `text` at its last space; these files store the two halves.
    return {"text": ctx.rstrip() + " " + cont.strip()}


def _arc(obj: dict) -> Item:
    choices, gold = _mc(obj)
    question = obj["query"]
    question = question[len("Question: ") :] if question.startswith("Question: ") else question
    return {"question": question, "choices": {"text": choices}, "label": gold}


def _boolq(obj: dict) -> Item:
    _, gold = _mc(obj)
    query = obj["query"]
    if not query.startswith("Passage: ") or "\nQuestion: " not in query:
        raise ValueError("'query' is not 'Passage: ...\\nQuestion: ...'")
    passage, question = query[len("Passage: ") :].rsplit("\nQuestion: ", 1)
    return {"passage": passage, "question": question.rstrip().rstrip("?"), "label": gold}


def _winogrande(obj: dict) -> Item:
    options, gold = obj["context_options"], obj["gold"]
    if not (isinstance(options, list) and len(options) == 2 and all(isinstance(o, str) for o in options)):
        raise ValueError("'context_options' must be two strings")
    if gold not in (0, 1):
        raise ValueError(f"'gold' must be 0 or 1, got {gold!r}")
    return {"contexts": options, "continuation": str(obj["continuation"]).strip(), "label": gold}


def _piqa(paths: list[Path]) -> Parsed:
    data, labels = paths
    label_lines = labels.read_text(encoding="utf-8").splitlines()
    for lineno, obj, why in _jsonl(data):
        if obj is None:
            yield lineno, None, why
            continue
        try:
            label = int(label_lines[lineno - 1])
            if label not in (0, 1):
                raise ValueError(f"label {label} is not 0 or 1")
            yield (
                lineno,
                {"goal": str(obj["goal"]), "sol1": str(obj["sol1"]), "sol2": str(obj["sol2"]), "label": label},
                "",
            )
        except IndexError:
            yield lineno, None, f"no line {lineno} in {labels.name}"
        except (KeyError, ValueError) as exc:
            yield lineno, None, f"{type(exc).__name__}: {exc}"


def _hellaswag(paths: list[Path]) -> Parsed:
    """6 lines an item: `activity_label: ctx`, gold (0-3), 4 endings (already lm-eval-preprocessed)."""
    with bz2.open(paths[0], "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for start in range(0, len(lines), 6):
        block = lines[start : start + 6]
        if len(block) < 6 or not block[1].strip().isdigit() or not 0 <= int(block[1]) <= 3:
            yield start + 1, None, "expected a context line, a label 0-3 and 4 endings"
            continue
        yield start + 1, {"query": block[0], "choices": block[2:6], "label": int(block[1])}, ""


def _files(*names: str) -> list[str]:
    return list(names)


# task -> (files under data_dir, parser over the paths, number of choices or None for LAMBADA)
TASKS: dict[str, tuple[list[str], Callable[[list[Path]], Parsed]]] = {
    "lambada_openai": (_files("lambada/lambada_openai.jsonl"), lambda p: _records(p[0], _lambada)),
    "hellaswag": (_files("hellaswag/hellaswag_val_full.txt.bz2"), _hellaswag),
    "piqa": (_files("piqa/valid.jsonl", "piqa/valid-labels.lst"), _piqa),
    "arc_easy": (_files("arc/arc_easy.jsonl"), lambda p: _records(p[0], _arc)),
    "arc_challenge": (_files("arc/arc_challenge.jsonl"), lambda p: _records(p[0], _arc)),
    "winogrande": (_files("winogrande/winogrande.jsonl"), lambda p: _records(p[0], _winogrande)),
    "boolq": (_files("boolq/boolq.jsonl"), lambda p: _records(p[0], _boolq)),
}


def task_files(task: str, data_dir: str | Path) -> list[Path]:
    if task not in TASKS:
        raise ScaleDAGError(f"zero-shot task {task!r} is not one of {sorted(TASKS)}")
    return [Path(data_dir) / name for name in TASKS[task][0]]


def missing_files(tasks: list[str], data_dir: str | Path) -> list[Path]:
    return [p for t in tasks for p in task_files(t, data_dir) if not p.is_file()]


def random_accuracy(task: str, item: Item) -> float:
    """Chance accuracy of one item: 1 / number of choices (LAMBADA's open vocabulary: 0)."""
    if task == "lambada_openai":
        return 0.0
    if task in ("piqa", "winogrande"):
        return 0.5
    if task == "boolq":
        return 0.5
    choices = item["choices"]["text"] if task.startswith("arc") else item["choices"]
    return 1.0 / len(choices)


def load_task(task: str, data_dir: str | Path) -> tuple[list[Item], list[dict]]:
    """All well-formed items of a task, and the skipped lines (line number + why)."""
    paths = task_files(task, data_dir)
    for p in paths:
        if not p.is_file():
            raise ScaleDAGError(f"zero-shot task {task}: data file {p} is missing (set zeroshot.data_dir)")
    items, skipped = [], []
    for lineno, item, why in TASKS[task][1](paths):
        if item is None:
            skipped.append({"line": lineno, "why": why})
        else:
            items.append(item)
    if not items:
        raise ScaleDAGError(f"zero-shot task {task}: no well-formed item in {paths[0]}")
    return items, skipped


def prepare_task(task: str, data_dir: str | Path, out: str | Path, limit: int | None = None, seed: int = 0) -> dict:
    """Write the task's JSONL (a seeded sample of `limit` items, file order kept) and its stats."""
    items, skipped = load_task(task, data_dir)
    total = len(items)
    if limit is not None and limit < total:
        keep = sorted(random.Random(f"{seed}:{task}").sample(range(total), limit))
        items = [items[i] for i in keep]
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    stats = {
        "task": task,
        "source": [str(p) for p in task_files(task, data_dir)],
        "items": len(items),
        "items_available": total,
        "skipped": len(skipped),
        "skipped_lines": skipped[:20],
        "random_acc": sum(random_accuracy(task, it) for it in items) / len(items),
        "seed": seed,
        "limit": limit,
    }
    atomic_write_json(Path(out).with_suffix(".stats.json"), stats)
    if skipped:
        print(
            f"zero-shot task {task}: skipped {len(skipped)} malformed line(s) in {stats['source'][0]}, "
            f"first at line {skipped[0]['line']} ({skipped[0]['why']})"
        )
    return stats


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="convert one offline zero-shot task to lm-eval's JSONL schema")
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--limit", type=int, default=None, help="items kept (seeded sample); default all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    stats = prepare_task(args.task, args.data_dir, args.out, args.limit, args.seed)
    print(json.dumps({k: v for k, v in stats.items() if k != "skipped_lines"}))


if __name__ == "__main__":
    main()
