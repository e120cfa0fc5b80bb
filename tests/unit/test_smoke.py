"""The smoke setting: the small DAG's config with only run lengths capped (workflow/smoke.py)."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO
from workflow import smoke
from workflow.config import pretrain_spec, study_runs, trainable_runs, validate_config
from workflow.errors import ScaleDAGError


@pytest.fixture
def raw():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def small(raw, **extra):
    return validate_config(dict(copy.deepcopy(raw), scale="small", **extra))


def test_smoke_keeps_what_small_declares_and_caps_only_run_lengths(raw):
    real, smk = small(raw), small(raw, smoke=True)
    # the same studies, runs, shapes and tokenizer sizes as the real small DAG
    assert smk["shapes"] == real["shapes"]
    for study in real["studies"]:
        if real["studies"][study].get("runs"):
            assert study_runs(smk, study).keys() == study_runs(real, study).keys()
    assert smk["scales"]["small"]["tokenizer"]["vocab_size"] == real["scales"]["small"]["tokenizer"]["vocab_size"]
    assert smk["corpora"]["matsci"] == real["corpora"]["matsci"]
    sc = smk["scales"]["small"]
    assert sc["device"] == "cpu" and sc["threads_per_run"] == 1 and sc["parallel"] == {"tp": 1, "pp": 1}
    assert not any("gpus_per_task" in r for r in sc["resources"].values())
    assert smk["results"].endswith("/smoke") and smk["logs"].endswith("/smoke")
    assert smk["zeroshot"]["limit"]["small"] == smoke.ZEROSHOT_ITEMS
    assert sc["eval"]["max_tokens"] == max(s["seq_length"] for s in smk["shapes"].values())
    block = smk["studies"]["efficiency"]["benchmarks"]["block"]["small"]
    assert (
        block["seq_length"] == [128, 256]
        and block["hidden"] == real["studies"]["efficiency"]["benchmarks"]["block"]["small"]["hidden"]
    )


def test_every_pretrain_run_is_two_steps_of_one_sequence(raw):
    smk = small(raw, smoke=True)
    seen = 0
    for study in smk["studies"]:
        for run in trainable_runs(smk, study):
            spec = pretrain_spec(smk, study, run)
            train, seq = spec["train"], spec["shape"]["seq_length"]
            assert train["micro_batch_size"] == train["global_batch_size"] == 1, (study, run)
            assert train["tokens"] <= smoke.STEPS * seq, (study, run, train["tokens"])
            assert train["save_interval"] == smoke.STEPS and train["eval_iters"] == 1
            assert train["checkpoint_optimizer"] is False  # weights only: 1/3 of the disk
            assert spec["bf16"] is False
            seen += 1
    assert seen >= 20  # matgpt, bloom, chinchilla's sweep, arch_proxy and genslm all resolve


def test_real_small_is_untouched_without_smoke(raw):
    real = small(raw)
    spec = pretrain_spec(real, "matgpt", next(iter(trainable_runs(real, "matgpt"))))
    assert spec["train"]["global_batch_size"] == 256 and spec["bf16"] is True
    assert spec["train"].get("checkpoint_optimizer", True) is True
    assert real["results"] == "results"
    assert smoke.cap_train(real, {"tokens": 10**9}, 1024) == {"tokens": 10**9}


def test_apply_is_idempotent(raw):
    once = small(raw, smoke=True)
    twice = smoke.apply(copy.deepcopy(once), say=lambda line: None)
    assert twice == once


def test_cap_train_caps_a_generators_budget_and_never_raises_it():
    cfg = {"smoke": True}
    big = {"tokens": 5_000_000, "micro_batch_size": 8, "global_batch_size": 64, "eval_interval": 100}
    out = smoke.cap_train(cfg, big, 2048)
    assert out["tokens"] == smoke.STEPS * 2048 and out["global_batch_size"] == 1
    assert out["eval_interval"] == smoke.STEPS
    short = smoke.cap_train(cfg, dict(big, tokens=100), 2048)
    assert short["tokens"] == 100


def test_smoke_outside_small_is_one_line_error(raw):
    for scale in ("tiny", "mini", "paper"):
        with pytest.raises(ScaleDAGError, match=rf"smoke applies to scale small only \(got scale '{scale}'\)"):
            validate_config(dict(copy.deepcopy(raw), scale=scale, smoke=True))


def test_offline_corpora_read_their_stand_in_with_one_line_each(raw):
    lines = []
    cfg = copy.deepcopy(raw)
    cfg.update(scale="small", smoke=True)
    from workflow.config import schema_validate

    schema_validate(cfg)
    smoke.apply(cfg, say=lines.append)
    # multilingual streams Wikipedia (network); genes reads ../shared/data/genes, which is not shipped
    assert any(line.startswith("corpus 'multilingual': source hf_dataset") for line in lines)
    assert cfg["corpora"]["multilingual"]["sources"] == cfg["corpora"]["multilingual-synthetic"]["sources"]
    if smoke.offline_problem(raw["corpora"]["genes"]):
        assert any(
            "corpus 'genes': source path ../shared/data/genes/*.f*a.gz matches no file" in line for line in lines
        )
        # the stand-in is read, but the codon tokenizer of `genes` stays
        assert cfg["corpora"]["genes"]["tokenizer"] == raw["corpora"]["genes"]["tokenizer"]
    assert all(len(line.splitlines()) == 1 for line in lines)


def test_a_stand_in_that_is_not_offline_is_an_error(raw):
    cfg = copy.deepcopy(raw)
    cfg["corpora"]["multilingual"]["offline_stand_in"] = "genes"  # itself unreadable here
    if not smoke.offline_problem(raw["corpora"]["genes"]):
        pytest.skip("../shared has genes here, so `genes` is an offline corpus")
    with pytest.raises(
        ScaleDAGError, match=r"corpora\.multilingual\.offline_stand_in: 'genes' is not an offline corpus"
    ):
        validate_config(dict(cfg, scale="small", smoke=True))


def test_offline_problem_names_the_source():
    assert smoke.offline_problem({"sources": [{"url": "https://x/y.gz", "sha256": "0" * 64}]}) == (
        "source url https://x/y.gz needs the network"
    )
    assert smoke.offline_problem({"generated": {"documents": 10, "seed": 0}}) is None
    assert "matches no file" in smoke.offline_problem({"sources": [{"path": "/nonexistent/*.txt"}]})
