"""The closed loop: a fit's predicted optimum (and over/under-sized models) become runs the
`pretrain` rule can train, and the report compares prediction with outcome."""

from __future__ import annotations

import copy
import json
import math

import pytest

from analysis.chinchilla.closed_loop import main, optimal_params, plan_runs, report_table, size_choice
from conftest import REPO
from workflow.config import load_config, pretrain_spec, trainable_runs
from workflow.studies.isoflop import LOOP_PLAN, closed_loop_settings

TRUTH = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}


def _fit() -> dict:
    g = (TRUTH["alpha"] * TRUTH["A"] / (TRUTH["beta"] * TRUTH["B"])) ** (1 / (TRUTH["alpha"] + TRUTH["beta"]))
    a = TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])
    samples = [dict(TRUTH, E=TRUTH["E"] + d) for d in (-0.02, -0.01, 0.0, 0.01, 0.02)]
    return {
        "approach1": {"a": a, "b": 1 - a, "N_coef": g * 6**-a, "D_coef": 6 ** (a - 1) / g},
        "approach2": {"a": 0.6, "b": 0.4, "N_coef": g * 6**-a, "D_coef": 1.0},
        "approach3": dict(TRUTH),
        "approach3_samples": samples,
    }


@pytest.fixture(scope="module")
def settings():
    return closed_loop_settings(load_config(REPO / "config.yaml"), "chinchilla")


def test_plan_trains_each_approach_and_an_over_and_under_sized_model(settings):
    fit = _fit()
    # a budget where N / 4 is still a shape of its own (at the tiny budget the smallest shape the
    # rule allows is already embedding-dominated; plan notes say so)
    settings = dict(settings, budgets=[1e14])
    plan = plan_runs(settings, fit)
    [budget] = settings["budgets"]
    roles = {role: r for r in plan["runs"] for role in r["roles"]}
    assert set(roles) == {"approach1", "approach2", "approach3", "over", "under"}
    assert roles["approach1"] is roles["approach3"]  # same N -> same shape, trained once
    n3 = optimal_params(fit, budget)["approach3"]
    assert roles["over"]["params"] > 2 * roles["approach3"]["params"] > 4 * roles["under"]["params"]
    assert roles["over"]["targets"]["over"] == pytest.approx(4 * n3) and roles["under"]["targets"][
        "under"
    ] == pytest.approx(n3 / 4)
    for r in plan["runs"]:
        assert r["run"].startswith("loopc1e14_") and r["iterations"] >= 10
        # D = C / FLOPs per token of the shape actually trained, as for every sweep run
        assert r["tokens"] * r["flops_per_token_chinchilla"] == pytest.approx(budget)


def test_planned_runs_are_trainable_once_the_plan_exists(settings, tmp_path, monkeypatch):
    config = load_config(REPO / "config.yaml")
    assert not any(r.startswith("loop") for r in trainable_runs(config, "chinchilla"))
    plan = plan_runs(settings, _fit())
    monkeypatch.chdir(tmp_path)  # results/ is relative to Snakemake's working directory
    path = tmp_path / "results" / "tiny" / "chinchilla" / LOOP_PLAN
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(plan))
    run = plan["runs"][0]
    spec = pretrain_spec(config, "chinchilla", run["run"])
    assert spec["shape"]["hidden"] == run["shape"]["hidden"] and spec["train"]["tokens"] == run["tokens"]
    from workflow.config import study_runs

    assert run["run"] not in study_runs(config, "chinchilla")  # the sweep's fit never depends on them


def _write_run(root, name, params, tokens, loss):
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.jsonl").write_text(json.dumps({"kind": "valid", "step": 10, "tokens": tokens, "loss": loss}) + "\n")
    model = {"vocab_size": 1000, "hidden": 64, "tied_embeddings": True}  # tied: N is every parameter
    (d / "summary.json").write_text(json.dumps({"parameters": params, "tokens": tokens, "model": model}))
    return str(d / "metrics.jsonl"), str(d / "summary.json")


def test_report_checks_the_interval_and_the_comparison(tmp_path):
    fit = _fit()
    from analysis.chinchilla.fit import ParametricFit

    law = ParametricFit(**TRUTH)
    runs = [("loopc1e20_a", ["approach3"], 1e9), ("loopc1e20_b", ["over"], 4e9), ("loopc1e20_c", ["under"], 2.5e8)]
    plan = {
        "params_counting": "one_embedding",
        "runs": [{"run": r, "roles": roles, "budget": 1e20, "reference": "approach3"} for r, roles, _ in runs],
    }
    files = []
    optimum = float(law.predict(1e9, 1e20 / 6e9))
    for run, roles, n in runs:
        d = 1e20 / (6 * n)
        # the optimum lands on the law; the over-sized run far above it, the under-sized one below it
        loss = {"approach3": optimum, "over": float(law.predict(n, d)) + 0.5, "under": optimum - 0.01}[roles[0]]
        files.append(_write_run(tmp_path, run, n, d, loss))
    table = report_table(plan, fit, [m for m, _ in files], [s for _, s in files]).set_index("roles")
    assert table.loc["approach3", "inside_80"] and table.loc["approach3", "inside_95"]
    assert not table.loc["over", "inside_95"]
    assert (
        table.loc["approach3", "predicted_lo_95"]
        < table.loc["approach3", "predicted_loss"]
        < table.loc["approach3", "predicted_hi_95"]
    )
    assert table.loc["approach3", "beats_over"] is True and table.loc["approach3", "beats_under"] is False


def test_size_choice_converts_gpu_hours_to_a_shape(settings):
    table, snippet = size_choice(settings, _fit())
    hours = settings["size_choice"]["gpu_hours"][0]
    assert set(table["approach"]) == {"approach1", "approach2", "approach3"}
    assert table["flops"].iloc[0] == pytest.approx(hours * 3600 * settings["size_choice"]["achieved_tflops"] * 1e12)
    row = table.set_index("approach").loc["approach3"]
    assert math.isfinite(row["predicted_loss"]) and row["hidden"] % settings["rule"]["hidden_multiple"] == 0
    assert f"chinchilla-{hours:g}gpuh-approach3: {{layers: {row['layers']}, hidden: {row['hidden']}" in snippet
    paper = copy.deepcopy(settings)
    paper["size_choice"] = {"gpu_hours": [1e-3], "device": "MI250X GCD", "dtype": "bf16", "mfu": 0.3}
    assert size_choice(paper, _fit())[0]["flops"].iloc[0] == pytest.approx(1e-3 * 3600 * 0.3 * 191.5e12)
    paper["size_choice"]["device"] = "Abacus"
    with pytest.raises(Exception, match="no published bf16 peak for device 'Abacus'"):
        size_choice(paper, _fit())


def test_plan_cli_bad_settings_is_one_line(tmp_path, capsys):
    (tmp_path / "fit.json").write_text(json.dumps(_fit()))
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "plan",
                "--settings",
                "{oops",
                "--fit",
                str(tmp_path / "fit.json"),
                "--out",
                str(tmp_path / "p.json"),
                "--size-choice",
                str(tmp_path / "s.csv"),
                "--size-config",
                str(tmp_path / "s.yaml"),
            ]
        )
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: --settings: not JSON")
    assert not (tmp_path / "p.json").exists()
