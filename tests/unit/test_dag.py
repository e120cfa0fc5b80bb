"""The DAG's input functions and targets (workflow/dag.py) and the results layout (workflow/layout.py),
as plain Python: no Snakemake, no training."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO
from workflow.config import validate_config
from workflow.dag import Dag
from workflow.errors import ScaleDAGError
from workflow.layout import Layout


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def config_at(raw, scale):
    return validate_config(dict(copy.deepcopy(raw), scale=scale))


def wc(**kw):
    return SimpleNamespace(**kw)


class Checkpoint:
    """What Snakemake's `checkpoints.<rule>.get(**wildcards)` returns once the checkpoint has run: an
    object whose `output.<name>` is the file it wrote (a real file here, written by the test)."""

    def __init__(self, **outputs):
        self.outputs = outputs

    def get(self, **wildcards):
        return SimpleNamespace(output=SimpleNamespace(**self.outputs))


def test_layout_patterns_and_concrete_paths_are_the_same_strings():
    lay = Layout("results/tiny", "logs/tiny", "results/downloads")
    assert lay.run_file("{study}", "{run}", "summary.json") == "results/tiny/{study}/runs/{run}/summary.json"
    assert (
        lay.run_file("matgpt", "llama_tiny-1m", "summary.json") == "results/tiny/matgpt/runs/llama_tiny-1m/summary.json"
    )
    assert lay.table("s", "loss") == "results/tiny/s/tables/loss.csv"
    assert lay.table("s", "scaling_fit.json") == "results/tiny/s/tables/scaling_fit.json"
    assert lay.figures("s", "loss_curves") == [
        "results/tiny/s/figures/loss_curves.png",
        "results/tiny/s/figures/loss_curves.pdf",
    ]
    assert lay.benchmark("tokenize_shard", "{corpus}", "{shard}-of-{shards}") == (
        "results/tiny/benchmarks/tokenize_shard/{corpus}/{shard}-of-{shards}.tsv"
    )
    assert lay.log("pretrain", "{study}", "{run}") == "logs/tiny/pretrain/{study}/{run}.log"
    assert lay.token_files("c") == {
        f"{s}_{e}": f"results/tiny/data/c/tokens/{s}.{e}" for s in ("train", "valid") for e in ("bin", "idx")
    }


def test_layout_follows_config_roots(raw):
    lay = Layout.of(dict(raw, scale="paper", results="/scratch/r", logs="/scratch/l"))
    assert (lay.results, lay.logs, lay.downloads) == ("/scratch/r/paper", "/scratch/l/paper", "/scratch/r/downloads")


def test_final_targets_per_study_kind(raw):
    dag = Dag(config_at(raw, "tiny"))
    targets = dag.final_targets()
    assert len(targets) == len(set(targets))
    # a `runs` study: loss curves, its downstream tables, HF exports, a W&B report spec
    assert "results/tiny/matgpt/figures/loss_curves.png" in targets
    assert "results/tiny/matgpt/report/wandb_report.json" in targets
    assert any(t.startswith("results/tiny/matgpt/runs/") and t.endswith("/hf") for t in targets)
    # kinds with their own outputs get no generic loss curves
    for study in ("chinchilla", "efficiency", "arch_proxy"):
        assert f"results/tiny/{study}/figures/loss_curves.png" not in targets
    assert "results/tiny/chinchilla/tables/scaling_fit.json" in targets
    assert "results/tiny/chinchilla/tables/closed_loop.csv" in targets  # tiny configures a closed-loop budget
    assert "results/tiny/efficiency/figures/block_throughput.png" in targets
    assert "results/tiny/efficiency/figures/genslm_scaling.png" in targets
    # benchmarks train no runs: their W&B report spec holds their tables only
    assert "results/tiny/efficiency/report/wandb_report.json" in targets
    assert "results/tiny/arch_proxy/tables/proxy.csv" in targets


def test_disabled_study_has_no_targets(raw):
    cfg = copy.deepcopy(raw)
    cfg["studies"]["efficiency"]["enabled"] = False
    targets = Dag(config_at(cfg, "tiny")).final_targets()
    assert not [t for t in targets if "/efficiency/" in t]


def test_run_inputs_follow_the_runs_corpus(raw):
    dag = Dag(config_at(raw, "paper"))
    run = next(iter(sorted(dag.run_names("chinchilla"))))
    data = dag.run_data(wc(study="chinchilla", run=run))
    assert data["tokenizer"] == "results/paper/data/matsci-32k/tokenizer.json"  # Chinchilla's own 32k corpus
    assert set(data) == {"tokenizer", "train_bin", "train_idx", "valid_bin", "valid_idx"}
    assert set(dag.run_valid_data(wc(study="chinchilla", run=run))) == {"valid_bin", "valid_idx"}
    spec = json.loads(dag.pretrain_spec(wc(study="chinchilla", run=run)))
    assert spec["out_dir"] == f"results/paper/chinchilla/runs/{run}"


def test_unknown_run_is_one_line_naming_it(raw):
    dag = Dag(config_at(raw, "tiny"))
    with pytest.raises(ScaleDAGError, match="no run 'nope_x'"):
        dag.pretrain_spec(wc(study="matgpt", run="nope_x"))


def test_token_shards_scatter_per_configured_shard_count(raw):
    cfg = copy.deepcopy(raw)
    cfg["scales"]["tiny"]["tokenizer"]["shards"] = 3
    dag = Dag(config_at(cfg, "tiny"))
    dirs = dag.token_shard_dirs(wc(corpus="synthetic"))
    assert dirs == [f"results/tiny/data/synthetic/tokens/shards/{k}-of-3" for k in range(3)]
    assert len(dag.token_shards(wc(corpus="synthetic"))) == 3 * (6 + 1)  # 3 splits x bin/idx + counts.json


def test_tokenizer_args_quote_an_existing_tokenizer(raw):
    dag = Dag(config_at(raw, "tiny"))
    args = dag.tokenizer_args(wc(corpus="synthetic"), {"train": "t.jsonl", "existing": "/a b/tok.json"})
    assert args.endswith("--existing '/a b/tok.json'")
    assert "--existing" not in dag.tokenizer_args(wc(corpus="synthetic"), {"train": "t.jsonl"})


def test_closed_loop_inputs_come_from_the_plan_checkpoint(raw, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"runs": [{"run": "loop-a3_l2-h64"}, {"run": "loop-over_l4-h96"}]}))
    dag = Dag(config_at(raw, "tiny"), SimpleNamespace(closed_loop_plan=Checkpoint(plan=str(plan))))
    assert dag.closed_loop_summaries(wc(study="chinchilla")) == [
        "results/tiny/chinchilla/runs/loop-a3_l2-h64/summary.json",
        "results/tiny/chinchilla/runs/loop-over_l4-h96/summary.json",
    ]


def test_proxy_full_runs_are_the_rankings_choice(raw, tmp_path):
    cfg = config_at(raw, "tiny")
    dag = Dag(cfg)
    # tiny trains every candidate in full (`full: all`), known without the ranking
    full = dag.full_summaries(wc(study="arch_proxy"))
    assert full and all("/runs/full_" in f for f in full)
    cfg2 = copy.deepcopy(raw)
    cfg2["studies"]["arch_proxy"]["proxy"]["tiny"]["full"] = {"top": 1, "bottom": 1}
    ranking = tmp_path / "ranking.json"
    ranking.write_text(json.dumps({"full": ["L2-H64-A2"]}))
    dag2 = Dag(config_at(cfg2, "tiny"), SimpleNamespace(proxy_rank=Checkpoint(ranking=str(ranking))))
    assert dag2.full_summaries(wc(study="arch_proxy")) == ["results/tiny/arch_proxy/runs/full_L2-H64-A2/summary.json"]


def test_report_tables_are_the_studys_csv_targets(raw):
    dag = Dag(config_at(raw, "tiny"))
    tables = dag.report_tables(wc(study="matgpt"))
    assert "results/tiny/matgpt/tables/loss.csv" in tables
    assert all(t.endswith(".csv") and "/tables/" in t for t in tables)


def test_study_kind_is_declared_not_guessed(raw):
    cfg = copy.deepcopy(raw)
    del cfg["studies"]["matgpt"]["kind"]
    with pytest.raises(ScaleDAGError, match="kind"):
        config_at(cfg, "tiny")
    cfg = copy.deepcopy(raw)
    cfg["studies"]["matgpt"]["kind"] = "isoflop"  # a runs study's keys under another kind
    with pytest.raises(ScaleDAGError, match="matgpt"):
        config_at(cfg, "tiny")


def test_a_corpus_whose_files_are_absent_warns_at_parse_naming_what_to_configure(raw, capsys):
    cfg = copy.deepcopy(raw)
    cfg["corpora"]["arxiv-bytes"]["sources"] = [{"path": "no/such/dir/*.tar.gz", "format": "arxiv-listing"}]
    dag = Dag(config_at(cfg, "mini"))
    spec = json.loads(dag.corpus_spec(wc(corpus="arxiv-bytes")))
    assert spec["sources"][0]["path"] == "no/such/dir/*.tar.gz"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corpora.arxiv-bytes.sources[0]: 'no/such/dir/*.tar.gz' matches no file" in err[0]
    assert "`url` + `sha256` or an `hf_dataset`" in err[0]


def test_a_study_may_read_fewer_held_out_tokens_than_its_scale(raw):
    """BLOOM's 21 mini runs read 200k held-out tokens each (studies.bloom_ablations.eval_tokens.mini);
    MatGPT, without its own, reads the scale's eval.max_tokens."""
    config = config_at(raw, "mini")
    dag = Dag(config, None)
    assert dag.eval_max_tokens(wc(study="bloom_ablations")) == 200000
    assert dag.eval_max_tokens(wc(study="matgpt")) == config["scales"]["mini"]["eval"]["max_tokens"] == 500000
    tiny = config_at(raw, "tiny")
    assert Dag(tiny, None).eval_max_tokens(wc(study="bloom_ablations")) == tiny["scales"]["tiny"]["eval"]["max_tokens"]


def test_hf_export_notes_one_line_per_variant_not_per_seed(raw, capsys):
    dag = Dag(config_at(raw, "mini"), None)
    dag.hf_export_targets("bloom_ablations")
    err = capsys.readouterr().err
    assert err.count("bloom_ablations/swiglu_tiny-1m (seeds 1234, 1235, 1236) is not exported") == 1
    assert "swiglu_tiny-1m_s1234" not in err


def test_study_named_target_is_its_outputs_or_one_line_why_not(raw):
    dag = Dag(config_at(raw, "mini"))
    assert dag.study_target("chinchilla")() == dag.study_targets("chinchilla")
    assert "results/mini/arch_proxy/tables/proxy.csv" in dag.study_target("arch_proxy")()
    with pytest.raises(ScaleDAGError, match="study 'genslm' has nothing to run at scale 'mini'"):
        dag.study_target("genslm")()


def test_evidence_is_told_which_bloom_variants_the_scale_skips(raw):
    skipped = Dag(config_at(raw, "mini")).evidence_skipped()
    assert [s.split("=", 1)[0] for s in skipped] == ["multilingual"]
    assert "no multilingual text offline" in skipped[0]
    assert Dag(config_at(raw, "tiny")).evidence_skipped() == []  # tiny runs every variant
