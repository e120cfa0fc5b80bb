"""Paper scale as far as a CPU's memory allows: every pretrain run's model built for real, checked.

Two checks, run under torchrun with one process per tensor-parallel rank (gloo):

`models`: every distinct model of the scale's pretrain runs (as the cost plan lists them) is built by
the trainer's own `build_gpt_model` at its configured TP on the meta device (shapes, no storage: the
6.7B model costs no memory), then
  - parameters: the TP-sharded parameters summed over ranks plus the replicated ones (norms, and
    biases Megatron does not split) must equal the closed-form count (`isoflop.counts`), and every
    rank must hold the same share;
  - FLOPs: one training step on one sequence (forward + backward) is counted by torch's
    FlopCounterMode on the meta tensors (on the whole model for named shapes; for the sweep's
    generated shapes from 1- and 2-layer builds, since FLOPs are linear in depth), summed over
    ranks, and must equal appendix F's matmul
    terms, 3 x (layers x (QKV + logits + reduction + projection + dense) + final logits), exactly as
    `tests/unit/test_flops.py` checks the reference model. Appendix F's embedding and softmax terms
    are not matmuls and the counter does not see them; the row reports the full count beside it.
`layers`: one transformer layer of each named paper shape (its real hidden, heads, FFN and sequence
length, a 512-token vocabulary so embeddings stay small) runs a real fp32 forward + backward at the
run's TP. The loss must be the one an untrained model's Gaussian logits give (ln V + std^2 hidden / 2,
derived in `check_layer`), every parameter must get a finite, non-zero gradient, and the ranks must
agree on the loss.

Closed-loop runs are planned by the fit, so they are not known before it runs and are not built here.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from workflow.errors import ScaleDAGError, main_guard

LAYER_VOCAB = 512  # the layer check's vocabulary: a 4096 x 52000 embedding would dwarf one layer


def paper_models(config: dict) -> dict[str, dict]:
    """Model key -> {"spec": one pretrain spec, "runs": every study/run that trains this model}."""
    from workflow import config as cfg
    from workflow.hpc import plan

    models: dict[str, dict] = {}
    for job in plan.dag_jobs(config):
        if job["rule"] != "pretrain" or "_planned-" in job["job"]:
            continue
        study, run = job["job"].split("/", 1)
        spec = cfg.pretrain_spec(config, study, run)
        key = json.dumps(
            [spec["arch"], spec.get("arch_overrides") or {}, spec["shape"], spec["vocab_size"], spec["parallel"]],
            sort_keys=True,
        )
        models.setdefault(key, {"spec": spec, "runs": []})["runs"].append(job["job"])
    return models


def named_layer_shapes(config: dict, models: dict[str, dict]) -> dict[str, dict]:
    """One spec per named shape (config `shapes:`) and architecture the scale trains: the layer check."""
    out: dict[str, dict] = {}
    for m in models.values():
        spec = m["spec"]
        name = spec["shape"].get("name", "")
        if name in config["shapes"]:
            out.setdefault(f"{spec['arch']}:{name}", spec)
    return out


def _label(spec: dict) -> str:
    """`llama:matgpt-6.7b`, with the run's architecture overrides when it has any."""
    over = ",".join(f"{k}={v}" for k, v in sorted((spec.get("arch_overrides") or {}).items()))
    return f"{spec['arch']}:{spec['shape'].get('name', '')}" + (f"[{over}]" if over else "")


def _matmul_flops(mspec) -> int:
    """Appendix F's matmul terms of one training step on one sequence (forward + 2x backward)."""
    from workflow.model.flops import Shape, chinchilla_flops_breakdown

    t = chinchilla_flops_breakdown(Shape.of(mspec))
    per_layer = t["attention_qkv"] + t["attention_logits"] + t["attention_reduction"] + t["attention_project"]
    return 3 * (mspec.layers * (per_layer + t["dense"]) + t["final_logits"])


def _gather(values: list[float]) -> list[list[float]]:
    """Each rank's `values`, rank by rank (float64: counts up to 2^53 stay exact)."""
    import torch

    mine = torch.tensor(values, dtype=torch.float64)
    out = [torch.zeros_like(mine) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(out, mine)
    return [t.tolist() for t in out]


def _meta_model(mspec, layers: int, tp: int):
    import dataclasses

    import torch

    from workflow.model.gpt import build_gpt_model

    with torch.device("meta"):
        return build_gpt_model(dataclasses.replace(mspec, layers=layers), tp=tp, pp=1)


def _step_flops(model, mspec) -> int:
    """This rank's matmul FLOPs of a forward + backward over one sequence, on meta tensors."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        tokens = torch.zeros(1, mspec.seq_length, dtype=torch.long)
        position_ids = torch.arange(mspec.seq_length).unsqueeze(0)
    with FlopCounterMode(display=False) as counter:
        model(tokens, position_ids, None, labels=tokens).sum().backward()
    return counter.get_total_flops()


def check_model(spec: dict, full_depth_flops: bool = True) -> dict:
    """Build one run's model on the meta device at its TP and count its parameters and FLOPs
    (on the whole model, or with `full_depth_flops=False` from 1- and 2-layer builds)."""
    from workflow.model.gpt import make_model_spec, tp_param_split
    from workflow.studies.isoflop import counts

    mspec = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec.get("arch_overrides"))
    tp, pp = int(spec["parallel"]["tp"]), int(spec["parallel"]["pp"])
    if pp != 1:
        raise ScaleDAGError(f"build_check: pp={pp}: only pipeline-parallel size 1 is built here")
    model = _meta_model(mspec, mspec.layers, tp)
    if full_depth_flops:
        flops = _step_flops(model, mspec)
    else:
        # FLOPs are linear in depth (the same layer repeated): count 1- and 2-layer builds of this
        # width, heads, vocabulary and sequence, then F(L) = F(1) + (L - 1) (F(2) - F(1)).
        one, two = (_step_flops(_meta_model(mspec, k, tp), mspec) for k in (1, 2))
        flops = one + (mspec.layers - 1) * (two - one)
    ranks = [[int(v) for v in r] for r in _gather([*tp_param_split(model), flops])]
    sharded = [r[0] for r in ranks]
    replicated = [r[1] for r in ranks]
    built = sum(sharded) + replicated[0]
    closed = counts(mspec)
    counted_flops = sum(r[2] for r in ranks)
    matmul_flops = _matmul_flops(mspec)
    return {
        "model": _label(spec),
        "tp": tp,
        "params_built": built,
        "params_closed_form": closed["params"],
        "params_ok": built == closed["params"] and len(set(sharded)) == 1 and len(set(replicated)) == 1,
        "sharded_per_rank": sharded[0],
        "replicated_per_rank": replicated[0],
        "flops_counted": counted_flops,
        "flops_matmul_closed_form": matmul_flops,
        "flops_ok": counted_flops == matmul_flops,
        "flops_counted_at": "full depth" if full_depth_flops else "1 and 2 layers",
        "flops_per_token_chinchilla": closed["flops_per_token_chinchilla"],
    }


def check_layer(spec: dict, seed: int = 1234) -> dict:
    """One layer of a paper shape: a real fp32 forward + backward at the run's TP."""
    import torch

    from workflow.model import megatron_cpu
    from workflow.model.gpt import build_gpt_model, make_model_spec

    shape = {**spec["shape"], "layers": 1}
    mspec = make_model_spec(spec["arch"], shape, LAYER_VOCAB, spec.get("arch_overrides"))
    tp = int(spec["parallel"]["tp"])
    megatron_cpu.initialize_rng(seed)
    start = time.perf_counter()
    model = build_gpt_model(mspec, tp=tp, pp=1)
    g = torch.Generator().manual_seed(seed)  # the same tokens on every rank
    tokens = torch.randint(0, LAYER_VOCAB, (1, mspec.seq_length), generator=g)
    position_ids = torch.arange(mspec.seq_length).unsqueeze(0)
    loss = model(tokens, position_ids, None, labels=tokens).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    grads_ok = all(gr is not None and bool(torch.isfinite(gr).all()) and float(gr.abs().sum()) > 0 for gr in grads)
    elapsed = time.perf_counter() - start
    # At init the final norm's output has unit variance per element and the output matrix is
    # N(0, std^2), so each logit is ~N(0, s^2) with s^2 = std^2 x hidden, and the expected
    # cross-entropy of Gaussian logits is ln V + s^2 / 2: at hidden 4096, std 0.02, that is
    # ln 512 + 0.82 = 7.06, not ln V. Within 2%, with the ranks agreeing exactly.
    expected = math.log(LAYER_VOCAB) + mspec.init_std**2 * mspec.hidden / 2
    values = [r[0] for r in _gather([float(loss)])]
    return {
        "layer": _label(spec),
        "tp": tp,
        "hidden": mspec.hidden,
        "heads": mspec.heads,
        "ffn_hidden": mspec.ffn_hidden,
        "seq_length": mspec.seq_length,
        "loss": values[0],
        "loss_expected": expected,
        "loss_ok": all(math.isfinite(v) for v in values)
        and len(set(values)) == 1
        and abs(values[0] - expected) < 0.02 * expected,
        "grads_ok": grads_ok,
        "seconds": round(elapsed, 2),
    }


def _init(tp: int) -> None:
    import torch
    from megatron.core import parallel_state

    from workflow.model import megatron_cpu

    megatron_cpu.activate()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    world = torch.distributed.get_world_size()
    if world != tp:
        raise ScaleDAGError(f"build_check: the runs use TP={tp}; launch {tp} processes (torchrun), not {world}")
    parallel_state.initialize_model_parallel(tp, 1)


def run(config: dict, what: str, out: Path, only: list[str] | None = None) -> list[dict]:
    """Check every paper model (`models`) or named-shape layer (`layers`); rank 0 writes `out` (JSON)."""
    import torch

    models = paper_models(config)
    if what == "models":
        specs = {k: m["spec"] for k, m in models.items()}
    else:
        specs = named_layer_shapes(config, models)
    if only:
        specs = {k: s for k, s in specs.items() if any(o in k for o in only)}
    if not specs:
        raise ScaleDAGError(f"build_check: no {what} to check at scale {config['scale']}")
    tps = {int(s["parallel"]["tp"]) for s in specs.values()}
    if len(tps) != 1:
        raise ScaleDAGError(f"build_check: runs at several TP sizes {sorted(tps)}; check one at a time (--only)")
    _init(tps.pop())
    rank = torch.distributed.get_rank()
    rows = []
    for i, spec in enumerate(specs.values(), 1):
        if what == "models":
            # Megatron asks torch.cuda.current_device() for the device of a few buffers (rotary
            # frequencies, masks): on the meta device they must be meta too.
            with _current_device("meta"):
                # Named shapes (MatGPT, BLOOM, GenSLM, GPT-2) are counted at full depth; the sweep's
                # generated shapes from 1 and 2 layers, which is ~5x faster over the 60-odd of them.
                row = check_model(spec, full_depth_flops=spec["shape"].get("name") in config["shapes"])
        else:
            row = check_layer(spec)
        rows.append(row)
        if rank == 0:
            ok = all(v for k, v in row.items() if k.endswith("_ok"))
            name = row.get("model") or row.get("layer")
            print(f"[{i}/{len(specs)}] {what[:-1]} {name}: {'ok' if ok else 'MISMATCH'} {row}", flush=True)
    if rank == 0:
        from workflow.io import atomic_write_json

        atomic_write_json(out, {"scale": config["scale"], "check": what, "rows": rows})
    torch.distributed.barrier()
    return rows


class _current_device:
    """Temporarily answer torch.cuda.current_device() with another device (the CPU shim's is `cpu`)."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        import torch

        self.saved = torch.cuda.current_device
        torch.cuda.current_device = lambda: torch.device(self.device)

    def __exit__(self, *exc):
        import torch

        torch.cuda.current_device = self.saved


@main_guard
def main(argv: list[str] | None = None) -> None:
    from workflow.config import load_config, validate_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["models", "layers"])
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--scale", default="paper")
    ap.add_argument("--only", nargs="*", help="check only models whose key contains one of these strings")
    ap.add_argument("--out", required=True, help="JSON rows (written by rank 0)")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    config["scale"] = args.scale
    rows = run(validate_config(config), args.what, Path(args.out), args.only)
    bad = [r for r in rows if not all(v for k, v in r.items() if k.endswith("_ok"))]
    if bad:
        raise ScaleDAGError(f"build_check {args.what}: {len(bad)} of {len(rows)} do not match: {bad[0]}")


if __name__ == "__main__":
    main()
