"""The evidence report: verdicts follow from intervals by fixed rules, and a row that lacks what a
verdict needs (seeds, a score above chance, an unflagged fit) is inconclusive, never a pass."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.evidence import (
    BLOOM_FINDINGS,
    bandgap_rows,
    bloom_rows,
    evidence_table,
    main,
    markdown,
    parity_verdict,
    proxy_rows,
    range_verdict,
    sign_verdict,
)


@pytest.mark.parametrize(
    "lo, hi, expect, verdict",
    [
        (-0.3, -0.1, "<0", "agrees"),
        (0.1, 0.3, "<0", "disagrees"),
        (-0.1, 0.1, "<0", "inconclusive"),
        (0.1, 0.3, ">0", "agrees"),
        (math.nan, 1.0, ">0", "inconclusive"),
    ],
)
def test_sign_verdict(lo, hi, expect, verdict):
    assert sign_verdict(lo, hi, expect) == verdict


def test_range_verdict_needs_the_alternative_excluded():
    assert range_verdict(0.45, 0.55, (0.462, 0.534), 0.73) == "agrees"
    assert range_verdict(0.30, 0.80, (0.462, 0.534), 0.73) == "inconclusive"  # cannot tell 0.5 from Kaplan's
    assert range_verdict(0.60, 0.80, (0.462, 0.534), 0.73) == "disagrees"


def test_parity_verdict():
    assert parity_verdict(-0.01, 0.015, 0.02) == "agrees"
    assert parity_verdict(-0.05, 0.01, 0.02) == "inconclusive"
    assert parity_verdict(0.03, 0.08, 0.02) == "disagrees"


def exponents(**notes):
    rows = []
    for name, (a, lo, hi) in {
        "approach1": (0.5, 0.45, 0.55),
        "approach2": (0.48, 0.44, 0.52),
        "approach3": (0.62, 0.58, 0.66),
    }.items():
        rows.append(
            {
                "approach": name,
                "a": a,
                "a_lo": lo,
                "a_hi": hi,
                "b": 1 - a,
                "b_lo": 1 - hi,
                "b_hi": 1 - lo,
                "note": notes.get(name, ""),
            }
        )
    return pd.DataFrame(rows)


def test_chinchilla_rows_and_the_approaches_agreement(tmp_path):
    tables = tmp_path / "chinchilla" / "tables"
    tables.mkdir(parents=True)
    exponents().to_csv(tables / "scaling_exponents.csv", index=False)
    t = evidence_table(tmp_path).set_index("finding")
    assert t.loc["approach1: a ≈ 0.5 (N_opt ∝ C^a), not Kaplan's 0.73", "verdict"] == "agrees"
    assert (
        t.loc["approach3: a ≈ 0.5 (N_opt ∝ C^a), not Kaplan's 0.73", "verdict"] == "disagrees"
    )  # 0.58-0.66 vs 0.454-0.455
    assert t.loc["the three approaches agree on a", "verdict"] == "disagrees"  # approach 3 is disjoint from 1 and 2
    exponents(approach3="parabola vertex outside the sampled sizes").to_csv(
        tables / "scaling_exponents.csv", index=False
    )
    t = evidence_table(tmp_path).set_index("finding")
    flagged = t.loc["approach3: a ≈ 0.5 (N_opt ∝ C^a), not Kaplan's 0.73"]
    assert flagged["verdict"] == "inconclusive" and "the fit flags" in flagged["note"]
    assert t.loc["the three approaches agree on a", "verdict"] == "agrees"  # the flagged fit is left out


def bloom_table(delta_bpb=-0.1, se=0.01, zs=(0.45, 0.50)):
    """One seed a side: the per-run table's paired SE is all the interval holds."""
    return pd.DataFrame(
        [
            {
                "run": "rotary_s",
                "variant": "rotary",
                "axis": "baseline",
                "zeroshot_avg": zs[0],
                "zeroshot_avg_se": 0.01,
            },
            {
                "run": "alibi_s",
                "variant": "alibi",
                "axis": "position embedding",
                "zeroshot_avg": zs[1],
                "zeroshot_avg_se": 0.01,
                "delta_zeroshot": zs[1] - zs[0],
                "delta_se": 0.014,
                "delta_bpb_en": delta_bpb,
                "delta_bpb_en_se": se,
            },
            {"run": "random", "axis": "chance", "zeroshot_avg": 0.32},
        ]
    )


def seeded_bloom_table(delta_bpb=-0.1, zs=(0.45, 0.50), spread=0.01):
    """Three seeds a side, each run's bpb_en and zero-shot average as the per-run table holds them."""
    rows = []
    for variant, axis, bpb, acc in (
        ("rotary", "baseline", 1.5, zs[0]),
        ("alibi", "position embedding", 1.5 + delta_bpb, zs[1]),
    ):
        for i, k in enumerate((1, 2, 3)):
            jitter = (i - 1) * spread
            rows.append(
                {
                    "run": f"{variant}_s_s{k}",
                    "variant": variant,
                    "axis": axis,
                    "seed": k,
                    "bpb_en": bpb + jitter,
                    "zeroshot_avg": acc + jitter,
                    "zeroshot_avg_se": 0.01,
                }
            )
    return pd.DataFrame([*rows, {"run": "random", "axis": "chance", "zeroshot_avg": 0.32}])


def by_key(rows):
    return {(r["finding"], r["metric"]): r for r in rows}


def test_bloom_verdicts_wait_for_three_seeds():
    rows = by_key(bloom_rows(seeded_bloom_table()))
    bpb = rows[("ALiBi beats rotary (the baseline)", "English bits per byte")]
    assert bpb["verdict"] == "agrees" and bpb["seeds"] == 3 and "Welch" in bpb["interval"]
    # Welch over seeds: sd 0.01 a side, SE 0.00816, df 4, t 2.776 -> half-width 0.0227
    assert bpb["ours"] == pytest.approx(-0.1) and bpb["hi"] - bpb["ours"] == pytest.approx(0.02266, abs=1e-4)
    assert rows[("ALiBi beats rotary (the baseline)", "zero-shot average accuracy")]["verdict"] == "agrees"
    one = by_key(bloom_rows(bloom_table()))
    row = one[("ALiBi beats rotary (the baseline)", "English bits per byte")]
    assert row["verdict"] == "inconclusive" and "seed noise unmeasured" in row["note"] and row["seeds"] == 1
    worse = by_key(bloom_rows(seeded_bloom_table(delta_bpb=0.1)))
    assert worse[("ALiBi beats rotary (the baseline)", "English bits per byte")]["verdict"] == "disagrees"
    noisy = by_key(bloom_rows(seeded_bloom_table(delta_bpb=-0.02, spread=0.05)))  # the seeds swamp the gap
    assert noisy[("ALiBi beats rotary (the baseline)", "English bits per byte")]["verdict"] == "inconclusive"


def test_zero_shot_at_chance_is_never_evidence():
    rows = by_key(bloom_rows(seeded_bloom_table(zs=(0.30, 0.40))))
    row = rows[("ALiBi beats rotary (the baseline)", "zero-shot average accuracy")]
    assert row["verdict"] == "inconclusive" and "chance (0.320)" in row["note"] and "rotary 0.300" in row["note"]


def test_matgpt_rows_read_seeds_and_bits_per_byte():
    from analysis.evidence import matgpt_rows

    rows = []
    for arch, bpb in (("gpt-neox", 2.00), ("llama", 2.01)):
        for i in range(3):
            rows.append(
                {
                    "run": f"{arch}_m_s{i}",
                    "arch": arch,
                    "variant": arch,
                    "size": "m",
                    "seed": i,
                    "valid_bpb": bpb + 0.002 * (i - 1),
                    "zeroshot_avg": 0.33,
                    "zeroshot_avg_se": 0.01,
                }
            )
    rows.append({"run": "random", "zeroshot_avg": 0.32})
    got = by_key(matgpt_rows(pd.DataFrame(rows)))
    bpb = got[("GPT-NeoX and LLaMA near parity in held-out bits per byte (m)", "validation bits per byte")]
    assert bpb["verdict"] == "agrees" and bpb["seeds"] == 3  # 0.01 +- 0.005 inside 2% of 2.00 = 0.04
    zs = got[("GPT-NeoX and LLaMA near parity on general zero-shot benchmarks (m)", "zero-shot average accuracy")]
    assert zs["verdict"] == "inconclusive" and "chance" in zs["note"]


def test_proxy_spearman_interval():
    good = pd.DataFrame(
        {
            "predicted_loss": range(8),
            "actual_loss": [0, 1, 2, 3, 5, 4, 6, 7],
            "proxy_wall_seconds": 1.0,
            "full_wall_seconds": 10.0,
        }
    )
    (row,) = proxy_rows(good)
    assert row["ours"] == pytest.approx(0.976, abs=1e-3) and row["lo"] > 0.5 and row["verdict"] == "agrees"
    few = good.head(3)
    assert proxy_rows(few)[0]["verdict"] == "inconclusive"


def test_cli_writes_csv_and_markdown(tmp_path):
    tables = tmp_path / "r" / "chinchilla" / "tables"
    tables.mkdir(parents=True)
    exponents().to_csv(tables / "scaling_exponents.csv", index=False)
    main(
        [
            "--results",
            str(tmp_path / "r"),
            "--scale",
            "mini",
            "--out-csv",
            str(tmp_path / "e.csv"),
            "--out-md",
            str(tmp_path / "e.md"),
        ]
    )
    md = (tmp_path / "e.md").read_text()
    assert md.startswith("# Evidence at scale `mini`") and "**disagrees**" in md
    assert len(pd.read_csv(tmp_path / "e.csv")) == 7
    assert markdown(pd.read_csv(tmp_path / "e.csv"), "mini").count("\n| chinchilla |") == 7


def loop_table(opt=1.00, over=1.10, under=1.02):
    common = {
        "budget": 1e13,
        "predicted_loss": 1.0,
        "predicted_lo_80": 0.95,
        "predicted_hi_80": 1.05,
        "inside_80": True,
    }
    return pd.DataFrame(
        [
            {
                **common,
                "run": "o",
                "roles": "approach3",
                "achieved_loss": opt,
                "beats_over": over > opt,
                "beats_under": under > opt,
            },
            {**common, "run": "b", "roles": "over", "achieved_loss": over, "beats_over": None, "beats_under": None},
            {**common, "run": "s", "roles": "under", "achieved_loss": under, "beats_over": None, "beats_under": None},
        ]
    )


def test_the_optimum_beats_its_neighbours_only_beyond_the_seed_noise():
    from analysis.evidence import closed_loop_rows

    def beats(sd, **losses):
        return [r for r in closed_loop_rows(loop_table(**losses), sd) if "beats" in r["finding"]][0]

    assert beats(0.003)["verdict"] == "agrees"  # margin 0.02 > 2√2 x 0.003 = 0.0085
    assert beats(0.01)["verdict"] == "inconclusive"  # 0.02 < 0.028
    assert beats(0.003, under=0.97)["verdict"] == "disagrees"
    assert beats(math.nan)["verdict"] == "inconclusive" and "not measured" in beats(math.nan)["note"]
    (reached,) = [r for r in closed_loop_rows(loop_table(), 0.003) if "reaches" in r["finding"]]
    assert reached["verdict"] == "agrees"


def test_seed_noise_table(tmp_path):
    import json

    from analysis.chinchilla.noise import main as noise_main

    paths = []
    for name, loss in (("base", 1.00), ("s1", 1.02), ("s2", 0.98)):
        (tmp_path / name).mkdir()
        rows = [
            {"kind": "valid", "step": 10, "tokens": 100, "loss": 2.0},
            {"kind": "valid", "step": 20, "tokens": 200, "loss": loss},
        ]
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(str(tmp_path / name / "metrics.jsonl"))
    out = tmp_path / "noise.csv"
    noise_main(["--base", paths[0], "--replicates", *paths[1:], "--seeds", "1", "2", "3", "--out", str(out)])
    t = pd.read_csv(out)
    assert t["seed"].tolist()[:3] == [1, 2, 3] and t["loss"].tolist()[:3] == [1.0, 1.02, 0.98]
    assert t.iloc[-1]["sd"] == pytest.approx(0.02) and t.iloc[-1]["rel_sd"] == pytest.approx(0.02)


def test_the_prediction_interval_widens_by_the_seed_noise():
    from analysis.evidence import closed_loop_rows

    def reached(sd):
        return [r for r in closed_loop_rows(loop_table(opt=1.06), sd) if "reaches" in r["finding"]][0]

    assert reached(math.nan)["verdict"] == "disagrees"  # 1.06 outside the fit's own [0.95, 1.05]
    widened = reached(0.05)  # hi = 1 + hypot(0.05, 1.2816 x 0.05) = 1.081
    assert widened["verdict"] == "agrees" and widened["hi"] == pytest.approx(1.0813, abs=1e-4)


def test_band_gap_reads_one_row_per_variant_over_its_seeds_with_one_head():
    rows = [{"model": "dummy", "method": "dummy", "mae": 1.0, "mae_std": 0.03, "arch": None, "size": None}]
    for seed, (ridge, mlp) in zip((1, 2, 3), ((0.80, 0.70), (0.78, 0.72), (0.60, 0.74))):
        run = f"llama_m_s{seed}"
        rows += [
            {"model": run, "method": "ridge[description]", "mae": ridge, "mae_std": 0.02, "arch": "llama", "size": "m"},
            {"model": run, "method": "mlp[description]", "mae": mlp, "mae_std": 0.02, "arch": "llama", "size": "m"},
            {
                "model": run,
                "method": "mlp[formula+composition]",
                "mae": 0.5,
                "mae_std": 0.02,
                "arch": "llama",
                "size": "m",
            },
        ]
    (row,) = bandgap_rows(pd.DataFrame(rows))
    # mlp's mean 0.72 beats ridge's 0.727 although ridge wins seed 3: one head for every seed
    assert row["seeds"] == 3 and row["ours"] == pytest.approx(0.72 - 1.0)
    t_half = 4.303 * 0.02 / math.sqrt(3)  # t(0.975, 2 df) x sd 0.02 of (0.70, 0.72, 0.74) / sqrt(3)
    half = math.hypot(2 * math.hypot(0.02, 0.03), t_half)
    assert row["lo"] == pytest.approx(-0.28 - half, abs=1e-3) and row["hi"] == pytest.approx(-0.28 + half, abs=1e-3)
    assert row["verdict"] == "agrees" and "mlp[description]" in row["note"]


def test_a_finding_whose_variant_did_not_run_is_reported_not_measured_with_why(tmp_path, capsys):
    rows = by_key(bloom_rows(seeded_bloom_table(), {"multilingual": "no multilingual text offline"}))
    row = rows[("multilingual is worse on English at equal compute", "English bits per byte")]
    assert row["interval"] == "not measured" and row["verdict"] == "inconclusive" and math.isnan(row["ours"])
    assert row["note"] == "not measured at this scale: variant multilingual is skipped (no multilingual text offline)"
    unknown = by_key(bloom_rows(seeded_bloom_table()))
    assert unknown[("SwiGLU beats GeLU", "zero-shot average accuracy")]["note"] == (
        "not measured at this scale: variant swiglu has no runs in tables/downstream.csv"
    )
    # the missing side is named, whichever it is
    assert unknown[("ALiBi beats learned position embeddings", "English bits per byte")]["note"] == (
        "not measured at this scale: variant learned has no runs in tables/downstream.csv"
    )
    measured = rows[("ALiBi beats rotary (the baseline)", "English bits per byte")]
    assert measured["verdict"] == "agrees"  # a measured row is unchanged

    tables = tmp_path / "r" / "bloom_ablations" / "tables"
    tables.mkdir(parents=True)
    seeded_bloom_table().to_csv(tables / "downstream.csv", index=False)
    args = ["--results", str(tmp_path / "r"), "--scale", "mini", "--out-csv", str(tmp_path / "e.csv")]
    main([*args, "--out-md", str(tmp_path / "e.md"), "--skipped", "multilingual=no text"])
    md = (tmp_path / "e.md").read_text()
    n_missing = sum(1 for f in BLOOM_FINDINGS if f[1] != "alibi" or f[2] is not None)
    assert f"; {n_missing} not measured at this scale (their rows say why)." in md
    assert "variant multilingual is skipped (no text)" in md
    with pytest.raises(SystemExit) as exit_:  # one stderr line naming the bad argument, exit 2
        main([*args, "--out-md", str(tmp_path / "e.md"), "--skipped", "multilingual"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: evidence --skipped: 'multilingual' is not VARIANT=REASON\n"
