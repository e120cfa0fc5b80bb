"""Tables and figures of the efficiency study (LLMs on AI accelerators, arXiv 2310.04607), from benchmark rows of any number of machines.

Rows are JSONL (one per measured point, labelled with the device read at run time), so results of
several machines are put side by side by passing all their files: every table and figure groups by
`device`. Subcommands:

  figures        block / GPT-2 / GenSLM / scaling / sparsity tables (CSV) and figures (PNG)

e.g. `python -m analysis.efficiency figures --block a.jsonl b.jsonl --gpt2 c.jsonl --genslm d.jsonl --out-dir out/`.
GPT-2 and GenSLM rows come from the same benchmark (whole training steps, workflow/bench/train.py)
and get the same three figures: throughput vs sequence length, vs gradient accumulation at a fixed
global batch, and data-parallel scaling.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import save_figure, write_csv


def load_rows(paths: list[str]) -> pd.DataFrame:
    rows = []
    for path in paths:
        if not path:
            continue
        for i, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ScaleDAGError(f"{path}:{i}: not a JSON row ({exc.msg})") from None
    return pd.DataFrame(rows)


# Figure titles of the training workloads (workflow/studies/benchmarks.py TRAIN_WORKLOADS).
WORKLOAD_TITLES = {"gpt2": "GPT-2", "genslm": "GenSLM (codons)"}


def scaling_efficiency(rows: pd.DataFrame) -> pd.DataFrame:
    """Data-parallel scaling efficiency thr(n) / (n * thr(1)) per workload, device type, size and batch."""
    if "workload" not in rows:  # rows written before workloads had names were GPT-2's
        rows = rows.assign(workload="gpt2")
    keys = ["workload", "device", "size", "seq_length", "micro_batch_size", "grad_accum"]
    d = rows[(rows["sweep"] == "devices") & (rows.get("status", "ok") == "ok")] if len(rows) else rows
    out = []
    for key, g in d.groupby(keys) if len(d) else []:
        one = g[g["devices"] == 1]
        if one.empty:
            raise ScaleDAGError(f"scaling efficiency: no 1-device row for {dict(zip(keys, key))}")
        base = float(one["tokens_per_s"].iloc[0])
        for _, r in g.sort_values("devices").iterrows():
            n = int(r["devices"])
            out.append(
                {
                    **dict(zip(keys, key)),
                    "devices": n,
                    "tokens_per_s": r["tokens_per_s"],
                    "speedup": r["tokens_per_s"] / base,
                    "scaling_efficiency": r["tokens_per_s"] / (n * base),
                }
            )
    return pd.DataFrame(out, columns=keys + ["devices", "tokens_per_s", "speedup", "scaling_efficiency"])


def sparsity_table(block: pd.DataFrame) -> pd.DataFrame:
    """Dense vs 2:4 sparse per point: speed-ups where supported, the reason where not."""
    keys = ["device", "arch", "hidden", "seq_length", "micro_batch_size", "dtype"]
    if block.empty:
        return pd.DataFrame(
            columns=keys
            + ["status", "dense_fwd_bwd_ms", "sparse_fwd_bwd_ms", "speedup_fwd", "speedup_fwd_bwd", "reason"]
        )
    dense = block[block["mode"] == "dense"].set_index(keys)
    rows = []
    for _, r in block[block["mode"] == "sparse24"].iterrows():
        k = tuple(r[c] for c in keys)
        d = dense.loc[k] if k in dense.index else None
        ok = r["status"] == "ok"
        rows.append(
            {
                **dict(zip(keys, k)),
                "status": r["status"],
                "dense_fwd_bwd_ms": None if d is None else d["fwd_bwd_ms"],
                "sparse_fwd_bwd_ms": r.get("fwd_bwd_ms") if ok else None,
                "speedup_fwd": r.get("speedup_fwd") if ok else None,
                "speedup_fwd_bwd": r.get("speedup_fwd_bwd") if ok else None,
                "reason": r.get("reason"),
            }
        )
    return pd.DataFrame(rows)


_BLOCK_COLS = [
    "device",
    "device_type",
    "dtype",
    "arch",
    "mode",
    "status",
    "hidden",
    "heads",
    "ffn_hidden",
    "seq_length",
    "micro_batch_size",
    "fwd_ms",
    "fwd_bwd_ms",
    "tokens_per_s",
    "tflops",
    "peak_memory_mb",
    "activation_mb",
    "torch",
    "megatron_core",
    "cuda",
    "hip",
    "host",
    "scale",
]
_TRAIN_COLS = [
    "workload",
    "corpus",
    "device",
    "dtype",
    "sweep",
    "size",
    "layers",
    "hidden",
    "heads",
    "parameters",
    "seq_length",
    "micro_batch_size",
    "grad_accum",
    "devices",
    "global_batch_size",
    "step_ms",
    "tokens_per_s",
    "tokens_per_s_per_device",
    "tflops_per_device_chinchilla",
    "mfu_chinchilla",
    "peak_memory_mb",
    "torch",
    "megatron_core",
    "host",
    "scale",
]


def _cols(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return df[[c for c in cols if c in df.columns]]


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_axis_off()


def _train_figures(plt, rows: pd.DataFrame, workload: str, out: Path) -> None:
    """The three figures of one training workload: vs sequence length, vs gradient accumulation,
    data-parallel scaling. A workload without rows at this scale gets figures that say so."""
    title = WORKLOAD_TITLES.get(workload, workload)
    missing = f"no {title} benchmark rows at this scale (studies.<s>.benchmarks.{workload}.<scale> absent)"

    def sweep_figure(sweep: str, x: str, label, xlabel: str, what: str, name: str) -> None:
        """tokens/s against `x` over one sweep's rows, a line per (device, size)."""
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        part = rows[rows["sweep"] == sweep] if len(rows) else rows
        for (dev, size), g in part.groupby(["device", "size"]) if len(part) else []:
            g = g.sort_values(x)
            ax.plot(g[x], g["tokens_per_s"], "o-", ms=3, label=label(dev, size, g))
        if len(part):
            ax.set_xscale("log", base=2)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("training tokens / s")
            ax.set_title(f"{title}{what}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        else:
            _empty(ax, missing)
        fig.tight_layout()
        save_figure(fig, out / "figures" / f"{workload}_{name}.png")
        plt.close(fig)

    sweep_figure(
        "seq",
        "seq_length",
        lambda dev, size, g: f"{size} ({dev})",
        "sequence length (tokens)",
        " training throughput vs sequence length",
        "seq_length",
    )
    sweep_figure(
        "grad_accum",
        "grad_accum",
        lambda dev, size, g: f"{size} ({dev}), global batch {int(g['global_batch_size'].iloc[0])}",
        "gradient-accumulation steps (micro-batch = global / steps)",
        ": sensitivity to gradient accumulation",
        "grad_accum",
    )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    scaling = scaling_efficiency(rows) if len(rows) else pd.DataFrame()
    for (dev, size, s, m), g in (
        scaling.groupby(["device", "size", "seq_length", "micro_batch_size"]) if len(scaling) else []
    ):
        label = f"{size} seq {s} b{m} ({dev})"
        axes[0].plot(g["devices"], g["tokens_per_s"], "o-", ms=3, label=label)
        axes[1].plot(g["devices"], g["scaling_efficiency"], "o-", ms=3, label=label)
    if len(scaling):
        axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
        for ax, ylabel in zip(axes, ("training tokens / s", "scaling efficiency thr(n) / (n thr(1))")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("data-parallel devices")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{title}: data-parallel scaling (weak: micro-batch per device fixed)", fontsize=10)
    else:
        for ax in axes:
            _empty(ax, missing)
    fig.tight_layout()
    save_figure(fig, out / "figures" / f"{workload}_scaling.png")
    plt.close(fig)


def figures(block_paths: list[str], train_paths: dict[str, list[str]], out_dir: str) -> dict[str, pd.DataFrame]:
    """Every table and figure of the study. `train_paths`: workload -> its row files (GPT-2, GenSLM)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    block = load_rows(block_paths)
    train = {w: load_rows(paths) for w, paths in train_paths.items()}
    for w, df in train.items():  # rows written before workloads had names belong to the flag they came by
        if len(df) and "workload" not in df:
            train[w] = df.assign(workload=w)
    if block.empty and all(df.empty for df in train.values()):
        raise ScaleDAGError("efficiency figures: no benchmark rows in the given files")
    measured = [df for df in train.values() if len(df)]
    scaling = scaling_efficiency(pd.concat(measured, ignore_index=True) if measured else pd.DataFrame())
    sparse = sparsity_table(block)
    tables = {
        "block": _cols(block, _BLOCK_COLS),
        **{w: _cols(df, _TRAIN_COLS) for w, df in train.items()},
        "scaling": scaling,
        "sparsity": sparse,
    }
    for name, df in tables.items():
        write_csv(df, out / "tables" / f"{name}.csv")

    # Block: tokens/s vs sequence length, one line per (device, arch, hidden, micro-batch), dense only.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    dense = block[block["mode"] == "dense"] if len(block) else block
    for (dev, arch, hidden, micro), g in (
        dense.groupby(["device", "arch", "hidden", "micro_batch_size"]) if len(dense) else []
    ):
        g = g.sort_values("seq_length")
        label = f"{dev} {arch} h{hidden} b{micro}"
        axes[0].plot(g["seq_length"], g["tokens_per_s"], "o-", ms=3, label=label)
        axes[1].plot(g["seq_length"], g["tflops"], "o-", ms=3, label=label)
    for ax, ylabel in zip(axes, ("tokens / s", "achieved TFLOP/s (Chinchilla count)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle("Transformer block (one Megatron-core layer), forward + backward", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "figures" / "block_throughput.png")
    plt.close(fig)

    for w, df in train.items():
        _train_figures(plt, df, w, out)

    # Dense vs 2:4 sparse.
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ok = sparse[sparse["status"] == "ok"] if len(sparse) else sparse
    if len(ok):
        for (dev, arch, hidden), g in ok.groupby(["device", "arch", "hidden"]):
            g = g.groupby("seq_length", as_index=False)["speedup_fwd_bwd"].median()
            ax.plot(g["seq_length"], g["speedup_fwd_bwd"], "o-", ms=3, label=f"{dev} {arch} h{hidden}")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length")
        ax.set_ylabel("speed-up of 2:4 sparse over dense (fwd + bwd)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    unsupported = sparse[sparse["status"] != "ok"] if len(sparse) else sparse
    if len(unsupported):
        devices = ", ".join(sorted(set(unsupported["device"].astype(str))))
        reason = str(unsupported["reason"].iloc[0])[:160]
        note = f"2:4 sparsity unsupported on {devices} ({len(unsupported)} points):\n{reason}"
        if len(ok):
            ax.set_title(note, fontsize=6)
        else:
            _empty(ax, note)
    if not len(sparse):
        _empty(ax, "no sparsity rows")
    fig.tight_layout()
    save_figure(fig, out / "figures" / "sparsity.png")
    plt.close(fig)
    return tables


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("figures")
    f.add_argument("--block", nargs="*", default=[])
    f.add_argument("--gpt2", nargs="*", default=[], help="GPT-2 training-throughput rows")
    f.add_argument("--genslm", nargs="*", default=[], help="GenSLM training-throughput rows")
    f.add_argument(
        "--external",
        nargs="*",
        default=[],
        help="rows from other machines, by file name: efficiency_{block,gpt2,genslm}_<device>.jsonl",
    )
    f.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "figures":
        ext = [e for e in args.external if e]

        def external(kind: str) -> list[str]:
            return [e for e in ext if Path(e).name.startswith(f"efficiency_{kind}_")]

        train = {w: getattr(args, w) + external(w) for w in WORKLOAD_TITLES}
        tables = figures(args.block + external("block"), train, args.out_dir)
        print({k: len(v) for k, v in tables.items()})


if __name__ == "__main__":
    main()
