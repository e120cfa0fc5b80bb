"""config.yaml loads, resolves into run specs, and bad configs fail with one line naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO
from workflow.config import (
    enabled_studies,
    load_config,
    pretrain_spec,
    run_id,
    study_runs,
    validate_config,
)
from workflow.errors import ScaleDAGError


@pytest.fixture
def raw():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_repo_config_is_valid_at_every_scale(raw):
    for scale in ("tiny", "small", "paper"):
        cfg = validate_config(dict(copy.deepcopy(raw), scale=scale))
        assert "matgpt" in enabled_studies(cfg)
    mini = validate_config(dict(copy.deepcopy(raw), scale="mini"))
    assert mini["scales"]["mini"]["evidence"] and not mini["scales"]["tiny"]["evidence"]


def test_a_study_not_declared_at_a_scale_drops_out_there(raw):
    """mini declares only the studies it has a design for; the others are not targets there."""
    mini = validate_config(dict(copy.deepcopy(raw), scale="mini"))
    declared = enabled_studies(mini)
    assert {"chinchilla", "matgpt", "bloom_ablations", "arch_proxy"} <= set(declared)
    assert "genslm" not in declared and "efficiency" not in declared
    cfg = copy.deepcopy(raw)
    cfg["studies"]["efficiency"]["benchmarks"]["gpt2"]["mini"] = copy.deepcopy(
        cfg["studies"]["efficiency"]["benchmarks"]["gpt2"]["tiny"]
    )
    assert "efficiency" in enabled_studies(validate_config(dict(cfg, scale="mini")))


def test_runs_are_variant_x_shape_per_scale(raw):
    tiny = load_config(REPO / "config.yaml")
    assert sorted(study_runs(tiny, "matgpt")) == ["gpt-neox_tiny-1m", "llama_tiny-1m"]
    paper = validate_config(dict(copy.deepcopy(raw), scale="paper"))
    assert sorted(study_runs(paper, "matgpt")) == [
        "gpt-neox_matgpt-1.7b",
        "gpt-neox_matgpt-6.7b",
        "llama_matgpt-1.7b",
        "llama_matgpt-6.7b",
    ]
    assert run_id(paper, "matgpt", "llama_matgpt-6.7b") == "paper.matgpt.llama_matgpt-6.7b"


def test_pretrain_spec_follows_the_results_layout():
    cfg = load_config(REPO / "config.yaml")
    spec = pretrain_spec(cfg, "matgpt", "llama_tiny-1m")
    assert spec["out_dir"] == "results/tiny/matgpt/runs/llama_tiny-1m"
    assert spec["data"]["train_prefix"] == "results/tiny/data/synthetic/tokens/train"
    assert spec["shape"]["hidden"] == 128 and spec["arch"] == "llama" and spec["bf16"] is False
    with pytest.raises(ScaleDAGError, match="has no run 'nope'"):
        pretrain_spec(cfg, "matgpt", "nope")


def test_schema_fills_defaults(raw):
    del raw["scales"]["tiny"]["train"]["min_lr_ratio"]
    cfg = validate_config(raw)
    assert cfg["scales"]["tiny"]["train"]["min_lr_ratio"] == 0.1


BAD = [
    (
        lambda c: c.update(scale="huge"),
        "scale: 'huge' is not allowed; expected one of ['tiny', 'mini', 'small', 'paper']",
    ),
    (lambda c: c.update(resutls="x"), "unknown key 'resutls'"),
    (
        lambda c: c["scales"]["tiny"]["train"].update(lr="fast"),
        "scales.tiny.train.lr: 'fast' has the wrong type; expected number",
    ),
    (
        lambda c: c["scales"]["tiny"]["train"].update(micro_batch_size=0),
        "scales.tiny.train.micro_batch_size: 0 is out of range",
    ),
    (
        lambda c: c["studies"]["matgpt"]["runs"]["llama"].update(arch="gpt3"),
        "studies.matgpt.runs.llama.arch: 'gpt3' is not allowed",
    ),
    (
        lambda c: c["corpora"]["synthetic"].update(sources=[{"path": "x"}]),
        "corpora.synthetic: set exactly one of 'sources' or 'generated'",
    ),
    (lambda c: c["scales"]["tiny"].update(corpus="nowhere"), "scales.tiny.corpus: 'nowhere' is not a key of corpora"),
    (
        lambda c: c["shapes"]["tiny-1m"].update(hidden=130),
        "shapes.tiny-1m: hidden (130) must be divisible by heads (4)",
    ),
    (
        lambda c: c["studies"]["matgpt"]["sizes"].update(tiny=["huge-9b"]),
        "studies.matgpt.sizes.tiny: unknown shape 'huge-9b'",
    ),
    (
        lambda c: c["scales"]["tiny"]["train"].update(global_batch_size=12),
        "global_batch_size (12) must be a multiple of micro_batch_size (8)",
    ),
    (lambda c: c["scales"]["paper"]["parallel"].update(tp=5), "scales.paper.parallel.tp (5) must divide the heads"),
    (lambda c: c["scales"]["tiny"].pop("train"), "scales.tiny: 'train' is a required property"),
    (
        lambda c: c["studies"]["bloom_ablations"]["language_eval"].update(tiny="nowhere"),
        "studies.bloom_ablations.language_eval.tiny: 'nowhere' is not a key of corpora",
    ),
    (
        lambda c: c["studies"]["bloom_ablations"]["language_eval"].update(tiny="synthetic"),
        "studies.bloom_ablations.language_eval.tiny: corpus 'synthetic' has sources without a `tag`: ['sources[0]']",
    ),
    (
        lambda c: c["corpora"]["multilingual-synthetic"]["sources"][1]["generated"].update(only="fr"),
        "corpora.multilingual-synthetic.sources.1.generated.only: 'fr' is not allowed",
    ),
    (
        lambda c: c["corpora"]["multilingual-synthetic"]["sources"][1]["generated"].update(languages=["en", "yo"]),
        "corpora.multilingual-synthetic: corpus 'multilingual-synthetic': generated.only: 'xa' is not one of its languages",
    ),
    (
        lambda c: c["studies"]["bloom_ablations"]["runs"]["multilingual"]["corpus"].update(tiny="nowhere"),
        "studies.bloom_ablations.runs.multilingual.corpus.tiny: 'nowhere' is not a key of corpora",
    ),
    (
        lambda c: c["studies"]["efficiency"]["benchmarks"]["genslm"]["corpus"].update(tiny="nowhere"),
        "studies.efficiency.benchmarks.genslm.corpus.tiny: 'nowhere' is not a key of corpora",
    ),
]


@pytest.mark.parametrize("mutate,expected", BAD, ids=[e.split(":")[0] for _, e in BAD])
def test_bad_config_is_rejected_with_one_line(raw, mutate, expected):
    mutate(raw)
    with pytest.raises(ScaleDAGError) as info:
        validate_config(raw)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message and message.startswith("config: ")


def test_unreadable_config_file(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("scale: [unclosed\n")
    with pytest.raises(ScaleDAGError, match=str(bad)):
        load_config(bad)


# Shapes and parallel layouts that could not train fail at load, one line naming the run and shape.
BAD_SHAPES = [
    (
        lambda c: c["shapes"]["tiny-1m"].update(kv_heads=3),
        "studies.matgpt.runs.gpt-neox at shape 'tiny-1m' (scale tiny, tp 1, pp 1): shape",
    ),
    (
        lambda c: c["shapes"]["bloom-1.3b"].update(ffn_hidden=8191),
        "studies.bloom_ablations.runs.rotary at shape 'bloom-1.3b' (scale paper, tp 2, pp 1): tensor parallel size 2 must divide ffn_hidden (8191)",
    ),
    (
        lambda c: c["shapes"]["matgpt-1.7b"].update(kv_heads=3),
        "(scale paper, tp 2, pp 1): tensor parallel size 2 must divide kv_heads (3)",
    ),
    (lambda c: c["scales"]["paper"]["parallel"].update(pp=16), "pipeline parallel size 16 must divide layers (24)"),
    (
        lambda c: c["studies"]["matgpt"]["runs"]["gpt-neox"].update(overrides={"rotary_percent": 0.3}),
        "rotary_percent 0.3 of head size 32 gives int(9.6) = 9 rotary dimensions; rotary needs an even number >= 2",
    ),
    (
        lambda c: c["scales"]["paper"]["train"].update(global_batch_size=128),
        "scales.paper.train: global_batch_size (128) must be a multiple of micro_batch_size × data-parallel size (4 × 64)",
    ),
    (
        lambda c: c["scales"]["tiny"]["train"].update(tokens=1000),
        "scales.tiny.train.tokens (1000) is less than one global batch of shape 'tiny-1m' (16 × 128 tokens)",
    ),
    (
        lambda c: c["studies"]["bloom_ablations"].update(train={"tiny": {"micro_batch_size": 32}}),
        "studies.bloom_ablations.train.tiny: global_batch_size (16) must be a multiple of micro_batch_size × data-parallel size (32 × 1)",
    ),
    (
        lambda c: c["studies"]["bloom_ablations"].update(train={"tiny": {"seed": 1}}),
        "studies.bloom_ablations.train.tiny: unknown key 'seed'",
    ),
]


@pytest.mark.parametrize("mutate,expected", BAD_SHAPES, ids=[str(i) for i in range(len(BAD_SHAPES))])
def test_unbuildable_shapes_fail_at_load(raw, mutate, expected):
    mutate(raw)
    with pytest.raises(ScaleDAGError) as info:
        validate_config(raw)
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message and message.startswith("config: ")


def test_study_train_overrides_only_their_scale():
    cfg = load_config(REPO / "config.yaml")
    tiny = pretrain_spec(cfg, "bloom_ablations", "alibi_tiny-1m")["train"]
    assert (
        tiny["tokens"]
        == cfg["studies"]["bloom_ablations"]["train"]["tiny"]["tokens"]
        < cfg["scales"]["tiny"]["train"]["tokens"]
    )
    assert tiny["lr"] == cfg["scales"]["tiny"]["train"]["lr"]  # everything else is the scale's
    paper = load_config(REPO / "config.yaml", {"scale": "paper"})
    assert pretrain_spec(paper, "bloom_ablations", "alibi_bloom-1.3b")["train"] == paper["scales"]["paper"]["train"]


# Study and corpus names: the one pattern config.py checks at load is the rules' wildcard constraint.
def with_names(raw, study="my-study", corpus="my_corpus"):
    """The repo config with only `study` (matgpt's runs) enabled, trained on `corpus` at tiny scale."""
    for st in raw["studies"].values():
        st["enabled"] = False
    raw["studies"][study] = dict(copy.deepcopy(raw["studies"]["matgpt"]), enabled=True)
    raw["corpora"][corpus] = copy.deepcopy(raw["corpora"][raw["scales"]["tiny"]["corpus"]])
    raw["scales"]["tiny"]["corpus"] = corpus
    return raw


def test_dash_and_underscore_names_load_and_run_the_dry_run(raw, tmp_path):
    from conftest import job_counts, snakemake

    cfg = validate_config(with_names(copy.deepcopy(raw)))
    assert run_id(cfg, "my-study", "llama_tiny-1m") == "tiny.my-study.llama_tiny-1m"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(with_names(raw)))
    proc = snakemake("-n", "--forceall", "--configfile", str(tmp_path / "c.yaml"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/tiny/my-study/runs/llama_tiny-1m/summary.json" in proc.stdout
    assert "results/tiny/data/my_corpus/tokens/train.bin" in proc.stdout
    assert job_counts(proc.stdout)["pretrain"] == 2


@pytest.mark.parametrize(
    "study, corpus, key, bad",
    [
        ("my study", "my_corpus", "studies", "'my study' is not a valid study name"),
        ("my.study", "my_corpus", "studies", "'my.study' is not a valid study name"),
        ("2study", "my_corpus", "studies", "'2study' is not a valid study name"),
        ("my-study", "my corpus", "corpora", "'my corpus' is not a valid corpus name"),
        ("my-study", "my.corpus", "corpora", "'my.corpus' is not a valid corpus name"),
    ],
)
def test_bad_study_or_corpus_name_fails_at_load_with_one_line(raw, tmp_path, study, corpus, key, bad):
    with pytest.raises(ScaleDAGError) as info:
        validate_config(with_names(raw, study, corpus))
    assert str(info.value) == f"config: {key}: {bad} (letters, digits, '_' and '-'; must start with a letter)"
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(with_names(yaml.safe_load((REPO / "config.yaml").read_text()), study, corpus))
    )
    if study == "my study":  # the same line from the Snakefile, before any DAG is built
        from conftest import snakemake

        proc = snakemake("-n", "--configfile", str(tmp_path / "c.yaml"), timeout=120)
        assert proc.returncode != 0
        assert [line for line in proc.stderr.splitlines() if line.startswith("ScaleDAG")] == [f"ScaleDAG {info.value}"]
        assert "Job stats" not in proc.stdout


@pytest.mark.parametrize("name", ["data", "benchmarks"])
def test_study_may_not_take_a_results_folder_of_the_stages(raw, name):
    with pytest.raises(ScaleDAGError, match=rf"^config: studies: '{name}' is reserved"):
        validate_config(with_names(raw, name, "my_corpus"))
