"""The cost plan (workflow/hpc/plan.py) on the paper DAG: rows and totals against a hand computation
from the appendix-F FLOP count written out here, the jobs against Snakemake's own dry run, and the
one-line errors for too few resubmissions, a job that outgrows its walltime and an allocation overrun."""

from __future__ import annotations

import copy
import json
import math
import re
from collections import Counter

import pytest

from conftest import REPO, job_counts, snakemake
from workflow.config import load_config, validate_config
from workflow.errors import ScaleDAGError
from workflow.hpc.plan import Defaults, check, main, plan, profile_defaults, throughput, totals
from workflow.model.gpt import swiglu_ffn_width

# What the hand computation assumes, from config.yaml's paper scale and profiles/frontier.
PEAK = 191.5e12  # MI250X GCD bf16 dense peak (config.yaml device_peaks)
MFU = 0.3  # studies.chinchilla.isoflop.paper.size_choice, the scale's planning figure
WATTS = 280.0  # 560 W per MI250X OAM of 2 GCDs
NODES, DEVICES, TP = 16, 128, 2  # scales.paper.resources.pretrain: 16 nodes x 8 GCDs; parallel.tp
SEQ, VOCAB, GBS, MICRO, TOKENS = 2048, 52000, 1024, 4, 15e9
EVAL_INTERVAL, EVAL_ITERS, EVAL_MAX_TOKENS = 1000, 100, 10e6
USABLE_H = 2 - 600 / 3600  # the 2 h batch bin less the 10-min pre-walltime checkpoint signal


def appendix_f_per_token(layers: int, d: int, heads: int, ffn: int, glu: bool) -> float:
    """Chinchilla appendix F, written out: training FLOPs per token = 3 x forward per sequence / seq."""
    s, v = SEQ, VOCAB
    attention = 2 * 3 * s * d * d + 2 * s * s * d + 3 * heads * s * s + 2 * s * s * d + 2 * s * d * d
    dense = 2 * s * d * ffn * (3 if glu else 2)
    forward = 2 * s * v * d + layers * (attention + dense) + 2 * s * d * v
    return 3 * forward / s


def hand_run(layers: int, d: int, heads: int, glu: bool) -> dict:
    """FLOPs, hours, node-hours, resubmissions and energy of one MatGPT run, by hand."""
    fpt = appendix_f_per_token(layers, d, heads, swiglu_ffn_width(d) if glu else 4 * d, glu)
    iters = math.ceil(TOKENS / (GBS * SEQ))  # 7,153 steps of 2,097,152 tokens
    evals = iters // EVAL_INTERVAL + 1  # every 1,000 steps and the last one: 8
    eval_tokens = evals * EVAL_ITERS * MICRO * (DEVICES // TP) * SEQ  # 100 micro-batches per DP rank
    flops = iters * GBS * SEQ * fpt + eval_tokens * fpt / 3
    hours = flops / (DEVICES * PEAK * MFU) / 3600
    return {
        "flops": flops,
        "hours": hours,
        "device_hours": DEVICES * hours,
        "node_hours": NODES * hours,
        "resubmits_needed": math.ceil(hours / USABLE_H) - 1,
        "energy_kwh_estimate": WATTS * DEVICES * hours / 1000,
        "eval_flops": EVAL_MAX_TOKENS * fpt / 3,  # evaluate_loss: forward passes over eval.max_tokens
    }


MATGPT = {  # run -> (layers, hidden, heads, SwiGLU)
    "gpt-neox_matgpt-1.7b": (24, 2304, 24, False),
    "llama_matgpt-1.7b": (24, 2304, 24, True),
    "gpt-neox_matgpt-6.7b": (32, 4096, 32, False),
    "llama_matgpt-6.7b": (32, 4096, 32, True),
}


def dry_jobs(output: str) -> Counter:
    """(rule, nodes, runtime minutes, GPUs) of every job a dry run lists, checkpoints included, but `all`."""
    jobs = Counter()
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?(?:rule|checkpoint) )", output):
        m = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and res and m.group(1) != "all":
            r = dict(kv.split("=", 1) for kv in re.split(r", (?=\w+=)", res.group(1)))
            jobs[(m.group(1), int(r["nodes"]), int(r["runtime"]), int(r.get("gpu", 0)))] += 1
    return jobs


@pytest.fixture(scope="module")
def paper():
    config = load_config(REPO / "config.yaml", {"scale": "paper"})
    rows, tput = plan(config, profile_defaults(REPO / "profiles" / "frontier"))
    return config, rows, tput


def by_job(rows, rule):
    return {r["job"]: r for r in rows if r["rule"] == rule}


def test_assumptions_are_the_documented_ones(paper):
    _, _, tput = paper
    assert (tput.device, tput.dtype, tput.watts) == ("MI250X GCD", "bf16", WATTS)
    assert tput.sustained == pytest.approx(MFU * PEAK)
    assert "size_choice" in tput.source


@pytest.mark.parametrize("run", sorted(MATGPT))
def test_matgpt_pretrain_rows_match_the_hand_computation(paper, run):
    row = by_job(paper[1], "pretrain")[f"matgpt/{run}"]
    hand = hand_run(*MATGPT[run])
    assert (row["nodes"], row["devices"], row["partition"], row["walltime_h"]) == (NODES, DEVICES, "batch", 2.0)
    for key in ("flops", "hours", "device_hours", "node_hours", "energy_kwh_estimate"):
        assert row[key] == pytest.approx(hand[key], rel=1e-9), key
    assert row["resubmits_needed"] == hand["resubmits_needed"]
    assert row["resubmits_configured"] == 40 and not row["problem"]


def test_matgpt_1p7b_in_numbers(paper):
    """The 1.7B NeoX run spelled out: 1.81e20 FLOPs on 128 GCDs at 57.45 TFLOP/s = 6.85 h, 110 node-h."""
    row = by_job(paper[1], "pretrain")["matgpt/gpt-neox_matgpt-1.7b"]
    assert row["flops"] == pytest.approx(1.8139e20, rel=1e-4)
    assert row["hours"] == pytest.approx(6.852, rel=1e-3) and row["node_hours"] == pytest.approx(109.6, rel=1e-3)
    assert row["resubmits_needed"] == 3  # 6.85 h / 1.83 h = 3.7 -> 4 jobs


def test_matgpt_study_totals_match_the_hand_computation(paper):
    config, rows, _ = paper
    mine = [r for r in rows if r["study"] == "matgpt"]
    runs = [hand_run(*MATGPT[r]) for r in sorted(MATGPT)]
    flops = sum(h["flops"] + h["eval_flops"] for h in runs)
    # evaluate_loss runs on one GCD of one node: node-hours = device-hours = hours.
    eval_hours = [h["eval_flops"] / (PEAK * MFU) / 3600 for h in runs]
    node_hours = sum(h["node_hours"] for h in runs) + sum(eval_hours)
    device_hours = sum(h["device_hours"] for h in runs) + sum(eval_hours)
    # Every other job is costed at its walltime request on one node: the scale-resource rules without a
    # runtime get Frontier's 1-node bin (2 h), the rest the profile's default (60 min).
    walltime = {"evaluate_zeroshot": 2.0, "embed_bandgap": 2.0}
    rest = [r for r in mine if r["flops"] is None]
    assert rest and {r["rule"] for r in rest} >= {"loss_curves", "export_hf", "report"}
    for r in rest:
        assert (r["nodes"], r["devices"], r["hours"]) == (1, 0, walltime.get(r["rule"], 1.0)), r["job"]
    node_hours += sum(walltime.get(r["rule"], 1.0) for r in rest)
    t = totals(rows)["matgpt"]
    assert t["jobs"] == len(mine) and t["estimated_jobs"] == 0
    assert t["flops"] == pytest.approx(flops, rel=1e-9)
    assert t["node_hours"] == pytest.approx(node_hours, rel=1e-9)
    assert t["device_hours"] == pytest.approx(device_hours, rel=1e-9)
    assert t["energy_kwh_estimate"] == pytest.approx(WATTS * device_hours / 1000, rel=1e-9)


def test_whole_dag_total_is_the_sum_of_the_studies(paper):
    _, rows, _ = paper
    per_study, total = totals(rows), totals(rows, by=None)["total"]
    assert set(per_study) == {
        "data",
        "shared",
        "matgpt",
        "bloom_ablations",
        "genslm",
        "efficiency",
        "arch_proxy",
        "chinchilla",
    }
    for key in ("jobs", "flops", "node_hours", "device_hours", "energy_kwh_estimate"):
        assert total[key] == pytest.approx(sum(t[key] for t in per_study.values()), rel=1e-12), key


def test_planned_rows_cover_what_only_checkpoints_decide(paper):
    config, rows, _ = paper
    pre = by_job(rows, "pretrain")
    loop = [r for r in pre.values() if r["estimated"] == "after fit"]
    assert len(loop) == 5 and all(r["flops"] == 1e22 for r in loop)  # 5 roles at C* = 1e22, ~C* each
    full = [r for r in pre.values() if r["estimated"].startswith("after ranking")]
    candidates = [r for r in pre if r.startswith("arch_proxy/proxy_")]
    assert len(full) == 6 and len(candidates) == 10  # top 3 + bottom 3 of 10 candidates, the costliest


def test_jobs_match_snakemakes_dry_run(paper):
    """Every job the paper dry run lists (but `all`) is a plan row with the same nodes, runtime and
    GPUs; the plan adds only the rows a checkpoint decides later."""
    proc = snakemake("-n", "--profile", "profiles/frontier", "--config", "scale=paper", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dry = dry_jobs(proc.stdout)
    mine = Counter(
        (r["rule"], r["nodes"], round(r["walltime_h"] * 60), r["devices"]) for r in paper[1] if not r["estimated"]
    )
    assert mine == dry
    counts = job_counts(proc.stdout)
    assert sum(counts.values()) - counts["all"] == sum(mine.values())


def test_small_under_the_slurm_profile_plans_every_job_and_fits(tmp_path):
    proc = snakemake("-n", "--profile", "profiles/slurm", "--config", "scale=small", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = load_config(REPO / "config.yaml", {"scale": "small"})
    rows, tput = plan(config, profile_defaults(REPO / "profiles" / "slurm"))
    counts = job_counts(proc.stdout)
    assert Counter(r["rule"] for r in rows if not r["estimated"]) == {k: n for k, n in counts.items() if k != "all"}
    assert tput.device == "H100 SXM" and tput.sustained == pytest.approx(0.4 * 989e12)
    assert all(r["resubmits_configured"] == 1 for r in rows)  # no rule sets resubmits: the profile's retries
    check(config, rows)  # nothing is over its walltime or resubmissions at small


def test_dry_run_lists_only_the_plan_job():
    proc = snakemake("-n", "--profile", "profiles/frontier", "plan", "--config", "scale=paper", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_counts(proc.stdout) == {"plan": 1}
    assert "python -m workflow.warm -m workflow.hpc.plan --config-json" in proc.stdout
    assert "results/paper/plan.csv" in proc.stdout


def test_paper_as_configured_stops_on_chinchillas_largest_runs(paper):
    """Every pretrain job gets the same 16 nodes, so approach 1's 2.5B run at 80 tokens/parameter
    (~132 h on 128 GCDs) needs 72 resubmissions of its 2 h bin: the plan says so before any launch."""
    config, rows, _ = paper
    with pytest.raises(ScaleDAGError) as err:
        check(config, rows)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("pretrain chinchilla/a1r80_l38-h2304 needs 132.6 h")
    assert "72 resubmissions, but scales.paper.resources.pretrain.resubmits allows 40" in msg


def test_a_job_that_cannot_resume_and_outgrows_its_walltime_is_one_line():
    config = _paper(resubmits=250)
    config["scales"]["paper"]["resources"]["evaluate_loss"]["runtime"] = 30  # 10M tokens of 6.7B need ~45 min
    rows, _ = plan(config, profile_defaults(REPO / "profiles" / "frontier"))
    with pytest.raises(ScaleDAGError) as err:
        check(config, rows)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("evaluate_loss matgpt/gpt-neox_matgpt-6.7b needs 0.72 h on 1 device(s), more than its 30 min")
    assert "scales.paper.resources.evaluate_loss.runtime" in msg and "cannot resume" in msg


def _paper(**edits) -> dict:
    config = copy.deepcopy(load_config(REPO / "config.yaml", {"scale": "paper"}))
    res = config["scales"]["paper"]["resources"]
    res["pretrain"]["resubmits"] = edits.pop("resubmits", 40)
    config.update(edits)
    return validate_config(config)


def test_too_few_resubmissions_are_one_line_naming_the_job_and_key():
    config = _paper(resubmits=2)
    rows, _ = plan(config, profile_defaults(REPO / "profiles" / "frontier"))
    with pytest.raises(ScaleDAGError) as err:
        check(config, rows)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("pretrain matgpt/gpt-neox_matgpt-1.7b needs 6.9 h = 4 jobs of 110 min")
    assert "3 resubmissions, but scales.paper.resources.pretrain.resubmits allows 2" in msg


def test_allocation_overrun_is_one_line_naming_the_key():
    config = _paper(resubmits=250, allocation_node_hours=1000)
    rows, _ = plan(config, profile_defaults(REPO / "profiles" / "frontier"))
    need = totals(rows, by=None)["total"]["node_hours"]
    with pytest.raises(ScaleDAGError) as err:
        check(config, rows)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("allocation_node_hours: the paper plan needs ")
    assert f"{need:,.0f} node-hours" in msg and "more than the allocation of 1,000" in msg
    check(validate_config({**config, "allocation_node_hours": need * 1.01}), rows)  # within it: no error


def test_allocation_must_be_positive():
    with pytest.raises(ScaleDAGError, match="allocation_node_hours"):
        load_config(REPO / "config.yaml", {"allocation_node_hours": 0})


def test_measured_rows_of_the_device_override_the_planning_figure(paper, tmp_path):
    config = paper[0]
    rows = tmp_path / "efficiency_gpt2_mi250x.jsonl"
    measured = [
        {"status": "ok", "device": "AMD Instinct MI250X", "dtype": "bf16", "mfu_chinchilla": m} for m in (0.2, 0.4, 0.5)
    ]
    other = [
        {"status": "ok", "device": "NVIDIA H100 80GB HBM3", "dtype": "bf16", "mfu_chinchilla": 0.9},
        {"status": "oom", "device": "AMD Instinct MI250X", "dtype": "bf16", "mfu_chinchilla": None},
    ]
    rows.write_text("".join(json.dumps(r) + "\n" for r in measured + other))
    tput = throughput(config, rows=[rows])
    assert tput.sustained == pytest.approx(0.4 * PEAK)  # the median of the MI250X rows
    assert "median MFU of 3 measured rows" in tput.source
    assert throughput(config, mfu=0.25, rows=[rows]).sustained == pytest.approx(0.25 * PEAK)


def test_cli_writes_the_csv_and_prints_the_totals(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    main(["--scale", "small", "--profile", str(REPO / "profiles" / "slurm"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "ScaleDAG cost plan: scale small" in printed and "\ntotal " in printed and "ESTIMATE" in printed
    header = out.read_text().splitlines()[0].split(",")
    assert header[:3] == ["study", "rule", "job"] and "energy_kwh_estimate" in header and "problem" in header
    with pytest.raises(SystemExit) as exit_:
        main(
            ["--scale", "small", "--profile", str(REPO / "profiles" / "slurm"), "--out", str(out)]
            + ["--config", "allocation_node_hours=5"]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: allocation_node_hours: the small plan needs ")


def test_mini_plans_the_seed_replicates_and_their_table(tmp_path):
    config = load_config(REPO / "config.yaml", {"scale": "mini", "results": str(tmp_path)})  # no loop planned yet
    rows, _ = plan(config, Defaults())
    rules = Counter(r["rule"] for r in rows)
    assert rules["isoflop_seed_noise"] == 1 and rules["evidence"] == 1
    assert sorted(r["job"] for r in rows if "/seed" in r["job"]) == [
        "chinchilla/seed1235_l3-h48",
        "chinchilla/seed1236_l3-h48",
    ]
    chinchilla = [r for r in rows if r["rule"] == "pretrain" and r["study"] == "chinchilla"]
    planned = [r for r in chinchilla if "_planned-" in r["job"]]
    assert len(chinchilla) - len(planned) == 20 + 2 and planned  # the sweep, the seed replicates; then the loop's
    seeded = Counter(r["study"] for r in rows if r["rule"] == "pretrain" and "_s123" in r["job"])
    assert seeded == {"matgpt": 2 * 3, "bloom_ablations": 7 * 3}  # every variant under 3 seeds (multilingual skipped)
    proxy = Counter(
        r["job"].split("/")[1].split("_")[0] for r in rows if r["rule"] == "pretrain" and r["study"] == "arch_proxy"
    )
    assert proxy["proxy"] == 8 and proxy["full"] <= 8  # 8 candidates; full runs follow the ranking checkpoint


def test_each_pretrain_job_is_told_its_plan_row_and_prints_it_first(paper):
    """The spec the DAG hands a pretrain job carries its plan row's FLOPs and hours; the trainer's
    first line states them (workflow.train.pretrain.plan_line)."""
    from types import SimpleNamespace

    from workflow.dag import Dag
    from workflow.hpc.plan import planned_pretrain_spec
    from workflow.train.pretrain import plan_line

    config, rows, _ = paper
    spec = json.loads(planned_pretrain_spec(Dag(config), SimpleNamespace(study="matgpt", run="gpt-neox_matgpt-1.7b")))
    hand = hand_run(*MATGPT["gpt-neox_matgpt-1.7b"])
    assert spec["plan"]["flops"] == pytest.approx(hand["flops"], rel=1e-9)
    assert spec["plan"]["seconds"] == pytest.approx(hand["hours"] * 3600, rel=1e-9)
    assert spec["plan"]["devices"] == DEVICES and "size_choice" in spec["plan"]["basis"]
    line = plan_line(spec["plan"])
    assert line.startswith("plan: 1.81e+20 FLOPs on 128 device(s), predicted 6:51:") and "MFU 0.3" in line
    assert plan_line(None).startswith("plan: no prediction") and "no peak" in plan_line({"error": "no peak"})
