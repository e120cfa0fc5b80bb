"""The loss-curve figure groups a variant's seeds: one colour and one legend entry per variant x size."""

from __future__ import annotations

import json

import pytest

from workflow.config import seed_group, seeded_run_name
from workflow.report import loss_curves


@pytest.mark.parametrize(
    "run, group",
    [
        ("rotary_tiny-1m_s1234", "rotary_tiny-1m"),
        ("rotary_tiny-1m", "rotary_tiny-1m"),
        ("embed-ln_gpt2-small_s7", "embed-ln_gpt2-small"),
        ("full_L4-H128-A4", "full_L4-H128-A4"),
        ("x_small", "x_small"),  # "_s" + "mall" is not a seed
    ],
)
def test_seed_group_strips_only_a_numeric_seed_suffix(run, group):
    assert seed_group(run) == group


def test_seed_group_inverts_the_config_naming():
    # The report groups by name what the config named: both read workflow.config's one rule.
    assert seed_group(seeded_run_name("embed-ln_gpt2-small", 42)) == "embed-ln_gpt2-small"


def test_three_seeds_share_one_legend_entry(tmp_path, monkeypatch):
    paths = []
    for variant in ("neox", "llama"):
        for seed in (1, 2, 3):
            d = tmp_path / f"{variant}_m_s{seed}"
            d.mkdir()
            rows = [{"kind": "train", "tokens": t, "loss": 5.0 - t / 100 - seed / 100} for t in (10, 20, 30)]
            rows.append({"kind": "valid", "tokens": 30, "loss": 4.7})
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            paths.append(str(d / "metrics.jsonl"))
    seen = {}

    def keep(fig, png, pdf):
        seen["labels"] = fig.axes[0].get_legend_handles_labels()[1]

    monkeypatch.setattr(loss_curves, "save_figure", keep)
    loss_curves.plot_loss_curves(paths, "t", str(tmp_path / "a.png"), str(tmp_path / "a.pdf"))
    assert seen["labels"] == [
        "llama_m (3 seeds) (train)",
        "llama_m (3 seeds) (valid)",
        "neox_m (3 seeds) (train)",
        "neox_m (3 seeds) (valid)",
    ]
