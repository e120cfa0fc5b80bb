"""Encoding speed: ScaleDAG's batched encoder vs Megatron-LM's tools/preprocess_data.py approach.

Both encode the same de-duplicated arXiv cond-mat train split (prepared from ../shared with the
`arxiv-cond-mat` corpus of config.yaml) with the same trained byte-level BPE tokenizer.json, with
2 workers each, into Megatron .bin/.idx files whose bytes must be identical:

  scaledag        workflow.data.tokenize.encode_jsonl: batches of documents encoded on 2 threads by
                  tiktoken's Rust BPE (workflow/data/fast_bpe.py: the same tokenizer.json converted, checked
                  exact at load; ids straight into numpy arrays), streamed into IndexedDatasetBuilder.
  megatron-hf     preprocess_data.py as the MatGPT/BLOOM teams ran it: a multiprocessing.Pool of 2
                  workers, `pool.imap(encoder.encode, fin, 32)`, each worker json-decoding one line and
                  calling its HuggingFace tokenizer (`tokenizer(text).input_ids`, as Megatron's
                  HuggingFaceTokenizer does) per document, then `builder.add_document` per document.
  megatron-rust   the same Pool loop with the bare `tokenizers.Tokenizer.encode(text).ids` per document
                  (the per-document approach at its cheapest), to separate tokenizer overhead from batching.
  megatron-lm     the real tool: tools/preprocess_data.py of a Megatron-LM checkout (--megatron-lm PATH, at
                  the tag of our megatron-core, e.g. core_v0.16.1), run unmodified with PYTHONPATH=PATH so it
                  uses the checkout's megatron/training (its HuggingFaceTokenizer wrapper, --legacy-tokenizer,
                  around the same tokenizer.json + tokenizer_config.json) and megatron/core:
                    --tokenizer-type HuggingFaceTokenizer --tokenizer-model DIR --legacy-tokenizer
                    --json-keys text --append-eod --workers 2 --log-interval 100
                  (--append-eod: our encoder ends every document with EOD). Its output must hold the same
                  documents and token ids as scaledag's; the JSON says whether it does ("identical") and,
                  where not, the first differing document and why. Megatron-LM's training package imports
                  triton (megatron/core/transformer/custom_layers/batch_invariant_kernels.py), which the
                  CPU venv lacks: install it apart (`pip install --no-deps --target DIR triton`) and pass
                  --megatron-lm-deps DIR; nothing of triton runs while preprocessing.

The machine's 2 cores are shared with other work, so the approaches run in alternating order,
round after round, and the reported ratio is the median of per-round ratios. Each run is a fresh
subprocess; its time covers the encode loop only (imports and tokenizer loading excluded), except
megatron-lm's: the real tool is run unmodified, so its wall_seconds are the whole subprocess's,
imports (torch, megatron.training), tokenizer loading in its 3 processes and Pool start included.
Its encode time (seconds) is read off its own progress clock instead (to its last "Processed N
documents" line, printed every 100 documents), less the same clock's time to the first document of a
1-document run in the same round (its Pool workers loading their tokenizers, which the others'
in-loop times exclude). speedup_wall compares whole-subprocess wall clocks of every approach
(imports included on both sides); real_tool.timing in the JSON says what each number covers.
Without --megatron-lm the megatron-lm row is absent, with the reason in the JSON and on stdout.

    # the real tool, once: a checkout at the tag of the installed megatron-core, and triton beside it
    mkdir -p /tmp/megatron-lm-0.16.1 && git -C MEGATRON_LM_GIT archive core_v0.16.1 | tar -x -C /tmp/megatron-lm-0.16.1
    pip install --no-deps --target /tmp/megatron-lm-deps triton
    python benchmarks/encode.py [--rounds 3] [--work /tmp/scaledag-encode-bench] \
        [--megatron-lm /tmp/megatron-lm-0.16.1 --megatron-lm-deps /tmp/megatron-lm-deps]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORKERS = 2
APPROACHES = ("scaledag", "megatron-hf", "megatron-rust")
REAL = "megatron-lm"  # the real tools/preprocess_data.py, run from a Megatron-LM checkout
GOAL_VS_REAL = 3.0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the Pool's workers once joined)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# -- the Megatron-LM preprocess_data.py approach, reimplemented (one encode per document) -------------


class Encoder:
    """As tools/preprocess_data.py's Encoder: the tokenizer lives in each worker process."""

    def __init__(self, tokenizer_dir: str, flavour: str):
        self.tokenizer_dir, self.flavour = tokenizer_dir, flavour

    def initializer(self):
        from workflow.data.tokenizer import eod_id, load_tokenizer

        rust = load_tokenizer(Path(self.tokenizer_dir) / "tokenizer.json")
        rust.encode_special_tokens = True
        Encoder.eod = eod_id(rust)
        if self.flavour == "megatron-hf":
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(self.tokenizer_dir)
            hf.backend_tokenizer.encode_special_tokens = True
            Encoder.tokenize = staticmethod(lambda text: hf(text).input_ids)
        else:
            Encoder.tokenize = staticmethod(lambda text: rust.encode(text, add_special_tokens=False).ids)

    def encode(self, json_line: str):
        text = json.loads(json_line)["text"]
        ids = Encoder.tokenize(text)
        ids.append(Encoder.eod)
        return ids, [len(ids)], len(json_line)


def megatron_style(jsonl: Path, tokenizer_dir: Path, out_prefix: str, flavour: str) -> dict:
    import numpy
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    from workflow.data.tokenizer import load_tokenizer

    dtype = DType.optimal_dtype(load_tokenizer(tokenizer_dir / "tokenizer.json").get_vocab_size())
    encoder = Encoder(str(tokenizer_dir), flavour)
    t_start, c0 = time.perf_counter(), cpu_seconds()
    pool = multiprocessing.Pool(WORKERS, initializer=encoder.initializer)
    pool.map(time.sleep, [0.5] * WORKERS, chunksize=1)  # every worker has loaded its tokenizer
    t0 = time.perf_counter()
    builder = IndexedDatasetBuilder(out_prefix + ".bin", dtype=dtype)
    tokens = documents = 0
    with open(jsonl, encoding="utf-8") as fin:
        for ids, lens, _ in pool.imap(encoder.encode, fin, 32):
            builder.add_document(numpy.array(ids, dtype=dtype), lens)
            tokens += len(ids)
            documents += 1
    builder.finalize(out_prefix + ".idx")
    pool.close()
    pool.join()
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": cpu_seconds() - c0,
        "tokens": tokens,
        "documents": documents,
        "startup_seconds": t0 - t_start - 0.5,
    }


def scaledag(jsonl: Path, tokenizer_dir: Path, out_prefix: str) -> dict:
    import megatron.core.datasets.indexed_dataset  # noqa: F401  (imported before the clock, as for Megatron's)

    from workflow.data.tokenize import encode_jsonl, load_encoder

    t_start, c0 = time.perf_counter(), cpu_seconds()
    encoder = load_encoder(tokenizer_dir / "tokenizer.json")  # includes the tiktoken conversion and its check
    t0 = time.perf_counter()
    counts = encode_jsonl(jsonl, encoder, out_prefix, progress_every=1e9, threads=WORKERS)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": cpu_seconds() - c0,
        "startup_seconds": t0 - t_start,
        **counts,
    }


def run_one(approach: str, jsonl: Path, tokenizer_dir: Path, out_prefix: str) -> dict:
    """One timed run in a fresh subprocess (so no approach inherits another's warm state)."""
    env = dict(
        os.environ, RAYON_NUM_THREADS=str(WORKERS), TOKENIZERS_PARALLELISM="true" if approach == "scaledag" else "false"
    )
    c0, t0 = children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            approach,
            "--jsonl",
            str(jsonl),
            "--tokenizer-dir",
            str(tokenizer_dir),
            "--out-prefix",
            out_prefix,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    wall, cpu = time.perf_counter() - t0, children_cpu_seconds() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{approach} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_seconds": wall, "process_cpu_seconds": cpu}


def children_cpu_seconds() -> float:
    """CPU time of this process's waited-for descendants (a subprocess and the workers it joined)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


# -- the real tool: Megatron-LM's tools/preprocess_data.py from a checkout ------------------------------


class RealTool:
    """tools/preprocess_data.py of a Megatron-LM checkout, run unmodified as a subprocess."""

    def __init__(self, checkout: str | os.PathLike, deps: list[str]):
        self.checkout = Path(checkout).resolve()
        self.deps = [str(Path(d).resolve()) for d in deps]
        self.script = self.checkout / "tools" / "preprocess_data.py"

    def problem(self) -> str | None:
        """Why this checkout cannot be the real tool, or None."""
        if not self.script.is_file():
            return f"{self.script}: no such file (--megatron-lm must be a Megatron-LM checkout)"
        if not (self.checkout / "megatron" / "training" / "tokenizer").is_dir():
            return f"{self.checkout}/megatron/training/tokenizer: missing (not a Megatron-LM checkout)"
        return None

    def version(self) -> dict:
        """megatron-core version of the checkout (megatron/core/package_info.py) beside the installed one."""
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed_version

        info = (self.checkout / "megatron" / "core" / "package_info.py").read_text()
        parts = {
            k: re.search(rf"^{k}\s*=\s*['\"]?([^'\"\n]*)['\"]?\s*$", info, re.M) for k in ("MAJOR", "MINOR", "PATCH")
        }
        checkout = ".".join(m.group(1).strip() if m else "?" for m in parts.values())
        try:
            installed = installed_version("megatron-core")
        except PackageNotFoundError:
            installed = None
        git = (
            subprocess.run(  # a `git archive` extraction has no .git: then only the version above tells
                ["git", "-C", str(self.checkout), "describe", "--tags", "--always"], capture_output=True, text=True
            )
            if (self.checkout / ".git").exists()
            else None
        )
        return {
            "checkout_megatron_core": checkout,
            "installed_megatron_core": installed,
            "same_version": checkout == installed,
            "git_describe": git.stdout.strip() if git and git.returncode == 0 else None,
        }

    def command(self, jsonl: Path, tokenizer_dir: Path, out_prefix: str, log_interval: int = 100) -> list[str]:
        return [
            sys.executable,
            str(self.script),
            "--input",
            str(jsonl),
            "--json-keys",
            "text",
            "--output-prefix",
            out_prefix,
            "--tokenizer-type",
            "HuggingFaceTokenizer",
            "--tokenizer-model",
            str(tokenizer_dir),
            "--legacy-tokenizer",  # megatron/training/tokenizer's _HuggingFaceTokenizer (AutoTokenizer)
            "--append-eod",  # as our encoder: every document ends with the tokenizer's EOS (eod) id
            "--workers",
            str(WORKERS),
            "--log-interval",
            str(log_interval),
        ]

    def env(self) -> dict:
        # The checkout first, so `megatron` (training and core) is the checkout's, not the installed
        # megatron-core's; then the extra packages it imports that the venv lacks (triton).
        path = [str(self.checkout), *self.deps, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        return dict(
            os.environ, PYTHONPATH=os.pathsep.join(path), RAYON_NUM_THREADS=str(WORKERS), TOKENIZERS_PARALLELISM="false"
        )

    def run(self, jsonl: Path, tokenizer_dir: Path, out_prefix: str, log_interval: int = 100) -> dict:
        """One timed run; the dataset is written to <out_prefix>_text_document.bin/.idx."""
        for ext in ("bin", "idx"):
            Path(f"{out_prefix}_text_document.{ext}").unlink(missing_ok=True)
        c0, t0 = children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(
            self.command(jsonl, tokenizer_dir, out_prefix, log_interval),
            env=self.env(),
            capture_output=True,
            text=True,
        )
        wall, cpu = time.perf_counter() - t0, children_cpu_seconds() - c0
        if proc.returncode != 0 or not Path(f"{out_prefix}_text_document.idx").is_file():
            errors = [line for line in proc.stderr.splitlines() if "Error" in line or "error:" in line]
            raise RealToolError(
                f"tools/preprocess_data.py exited {proc.returncode}: "
                + (errors[-1].strip() if errors else proc.stderr.strip()[-300:] or "no output")
            )
        startup = re.findall(r"Time to startup: ([0-9.eE+-]+)", proc.stdout)
        progress = re.findall(r"Processed (\d+) documents \(([0-9.eE+-]+) docs/s", proc.stderr)
        last = (
            {"documents": int(progress[-1][0]), "seconds": int(progress[-1][0]) / float(progress[-1][1])}
            if progress
            else None
        )
        return {
            "wall_seconds": wall,
            "process_cpu_seconds": cpu,
            "reported_startup_seconds": float(startup[-1]) if startup else None,
            "reported_progress": last,
            "prefix": f"{out_prefix}_text_document",
        }


class RealToolError(RuntimeError):
    pass


def compare_datasets(ours: str, theirs: str, jsonl: Path | None = None, specials: list[str] = ()) -> dict:
    """Whether two Megatron datasets hold the same documents and token ids, and where they first differ."""
    a_bytes = [Path(f"{ours}.{ext}").read_bytes() for ext in ("bin", "idx")]
    b_bytes = [Path(f"{theirs}.{ext}").read_bytes() for ext in ("bin", "idx")]
    if a_bytes == b_bytes:
        return {"identical": True, "byte_identical": True}
    import numpy
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    a, b = IndexedDataset(ours), IndexedDataset(theirs)
    out = {
        "byte_identical": False,
        "documents": [len(a.document_indices) - 1, len(b.document_indices) - 1],
        "tokens": [int(a.sequence_lengths.sum()), int(b.sequence_lengths.sum())],
        "dtype": [numpy.dtype(a.index.dtype).name, numpy.dtype(b.index.dtype).name],
    }

    def document(ds, i):
        lo, hi = ds.document_indices[i], ds.document_indices[i + 1]
        parts = [numpy.asarray(ds[j], numpy.int64) for j in range(lo, hi)]
        return numpy.concatenate(parts) if parts else numpy.zeros(0, numpy.int64)

    first = None
    for i in range(min(out["documents"])):
        x, y = document(a, i), document(b, i)
        if len(x) != len(y) or (x != y).any():
            first = i
            break
    if first is None:
        same = out["documents"][0] == out["documents"][1]
        out["identical"] = same  # same documents and ids; the files differ elsewhere (dtype, sequence split)
        if not same:
            out["first_differing_document"] = min(out["documents"])
            out["why"] = "one dataset has more documents (a document dropped: preprocess_data.py skips empty ones)"
        else:
            out["why"] = "same documents and token ids; the .idx differs in layout (dtype or sequence lengths)"
        return out
    x, y = document(a, first), document(b, first)
    k = next((j for j in range(min(len(x), len(y))) if x[j] != y[j]), min(len(x), len(y)))
    out.update(
        identical=False,
        first_differing_document=first,
        lengths=[len(x), len(y)],
        first_differing_token=k,
        ids_around=[x[max(0, k - 3) : k + 3].tolist(), y[max(0, k - 3) : k + 3].tolist()],
    )
    text = None
    if jsonl is not None:
        with open(jsonl, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i == first:
                    text = json.loads(line)["text"]
                    break
    literal = [t for t in specials if text and t in text]
    if literal:
        out["why"] = (
            f"the text holds the literal special token(s) {literal}: ScaleDAG encodes them as text, "
            "Megatron's HuggingFaceTokenizer as the special id"
        )
    elif len(x) == len(y) + 1 and (x[:-1] == y).all():
        out["why"] = "same ids but ScaleDAG's document ends with one more token (EOD)"
    elif len(y) == len(x) + 1 and (y[:-1] == x).all():
        out["why"] = "same ids but megatron-lm's document ends with one more token (EOD)"
    else:
        out["why"] = "different token ids (tokenizer behaviour differs)"
    return out


# -- data --------------------------------------------------------------------------------------------


def prepare(work: Path, vocab_size: int) -> tuple[Path, Path]:
    """The de-duplicated arXiv corpus and its tokenizer (built once, reused by later runs)."""
    from workflow.config import corpus_spec, load_config
    from workflow.data.corpus import prepare_corpus
    from workflow.data.tokenizer import train_tokenizer

    data = work / "arxiv-cond-mat"
    if not (data / "stats.json").is_file():
        config = load_config(REPO / "config.yaml")
        prepare_corpus(corpus_spec(config, "arxiv-cond-mat"), data, progress_every=0)
    if not (data / "tokenizer.json").is_file():
        train_tokenizer(data / "train.jsonl", data / "tokenizer.json", vocab_size=vocab_size)
    return data / "train.jsonl", data


def real_tool(args, work: Path, jsonl: Path, tokenizer_dir: Path) -> tuple[RealTool | None, str | None]:
    """The real tool, checked by one run on a 1-document file, or None and the one-line reason."""
    if args.megatron_lm is None:
        return None, (
            "megatron-lm: not run (no --megatron-lm CHECKOUT given: a Megatron-LM checkout at the tag of the "
            "installed megatron-core, e.g. core_v0.16.1)"
        )
    real = RealTool(args.megatron_lm, args.megatron_lm_deps)
    problem = real.problem()
    if problem is None:
        with open(jsonl, encoding="utf-8") as fh, open(work / "one-document.jsonl", "w", encoding="utf-8") as out:
            out.write(fh.readline())
        try:
            real.run(work / "one-document.jsonl", tokenizer_dir, str(work / "out-megatron-lm-1doc"))
        except RealToolError as exc:
            problem = str(exc)
    if problem:
        return None, f"megatron-lm: not run ({problem})"
    version = real.version()
    if not version["same_version"]:
        print(
            f"megatron-lm: warning: the checkout is megatron-core {version['checkout_megatron_core']}, "
            f"the installed one {version['installed_megatron_core']}",
            flush=True,
        )
    return real, None


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def timed_real_run(real: RealTool, work: Path, jsonl: Path, tokenizer_dir: Path, lines: int, r: int) -> dict:
    """The real tool on a 1-document file (its fixed costs; --log-interval 1, so its own clock tells how
    long its first document took: the Pool workers loading their tokenizers, then one document), then
    on the corpus. seconds: its own clock over the corpus minus that first-document time."""
    try:
        base = real.run(work / "one-document.jsonl", tokenizer_dir, str(work / "out-megatron-lm-1doc"), log_interval=1)
        result = real.run(jsonl, tokenizer_dir, str(work / "out-megatron-lm"))
    except RealToolError as exc:
        raise SystemExit(f"megatron-lm failed in round {r}: {exc}") from None
    own, first = result["reported_progress"], base["reported_progress"]
    result["own_clock_seconds"] = own["seconds"] * lines / own["documents"] if own else None  # to the last line
    result["first_document_seconds"] = first["seconds"] if first else None
    estimate = (
        result["own_clock_seconds"] - result["first_document_seconds"]
        if result["own_clock_seconds"] is not None and result["first_document_seconds"] is not None
        else None
    )
    result["seconds"] = estimate if estimate and estimate > 0 else None
    result["overhead_wall_seconds"] = base["wall_seconds"]
    result["overhead_process_cpu_seconds"] = base["process_cpu_seconds"]
    difference = result["wall_seconds"] - base["wall_seconds"]
    result["wall_minus_overhead_seconds"] = difference if difference > 0 else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--work", default="/tmp/scaledag-encode-bench")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "encode.json"))
    parser.add_argument(
        "--megatron-lm",
        metavar="CHECKOUT",
        help="a Megatron-LM checkout (at the tag of the installed megatron-core, e.g. core_v0.16.1) whose "
        "tools/preprocess_data.py runs beside the others; without it that row is absent",
    )
    parser.add_argument(
        "--megatron-lm-deps",
        metavar="DIR",
        action="append",
        default=[],
        help="a folder put on the real tool's PYTHONPATH after the checkout, holding packages it imports that "
        "the venv lacks (triton: pip install --no-deps --target DIR triton); repeatable",
    )
    parser.add_argument(
        "--jsonl",
        help="encode this JSONL instead of the arXiv split (a smoke run); its tokenizer.json and "
        "tokenizer_config.json are in --tokenizer-dir",
    )
    parser.add_argument("--tokenizer-dir", help="with --jsonl: the folder of its tokenizer (default: the JSONL's)")
    parser.add_argument("--one", choices=APPROACHES, help=argparse.SUPPRESS)
    parser.add_argument("--out-prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:  # child: one timed run
        jsonl, tok = Path(args.jsonl), Path(args.tokenizer_dir)
        result = (
            scaledag(jsonl, tok, args.out_prefix)
            if args.one == "scaledag"
            else megatron_style(jsonl, tok, args.out_prefix, args.one)
        )
        print(json.dumps(result))
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.jsonl:
        jsonl = Path(args.jsonl).resolve()
        tokenizer_dir = Path(args.tokenizer_dir).resolve() if args.tokenizer_dir else jsonl.parent
        input_file = str(jsonl)
    else:
        jsonl, tokenizer_dir = prepare(work, args.vocab_size)
        input_file = "train.jsonl of corpus arxiv-cond-mat (config.yaml)"
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        raise SystemExit(
            f"{tokenizer_dir}/tokenizer_config.json: missing (AutoTokenizer needs it beside tokenizer.json)"
        )
    specials = [t["content"] for t in json.loads((tokenizer_dir / "tokenizer.json").read_text())["added_tokens"]]
    megabytes = jsonl.stat().st_size / 1e6
    with open(jsonl, "rb") as fh:
        lines = sum(1 for _ in fh)
    load_before = os.getloadavg()
    real, real_absent = real_tool(args, work, jsonl, tokenizer_dir)
    if real_absent:
        print(real_absent, flush=True)
    approaches = APPROACHES + ((REAL,) if real else ())
    runs = {a: [] for a in approaches}
    comparisons = []
    for r in range(args.rounds):
        order = approaches if r % 2 == 0 else tuple(reversed(approaches))
        for approach in order:
            if approach == REAL:
                result = timed_real_run(real, work, jsonl, tokenizer_dir, lines, r)
            else:
                result = run_one(approach, jsonl, tokenizer_dir, str(work / f"out-{approach}"))
            result["load_average"] = round(os.getloadavg()[0], 2)
            runs[approach].append(result)
            if approach == REAL:
                print(
                    f"round {r} {approach:14s} "
                    + (f"{result['seconds']:7.2f}s" if result["seconds"] else "    n/a")
                    + f" (own clock {fmt(result['own_clock_seconds'])}s minus {fmt(result['first_document_seconds'])}s"
                    f" to its first document; wall {result['wall_seconds']:.2f}s, of which a 1-document run takes "
                    f"{result['overhead_wall_seconds']:.2f}s)",
                    flush=True,
                )
            else:
                print(
                    f"round {r} {approach:14s} {result['seconds']:7.2f}s ({result['cpu_seconds']:6.2f} cpu-s) "
                    f"{megabytes / result['seconds']:6.2f} MB/s "
                    f"{result['tokens'] / result['seconds']:10.0f} tokens/s (wall {result['wall_seconds']:.2f}s)",
                    flush=True,
                )
        for approach in APPROACHES[1:]:  # identical token ids, byte for byte
            for ext in ("bin", "idx"):
                a = (work / f"out-scaledag.{ext}").read_bytes()
                b = (work / f"out-{approach}.{ext}").read_bytes()
                assert a == b, f"{approach}.{ext} differs from scaledag.{ext}"
        if real:  # the real tool's output is compared, and reported as it is
            comparison = compare_datasets(
                str(work / "out-scaledag"), runs[REAL][-1]["prefix"], jsonl=jsonl, specials=specials
            )
            comparisons.append(comparison)
            print(f"round {r} megatron-lm vs scaledag: {json.dumps(comparison)}", flush=True)
    tokens = runs["scaledag"][0]["tokens"]
    summary = {}
    for approach in APPROACHES:
        rs = runs[approach]
        seconds = [x["seconds"] for x in rs]
        med = statistics.median(seconds)
        cpu = statistics.median(x["cpu_seconds"] for x in rs)
        summary[approach] = {
            "seconds": [round(s, 3) for s in seconds],
            "median_seconds": round(med, 3),
            "MB_per_s": round(megabytes / med, 3),
            "tokens_per_s": round(tokens / med),
            "cpu_seconds": [round(x["cpu_seconds"], 3) for x in rs],
            "median_cpu_seconds": round(cpu, 3),
            "MB_per_cpu_s": round(megabytes / cpu, 3),
            "startup_seconds": [round(x["startup_seconds"], 3) for x in rs],
            "wall_seconds": [round(x["wall_seconds"], 3) for x in rs],
            "process_cpu_seconds": [round(x["process_cpu_seconds"], 3) for x in rs],
        }
    if real:
        rs = runs[REAL]
        estimates = [x["seconds"] for x in rs if x["seconds"]]
        med = statistics.median(estimates) if estimates else None

        def rounded(key):
            return [None if x[key] is None else round(x[key], 3) for x in rs]

        summary[REAL] = {
            "seconds": rounded("seconds"),
            "median_seconds": med and round(med, 3),
            "MB_per_s": med and round(megabytes / med, 3),
            "tokens_per_s": med and round(tokens / med),
            "own_clock_seconds": rounded("own_clock_seconds"),
            "first_document_seconds": rounded("first_document_seconds"),
            "wall_seconds": rounded("wall_seconds"),
            "median_wall_seconds": round(statistics.median(x["wall_seconds"] for x in rs), 3),
            "overhead_wall_seconds": rounded("overhead_wall_seconds"),
            "wall_minus_overhead_seconds": rounded("wall_minus_overhead_seconds"),
            "reported_startup_seconds": [x["reported_startup_seconds"] for x in rs],
            "reported_progress": [x["reported_progress"] for x in rs],
            "process_cpu_seconds": rounded("process_cpu_seconds"),
            "overhead_process_cpu_seconds": rounded("overhead_process_cpu_seconds"),
        }

    def median_ratio(key: str, refs, ours_key: str | None = None, total=lambda x, key: x[key]) -> dict:
        """Median over rounds of reference[key] / scaledag[ours_key or key] (rounds where the reference
        has no value are left out)."""
        out = {}
        for a in refs:
            pairs = [(ref, ours) for ours, ref in zip(runs["scaledag"], runs[a]) if ref.get(key) is not None]
            out[f"scaledag_vs_{a}"] = (
                round(statistics.median([total(ref, key) / total(ours, ours_key or key) for ref, ours in pairs]), 2)
                if pairs
                else None
            )
        return out

    refs = approaches[1:]
    ratio = median_ratio("seconds", refs)  # megatron-lm: its own clock less its first document
    end_to_end = median_ratio("seconds", APPROACHES[1:], total=lambda x, key: x[key] + x["startup_seconds"])
    cpu_ratio = median_ratio("cpu_seconds", APPROACHES[1:])
    wall_ratio = median_ratio("wall_seconds", refs)
    process_cpu_ratio = median_ratio("process_cpu_seconds", refs)
    if real:
        vs = f"scaledag_vs_{REAL}"
        own_clock = median_ratio("own_clock_seconds", [REAL], ours_key="seconds")[vs]
        difference = median_ratio("wall_minus_overhead_seconds", [REAL], ours_key="seconds")[vs]
        real_report = {
            "approach": REAL,
            "tool": str(real.script),
            "command": " ".join(real.command(jsonl, tokenizer_dir, str(work / "out-megatron-lm"))),
            "pythonpath": [str(real.checkout), *real.deps],
            "version": real.version(),
            "identical": all(c["identical"] for c in comparisons),
            "comparison": next((c for c in comparisons if not c["identical"]), comparisons[0]),
            "speedup": {
                "encode": ratio[vs],
                "own_clock": own_clock,
                "wall_minus_overhead": difference,
                "wall": wall_ratio[vs],
                "process_cpu": process_cpu_ratio[vs],
            },
            "goal": f"scaledag >= {GOAL_VS_REAL:g}x megatron-lm (speedup.encode)",
            "goal_met": None if ratio[vs] is None else ratio[vs] >= GOAL_VS_REAL,
            "timing": "preprocess_data.py is run unmodified, so it cannot be clocked around its loop as the others "
            "are. Each round runs it as a fresh subprocess twice: on a 1-document file with --log-interval 1 "
            "(its fixed costs: interpreter start, imports of torch and megatron.training, tokenizer loading "
            "in its partition process and its 2 Pool workers, Pool start, finalize) and on the corpus. "
            "own_clock_seconds: the tool's own progress clock (from just after its Pool is created to its "
            "last 'Processed N documents' line, printed every 100 documents, scaled by documents/N); it "
            "includes the Pool workers loading their tokenizers, which the others' in-loop seconds exclude, "
            "so first_document_seconds (the same clock to the first document of the 1-document run: worker "
            "tokenizer loading + one document) is subtracted: seconds = own_clock_seconds - "
            "first_document_seconds, compared with the others' in-loop seconds (speedup.encode; "
            "speedup.own_clock without the subtraction). wall_seconds: the whole subprocess, imports and "
            "tokenizer loading included, unlike the others' in-loop seconds; speedup.wall compares it with "
            "scaledag's whole subprocess (imports included there too), speedup.wall_minus_overhead uses "
            "wall_seconds - overhead_wall_seconds (the 1-document run), a difference of two noisy walls. "
            "process_cpu: CPU seconds of the whole process trees (getrusage of the waited-for children).",
            "dependencies": "Megatron-LM's megatron/training imports triton at import time "
            "(megatron/core/transformer/custom_layers/batch_invariant_kernels.py, via training/initialize.py); "
            "the CPU venv has none, so it comes from the --megatron-lm-deps folder on the tool's PYTHONPATH "
            "only; no triton code runs while preprocessing. PYTHONPATH starts with the checkout, so the tool "
            "imports the checkout's megatron.core, not the installed one (same version: see version).",
        }
    else:
        real_report = {"approach": REAL, "absent": real_absent}
    report = {
        "benchmark": "encode the de-duplicated arXiv cond-mat train split into Megatron .bin/.idx",
        "input": {
            "file": input_file,
            "megabytes": round(megabytes, 2),
            "documents": runs["scaledag"][0]["documents"],
            "tokens": tokens,
            "tokenizer": f"byte-level BPE trained on it, vocab {args.vocab_size}"
            if not args.jsonl
            else str(tokenizer_dir / "tokenizer.json"),
        },
        "workers": WORKERS,
        "identical_token_ids": True,
        "rounds": args.rounds,
        "method": "approaches alternate order every round, each a fresh subprocess timed around the encode loop "
        "only (after imports, the Pool's workers loading their tokenizer, or ScaleDAG loading its "
        "encoder: startup_seconds, reported apart; speedup_with_startup counts it in); speedup = "
        "median over rounds of (reference seconds / scaledag seconds). The 2-core CPU "
        "was shared with other engineers' jobs while this ran, so absolute MB/s are noisy; the "
        "interleaved ratio is the comparison. cpu_time_ratio (reference CPU seconds / scaledag CPU "
        "seconds, workers and startup included) is the load-independent view of the same runs. "
        "speedup_wall and process_cpu_time_ratio compare whole subprocesses (interpreter start and imports "
        "included). megatron-lm, the real tools/preprocess_data.py, is timed from outside: see real_tool.timing.",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "approaches": summary,
        "speedup": ratio,
        "speedup_with_startup": end_to_end,
        "speedup_wall": wall_ratio,
        "cpu_time_ratio": cpu_ratio,
        "process_cpu_time_ratio": process_cpu_ratio,
        "real_tool": real_report,
        "per_round": [
            {
                a: {
                    "seconds": runs[a][r]["seconds"] and round(runs[a][r]["seconds"], 2),
                    "wall_seconds": round(runs[a][r]["wall_seconds"], 2),
                    "load_average": runs[a][r]["load_average"],
                }
                for a in approaches
            }
            for r in range(args.rounds)
        ],
        "per_round_speedup_vs_megatron_hf": [
            round(ref["seconds"] / ours["seconds"], 2) for ours, ref in zip(runs["scaledag"], runs["megatron-hf"])
        ],
        "goal": "scaledag >= 2x megatron-hf (Megatron-LM tools/preprocess_data.py approach)",
        "goal_vs_real_tool": f"scaledag >= {GOAL_VS_REAL:g}x megatron-lm (Megatron-LM's own tools/preprocess_data.py)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    from workflow.io import atomic_write_json

    atomic_write_json(args.out, report)
    print(
        json.dumps(
            {
                "speedup": ratio,
                "speedup_with_startup": end_to_end,
                "speedup_wall": wall_ratio,
                "cpu_time_ratio": cpu_ratio,
                "approaches": {a: s["MB_per_s"] for a, s in summary.items()},
                "real_tool": {k: real_report[k] for k in ("identical", "speedup", "goal_met") if k in real_report}
                or real_report["absent"],
            }
        )
    )


if __name__ == "__main__":
    main()
