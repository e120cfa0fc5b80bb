"""Turn a corpus's sources into clean, de-duplicated train/valid/test JSONL plus stats.json.

Every later stage trusts this output, so problems in the raw data (broken JSON lines, invalid UTF-8,
empty or junk documents, duplicates) are handled here once and counted rather than silently
dropped. The pipeline per document: clean -> drop empty -> exact dedup -> quality filters -> near
dedup (MinHash LSH) -> split -> mixture weight. A document's split depends only on its own text, so
adding documents to a corpus never moves an existing one between splits. Sources are streamed: only
dedup keys and MinHash signatures stay in memory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import time
from itertools import islice
from pathlib import Path

from workflow.data.cleaning import build_filters, clean_text
from workflow.data.dedup import NearDuplicateIndex, dedup_key
from workflow.data.sources import Counters, read_source, source_label
from workflow.data.spec import NEAR_DEDUP_DEFAULTS, normalise_spec
from workflow.errors import ScaleDAGError, json_option, main_guard
from workflow.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def _unit_hash(text: str, salt: bytes = b"") -> float:
    """A number in [0, 1) fixed by the text alone."""
    return int.from_bytes(hashlib.sha1(salt + text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_of(text: str, valid_fraction: float, test_fraction: float = 0.0) -> str:
    """'valid', 'test' or 'train' from the text's own hash, so it never changes as the corpus grows."""
    position = _unit_hash(text)
    if position < valid_fraction:
        return "valid"
    return "test" if position < valid_fraction + test_fraction else "train"


def copies_of(text: str, weight: float) -> int:
    """How many times a document enters a mixture: weight 0.5 keeps a hash-chosen half of a source,
    2.0 repeats each document twice (The Pile's per-component epochs)."""
    whole = math.floor(weight)
    return whole + (1 if _unit_hash(text, b"weight") < weight - whole else 0)


def prepare_corpus(
    spec: dict, out_dir: str | os.PathLike, progress_every: int = 10_000, download_dir: str | os.PathLike | None = None
) -> dict:
    """Read, clean, de-duplicate and split one corpus; write {train,valid,test}.jsonl and stats.json."""
    spec = normalise_spec(spec)
    name, out_dir = spec["name"], Path(out_dir)
    valid_fraction, test_fraction = float(spec["valid_fraction"]), float(spec["test_fraction"])
    filters = build_filters(spec)
    near = NearDuplicateIndex(**{k: spec["near_dedup"][k] for k in NEAR_DEDUP_DEFAULTS}) if spec["near_dedup"] else None
    counters, per_source, seen = Counters(), {}, set()
    stages = {"empty": [0, 0], "exact_dedup": [0, 0], **{n: [0, 0] for n, _ in filters}, "near_dedup": [0, 0]}
    splits = {s: {"documents": 0, "chars": 0} for s in SPLITS}
    read = kept = 0
    t0 = time.time()

    def passes(stage: str, ok: bool) -> bool:
        stages[stage][0] += 1
        stages[stage][1] += ok
        return ok

    with (
        atomic_path(out_dir / "train.jsonl") as train_tmp,
        atomic_path(out_dir / "valid.jsonl") as valid_tmp,
        atomic_path(out_dir / "test.jsonl") as test_tmp,
    ):
        writers = {s: open(p, "w", encoding="utf-8") for s, p in zip(SPLITS, (train_tmp, valid_tmp, test_tmp))}
        try:
            for source in spec["sources"]:
                label = source_label(source)
                while label in per_source:
                    label += "'"
                stats = per_source[label] = {
                    "documents_read": 0,
                    "documents_nonempty": 0,
                    "documents_kept": 0,
                    "documents_written": 0,
                    "weight": source["weight"],
                }
                documents = read_source(source, counters, download_dir)
                if source.get("max_documents"):
                    documents = islice(documents, int(source["max_documents"]))
                for raw in documents:
                    read += 1
                    stats["documents_read"] += 1
                    if progress_every and read % progress_every == 0:
                        log.info(
                            "[%s] %d documents read, %d kept (%.0f docs/s)",
                            name,
                            read,
                            kept,
                            read / max(time.time() - t0, 1e-9),
                        )
                    text = clean_text(raw)
                    if not passes("empty", bool(text)):
                        continue
                    stats["documents_nonempty"] += 1
                    if spec["exact_dedup"]:
                        key = dedup_key(text)
                        if not passes("exact_dedup", key not in seen):
                            continue
                        seen.add(key)
                    if not all(passes(stage, keep(text)) for stage, keep in filters):
                        continue
                    if near is not None and not passes("near_dedup", not near.is_duplicate(text)):
                        continue
                    kept += 1
                    stats["documents_kept"] += 1
                    split = split_of(text, valid_fraction, test_fraction)
                    copies = copies_of(text, source["weight"])
                    copies = min(copies, 1) if split != "train" else copies  # repeats only where they train
                    record = {"text": text, "tag": source["tag"]} if source.get("tag") else {"text": text}
                    line = json.dumps(record, ensure_ascii=False) + "\n"
                    for _ in range(copies):
                        writers[split].write(line)
                    splits[split]["documents"] += copies
                    splits[split]["chars"] += copies * len(text)
                    stats["documents_written"] += copies
                if stats["documents_nonempty"] == 0:
                    raise ScaleDAGError(
                        f"corpus {name!r}: source {label!r} has no non-empty document ({stats['documents_read']} read)"
                    )
        finally:
            for fh in writers.values():
                fh.close()
        for split, counts in splits.items():
            if counts["documents"] == 0:
                raise ScaleDAGError(
                    f"corpus {name!r}: the {split} split is empty ({kept} documents kept after cleaning; add "
                    f"documents or change valid_fraction={valid_fraction} / test_fraction={test_fraction})"
                )

    stats = {
        "corpus": name,
        "spec": spec,
        "documents_read": read,
        "documents_kept": kept,
        "filters": {stage: {"in": n_in, "out": n_out} for stage, (n_in, n_out) in stages.items()},
        "dropped": {
            stage: n_in - n_out for stage, (n_in, n_out) in stages.items() if stage not in ("exact_dedup", "near_dedup")
        },
        "exact_duplicates": stages["exact_dedup"][0] - stages["exact_dedup"][1],
        "near_duplicates": stages["near_dedup"][0] - stages["near_dedup"][1],
        "bad_input": {k: v for k, v in counters.items() if not k.startswith("arxiv_")},
        "bad_json_lines": counters["bad_json_lines"],
        "missing_text_field": counters["missing_text_field"],
        "invalid_utf8_documents": counters["invalid_utf8_documents"],
        "splits": splits,
        "sources": per_source,
        "seconds": round(time.time() - t0, 2),
    }
    if "arxiv_entries" in counters:
        stats["arxiv"] = {"entries": counters["arxiv_entries"], "repeated_ids": counters["arxiv_repeated_ids"]}
    atomic_write_json(out_dir / "stats.json", stats)
    _warn_bad_input(name, stats["bad_input"])
    log.info(
        "[%s] done in %.1fs: %d read, %d kept (%d exact + %d near duplicates removed); %s",
        name,
        time.time() - t0,
        read,
        kept,
        stats["exact_duplicates"],
        stats["near_duplicates"],
        ", ".join(f"{s} {c['documents']} docs / {c['chars']} chars" for s, c in splits.items()),
    )
    return stats


def _warn_bad_input(name: str, bad_input: dict) -> None:
    """One closing line per kind of skipped input: only the first few were logged as they came."""
    for key, count in bad_input.items():
        if not key.endswith("_examples") and count:
            examples = ", ".join(bad_input.get(f"{key}_examples", []))
            log.warning(
                "[%s] %d %s in all%s (stats.json: bad_input)",
                name,
                count,
                key.replace("_", " "),
                f", e.g. {examples}" if examples else "",
            )


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the corpus spec as a JSON object")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--download-dir", default=None, help="cache for url sources")
    parser.add_argument("--progress-every", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = json_option("--spec", args.spec)
    prepare_corpus(spec, args.out_dir, progress_every=args.progress_every, download_dir=args.download_dir)


if __name__ == "__main__":
    main()
