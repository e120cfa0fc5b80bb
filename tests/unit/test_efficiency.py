"""Sweep expansion of the efficiency study and the tables computed from benchmark rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.efficiency import load_rows, scaling_efficiency, sparsity_table
from conftest import REPO
from workflow.config import load_config
from workflow.dag import EFFICIENCY_FIGURES as DAG_FIGURES
from workflow.errors import ScaleDAGError
from workflow.studies import benchmarks as eff


@pytest.fixture(scope="module")
def configs():
    return {s: load_config(REPO / "config.yaml", {"scale": s}) for s in ("tiny", "small", "paper")}


def test_block_points_are_the_full_grid(configs):
    sweep = eff.block_sweep(configs["tiny"], "efficiency")
    points = eff.block_points(sweep)
    assert len(points) == len(sweep["seq_length"]) * len(sweep["micro_batch_size"]) * len(sweep["hidden"])
    assert {(p["hidden"], p["seq_length"], p["micro_batch_size"]) for p in points} == {
        (h, s, m) for h in sweep["hidden"] for s in sweep["seq_length"] for m in sweep["micro_batch_size"]
    }
    assert all(p["hidden"] == p["heads"] * sweep["head_dim"] for p in points)
    paper = eff.block_sweep(configs["paper"], "efficiency")
    assert min(paper["seq_length"]) == 128 and max(paper["seq_length"]) == 8192


def test_block_points_reject_a_hidden_size_not_divisible_by_the_head_size():
    with pytest.raises(ScaleDAGError, match="hidden 100 is not a multiple of head_dim 32"):
        eff.block_points({"hidden": [100], "seq_length": [64], "micro_batch_size": [1], "head_dim": 32})


def test_gpt2_jobs_expand_the_three_sweeps(configs):
    cfg = configs["tiny"]
    g = eff.train_sweep(cfg, "efficiency", "gpt2")
    jobs = eff.train_jobs(cfg, "efficiency", "gpt2")
    focus = g["sizes"][0]
    assert set(jobs) == {f"{s}.dp1" for s in g["sizes"]} | {f"{focus}.dp{n}" for n in g["devices"] if n > 1}
    points = [p for pts in jobs.values() for p in pts]
    seq = [p for p in points if p["sweep"] == "seq"]
    assert {(p["size"], p["seq_length"]) for p in seq} == {(s, n) for s in g["sizes"] for n in g["seq_length"]}
    accum = sorted((p for p in points if p["sweep"] == "grad_accum"), key=lambda p: p["grad_accum"])
    assert [p["grad_accum"] for p in accum] == [1, 2, 4, 8, 16]
    # fixed global batch: micro-batch x accumulation steps is the same for every point
    assert {p["micro_batch_size"] * p["grad_accum"] for p in accum} == {g["global_batch_size"]}
    devices = [p for p in points if p["sweep"] == "devices"]
    assert sorted(p["devices"] for p in devices) == sorted(g["devices"])
    assert all(len(jobs[f"{focus}.dp{n}"]) == 1 for n in g["devices"] if n > 1)


def test_paper_sweeps_cover_the_studys_sizes_and_several_nodes(configs):
    cfg = configs["paper"]
    g = eff.train_sweep(cfg, "efficiency", "gpt2")
    assert g["sizes"] == ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"]
    assert max(g["devices"]) > g["devices_per_node"] and g["grad_accum"] == [1, 2, 4, 8, 16]


def test_genslm_sweeps_read_the_gene_corpus_with_the_codon_vocabulary(configs):
    """GenSLM's points run through the same sweeps as GPT-2, but on codons: the gene corpus's tokens,
    its 69-token vocabulary, GenSLM's 2,048-codon context at the top of the paper ladder."""
    for scale, corpus in (("tiny", "genes-synthetic"), ("small", "genes"), ("paper", "genes")):
        cfg = configs[scale]
        assert eff.train_workloads(cfg, "efficiency") == ["gpt2", "genslm"]
        g = eff.train_sweep(cfg, "efficiency", "genslm")
        assert g["corpus"] == corpus and g["arch"] == "gpt-neox"
        job = next(iter(eff.train_jobs(cfg, "efficiency", "genslm")))
        spec = eff.train_spec(cfg, "efficiency", "genslm", job)
        assert spec["vocab_size"] == 69 and spec["data"]["train_prefix"].endswith(f"data/{corpus}/tokens/train")
        assert spec["scratch"].endswith(f"efficiency/genslm/scratch/{job}")
        assert eff.train_sweep(cfg, "efficiency", "gpt2")["corpus"] == cfg["scales"][scale]["corpus"]
    paper = eff.train_sweep(configs["paper"], "efficiency", "genslm")
    assert max(paper["seq_length"]) == 2048 and paper["sizes"] == ["genslm-25m", "genslm-250m", "genslm-2.5b"]
    assert "genslm-250m.dp64" in eff.train_jobs(configs["paper"], "efficiency", "genslm")


def test_an_unknown_workload_or_workload_corpus_is_named(configs):
    with pytest.raises(ScaleDAGError, match="benchmark workload 'bert'"):
        eff.train_sweep(configs["tiny"], "efficiency", "bert")
    raw = load_config(REPO / "config.yaml", {"scale": "tiny"})
    raw["studies"]["efficiency"]["benchmarks"]["genslm"]["corpus"]["tiny"] = "nope"
    with pytest.raises(ScaleDAGError, match=r"benchmarks.genslm.corpus.tiny: unknown corpus 'nope'"):
        eff.train_sweep(raw, "efficiency", "genslm")


def test_launchers_python_torchrun_and_srun(configs):
    tiny, paper = configs["tiny"], configs["paper"]
    assert eff.train_launcher(tiny, "efficiency", "gpt2", "gpt2-small-tiny.dp1") == "python -m workflow.warm"
    assert (
        eff.train_launcher(tiny, "efficiency", "gpt2", "gpt2-small-tiny.dp2")
        == "python -m torch.distributed.run --standalone --nproc_per_node 2"
    )
    srun = eff.train_launcher(paper, "efficiency", "gpt2", "gpt2-small.dp64")
    assert "srun -N 8 -n 64" in srun and srun.endswith(" python")
    assert eff.train_nodes(paper, "efficiency", "gpt2", "gpt2-small.dp64") == 8
    with pytest.raises(ScaleDAGError, match="several nodes"):
        eff.train_launcher(tiny, "efficiency", "gpt2", "gpt2-small-tiny.dp4")


def test_train_spec_names_an_unknown_job(configs):
    with pytest.raises(ScaleDAGError, match="no gpt2 benchmark job 'nope.dp1'"):
        eff.train_spec(configs["tiny"], "efficiency", "gpt2", "nope.dp1")


def _gpt2_row(device, n, tps, **kw):
    return {
        "device": device,
        "size": "s",
        "seq_length": 128,
        "micro_batch_size": 4,
        "grad_accum": 1,
        "sweep": "devices",
        "devices": n,
        "tokens_per_s": tps,
        **kw,
    }


def test_scaling_efficiency_is_throughput_over_n_times_single_device():
    df = pd.DataFrame(
        [
            _gpt2_row("A", 1, 100.0),
            _gpt2_row("A", 2, 180.0),
            _gpt2_row("A", 8, 640.0),
            _gpt2_row("B", 1, 50.0),
            _gpt2_row("B", 4, 200.0),
            {**_gpt2_row("A", 1, 999.0), "sweep": "seq"},
        ]
    )
    out = scaling_efficiency(df).set_index(["device", "devices"])
    assert out.loc[("A", 1), "scaling_efficiency"] == 1.0
    assert out.loc[("A", 2), "scaling_efficiency"] == pytest.approx(0.9)
    assert out.loc[("A", 8), "scaling_efficiency"] == pytest.approx(0.8)
    assert out.loc[("A", 8), "speedup"] == pytest.approx(6.4)
    assert out.loc[("B", 4), "scaling_efficiency"] == pytest.approx(1.0)
    assert len(out) == 5  # the seq-sweep row is not a scaling point


def test_scaling_efficiency_needs_the_single_device_row():
    with pytest.raises(ScaleDAGError, match="no 1-device row"):
        scaling_efficiency(pd.DataFrame([_gpt2_row("A", 2, 180.0)]))


def test_sparsity_table_pairs_dense_and_sparse_and_keeps_the_reason():
    key = {"device": "X", "arch": "llama", "hidden": 64, "seq_length": 128, "micro_batch_size": 1, "dtype": "bf16"}
    rows = pd.DataFrame(
        [
            {**key, "mode": "dense", "status": "ok", "fwd_bwd_ms": 2.0},
            {
                **key,
                "mode": "sparse24",
                "status": "ok",
                "fwd_bwd_ms": 1.6,
                "speedup_fwd": 1.5,
                "speedup_fwd_bwd": 1.25,
                "reason": None,
            },
            {**key, "device": "cpu", "mode": "dense", "status": "ok", "fwd_bwd_ms": 9.0},
            {**key, "device": "cpu", "mode": "sparse24", "status": "unsupported", "reason": "needs CUDA"},
        ]
    )
    t = sparsity_table(rows).set_index("device")
    assert t.loc["X", "speedup_fwd_bwd"] == 1.25 and t.loc["X", "dense_fwd_bwd_ms"] == 2.0
    assert t.loc["cpu", "status"] == "unsupported" and t.loc["cpu", "reason"] == "needs CUDA"
    assert pd.isna(t.loc["cpu", "speedup_fwd_bwd"])


def test_rows_from_several_machines_concatenate(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(_gpt2_row("cpu", 1, 10.0)) + "\n")
    b.write_text(json.dumps(_gpt2_row("NVIDIA H100 80GB HBM3", 1, 1e5)) + "\n\n")
    df = load_rows([str(a), str(b), ""])
    assert sorted(df["device"]) == ["NVIDIA H100 80GB HBM3", "cpu"]
    b.write_text("{broken\n")
    with pytest.raises(ScaleDAGError, match=r"b.jsonl:1: not a JSON row"):
        load_rows([str(b)])


def test_figures_from_two_machines_one_with_sparse_kernels(tmp_path):
    """The GPU branches (supported 2:4 rows, multi-device scaling) drawn from rows as a GPU writes them."""
    from analysis.efficiency import figures

    block, gpt2 = [], []
    for dev, sparse_ok in (("NVIDIA H100 80GB HBM3", True), ("cpu", False)):
        for seq in (128, 256):
            key = {
                "device": dev,
                "arch": "llama",
                "hidden": 768,
                "heads": 12,
                "seq_length": seq,
                "micro_batch_size": 1,
                "dtype": "bf16",
                "scale": "small",
            }
            block.append(
                {
                    **key,
                    "mode": "dense",
                    "status": "ok",
                    "fwd_ms": 1.0,
                    "fwd_bwd_ms": 3.0,
                    "tokens_per_s": seq / 3e-3,
                    "tflops": 1.0,
                }
            )
            block.append(
                {
                    **key,
                    "mode": "sparse24",
                    "status": "ok" if sparse_ok else "unsupported",
                    "reason": None if sparse_ok else "needs CUDA",
                    **(
                        {"fwd_ms": 0.7, "fwd_bwd_ms": 2.5, "speedup_fwd": 1 / 0.7, "speedup_fwd_bwd": 1.2}
                        if sparse_ok
                        else {}
                    ),
                }
            )
        for sweep, seq, micro, acc, n in (
            ("seq", 128, 8, 1, 1),
            ("seq", 256, 8, 1, 1),
            ("grad_accum", 128, 16, 1, 1),
            ("grad_accum", 128, 8, 2, 1),
            ("devices", 128, 8, 1, 1),
            ("devices", 128, 8, 1, 4),
        ):
            gpt2.append(
                {
                    "device": dev,
                    "size": "gpt2-small",
                    "sweep": sweep,
                    "seq_length": seq,
                    "micro_batch_size": micro,
                    "grad_accum": acc,
                    "devices": n,
                    "global_batch_size": micro * acc * n,
                    "tokens_per_s": 1000.0 * n * (0.9 if n > 1 else 1.0),
                    "scale": "small",
                }
            )
    (tmp_path / "block.jsonl").write_text("".join(json.dumps(r) + "\n" for r in block))
    (tmp_path / "gpt2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gpt2))
    genslm = [{**r, "workload": "genslm", "size": "genslm-25m", "tokens_per_s": r["tokens_per_s"] * 2} for r in gpt2]
    (tmp_path / "genslm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in genslm))
    tables = figures(
        [str(tmp_path / "block.jsonl")],
        {"gpt2": [str(tmp_path / "gpt2.jsonl")], "genslm": [str(tmp_path / "genslm.jsonl")]},
        str(tmp_path / "out"),
    )
    sp = tables["sparsity"].set_index(["device", "seq_length"])
    assert (
        sp.loc[("NVIDIA H100 80GB HBM3", 128), "speedup_fwd_bwd"] == 1.2
        and sp.loc[("cpu", 128), "status"] == "unsupported"
    )
    sc = tables["scaling"].set_index(["workload", "device", "devices"])
    assert sc.loc[("gpt2", "cpu", 4), "scaling_efficiency"] == pytest.approx(0.9)
    # GPT-2's rows carry no workload name (as rows written before GenSLM) and take the flag they came by
    assert sc.loc[("genslm", "cpu", 4), "tokens_per_s"] == pytest.approx(2 * 3600.0)
    assert set(tables["genslm"]["workload"]) == {"genslm"} and len(tables["gpt2"]) == len(gpt2)
    for name in DAG_FIGURES:
        assert (tmp_path / "out" / "figures" / f"{name}.png").stat().st_size > 10000, name
    assert pd.read_csv(tmp_path / "out" / "tables" / "block.csv")["device"].nunique() == 2
