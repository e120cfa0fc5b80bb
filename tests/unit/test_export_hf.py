"""HF export: the exported transformers model computes the same logits as ScaleDAG's Megatron model."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import make_run_spec, run_module, train_run
from workflow.errors import ScaleDAGError
from workflow.export.hf import ADAPTERS, build_hf_model, convert_state_dict, hf_class_for, hf_config

SHAPE = {"layers": 2, "hidden": 64, "heads": 4, "seq_length": 32}
VARIANTS = [
    ("llama", {}, "LlamaForCausalLM"),
    ("llama", {"bias": True}, "LlamaForCausalLM"),
    ("gpt-neox", {}, "GPTNeoXForCausalLM"),  # rotary_percent 0.25
    ("gpt-neox", {"position_embedding": "none"}, "GPTNeoXForCausalLM"),
    ("gpt-neox", {"bias": False, "tied_embeddings": True}, "GPTNeoXForCausalLM"),
    ("gpt-neox", {"position_embedding": "learned"}, "GPT2LMHeadModel"),
    ("gpt-neox", {"position_embedding": "alibi", "embedding_layernorm": True}, "BloomForCausalLM"),
]
# BLOOM's GeLU is the tanh approximation while Megatron's is exact: a tiny, bounded difference.
RTOL = 1e-4


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).norm() / ref.norm())


def megatron_logits(model, tokens: torch.Tensor) -> torch.Tensor:
    pos = torch.arange(tokens.shape[1]).unsqueeze(0).expand_as(tokens)
    with torch.no_grad():
        return model(tokens, pos, None)


@pytest.mark.parametrize(
    "arch,overrides,hf_class", VARIANTS, ids=[f"{a}-{c}-{i}" for i, (a, _, c) in enumerate(VARIANTS)]
)
def test_converted_weights_reproduce_logits(megatron_dist, arch, overrides, hf_class):
    """Random (perturbed) weights, so layer norms, biases and every QKV row matter."""
    from workflow.model.gpt import build_gpt_model, make_model_spec

    mspec = make_model_spec(arch, SHAPE, 100, overrides)
    assert hf_class_for(mspec.to_dict()) == hf_class
    torch.manual_seed(0)
    model = build_gpt_model(mspec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    hf = build_hf_model(mspec, hf_class, convert_state_dict(model.state_dict(), mspec, hf_class), eod_id=0)
    tokens = torch.randint(0, 100, (2, SHAPE["seq_length"]))
    with torch.no_grad():
        out = hf(tokens).logits
    assert rel_err(out, megatron_logits(model, tokens)) < RTOL


def test_permuted_qkv_would_be_caught(megatron_dist):
    """The parity check is sensitive to the fused-QKV layout (swapping two heads' rows breaks it)."""
    from workflow.model.gpt import build_gpt_model, make_model_spec

    mspec = make_model_spec("gpt-neox", SHAPE, 100)
    torch.manual_seed(1)
    model = build_gpt_model(mspec).eval()
    state = convert_state_dict(model.state_dict(), mspec, "GPTNeoXForCausalLM")
    key = "gpt_neox.layers.0.attention.query_key_value.weight"
    rows = state[key].reshape(SHAPE["heads"], 3, -1, SHAPE["hidden"])
    state[key] = rows[:, [1, 0, 2]].reshape(state[key].shape).contiguous()  # k and q swapped per head
    hf = build_hf_model(mspec, "GPTNeoXForCausalLM", state, eod_id=0)
    tokens = torch.randint(0, 100, (2, SHAPE["seq_length"]))
    with torch.no_grad():
        assert rel_err(hf(tokens).logits, megatron_logits(model, tokens)) > 1e-3


@pytest.mark.parametrize(
    "options",
    [
        {"normalization": "LayerNorm", "activation": "swiglu", "position_embedding": "rotary"},
        {"normalization": "RMSNorm", "activation": "swiglu", "position_embedding": "rotary", "rotary_percent": 0.5},
        {"normalization": "LayerNorm", "activation": "gelu", "position_embedding": "alibi"},
        {
            "normalization": "LayerNorm",
            "activation": "gelu",
            "position_embedding": "rotary",
            "embedding_layernorm": True,
        },
    ],
)
def test_architectures_without_an_hf_class_are_refused(options):
    with pytest.raises(ScaleDAGError, match="export_hf"):
        hf_class_for(options)


def test_every_class_has_one_adapter_and_unknown_classes_are_refused():
    assert set(ADAPTERS) == {hf_class for _, _, hf_class in VARIANTS}
    for convert in (
        lambda: convert_state_dict({}, None, "OPTForCausalLM"),
        lambda: hf_config(None, "OPTForCausalLM", 0),
    ):
        with pytest.raises(ScaleDAGError, match="export_hf: unknown Hugging Face class 'OPTForCausalLM'"):
            convert()


# --- end to end: train tiny checkpoints, export through the CLI, load with transformers -------------

TRAINED = {
    "llama": ("llama", {}, "LlamaForCausalLM"),
    "neox": ("gpt-neox", {"rotary_percent": 0.5}, "GPTNeoXForCausalLM"),
    "bloom": ("gpt-neox", {"position_embedding": "alibi", "embedding_layernorm": True}, "BloomForCausalLM"),
}


@pytest.fixture(scope="module")
def exported(tiny_corpus, tmp_path_factory):
    """name -> (run dir, hf dir) for three tiny trained runs (10 steps each)."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, (arch, overrides, _) in TRAINED.items():
        spec = make_run_spec(tiny_corpus, root / name, arch=arch, steps=10, eval_interval=10, save_interval=10)
        spec["arch_overrides"] = overrides
        spec["wandb"] = False
        train_run(spec)
        run_module(
            "workflow.export.hf",
            [
                "--run-dir",
                str(root / name),
                "--tokenizer",
                tiny_corpus["tokenizer"],
                "--out",
                str(root / name / "hf"),
                "--threads",
                "1",
            ],
        )
        out[name] = (root / name, root / name / "hf")
    return out


@pytest.mark.parametrize("name", sorted(TRAINED))
def test_export_matches_trained_checkpoint(exported, megatron_dist, tiny_corpus, name):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workflow.export.hf import model_spec_from_summary
    from workflow.model.gpt import build_gpt_model

    run_dir, hf_dir = exported[name]
    hf_class = TRAINED[name][2]
    info = json.loads((hf_dir / "scaledag_export.json").read_text())
    assert info["hf_class"] == hf_class and info["iteration"] == 10
    assert not list(hf_dir.parent.glob(".hf.*"))  # no temp dir left behind

    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    assert type(hf).__name__ == hf_class
    tok = AutoTokenizer.from_pretrained(hf_dir)
    text = "The oxygen electrode of a solid oxide fuel cell was sintered at high temperature."
    ids = torch.tensor([tok(text)["input_ids"][:32]])
    assert tok.decode(ids[0]) == text[: len(tok.decode(ids[0]))]
    assert tok.eos_token_id == 0

    # ScaleDAG's own model on the same checkpoint (the evaluation code path's loader).
    from megatron.core import dist_checkpointing

    mspec = model_spec_from_summary(run_dir)
    model = build_gpt_model(mspec).eval()
    state = dist_checkpointing.load(
        {"model": model.sharded_state_dict()}, str(run_dir / "checkpoints" / "iter_0000010")
    )
    model.load_state_dict(state["model"])
    with torch.no_grad():
        out = hf(ids).logits
    assert rel_err(out, megatron_logits(model, ids)) < RTOL


def test_generate_smoke(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in sorted(exported):
        hf_dir = exported[name][1]
        tok = AutoTokenizer.from_pretrained(hf_dir)
        tok.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
        inputs = tok(["The cathode", "A"], return_tensors="pt", padding=True)
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        assert out.shape[0] == 2 and out.shape[1] >= inputs["input_ids"].shape[1] + 1
        assert all(isinstance(s, str) for s in tok.batch_decode(out, skip_special_tokens=True))


def test_cli_reports_missing_checkpoint_on_one_line(tmp_path, tiny_corpus):
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {
                "model": {
                    "layers": 1,
                    "hidden": 8,
                    "heads": 2,
                    "vocab_size": 10,
                    "seq_length": 8,
                    "ffn_hidden": 16,
                    "normalization": "RMSNorm",
                    "activation": "swiglu",
                    "bias": False,
                    "position_embedding": "rotary",
                    "rotary_percent": 1.0,
                    "tied_embeddings": False,
                }
            }
        )
    )
    proc = run_module(
        "workflow.export.hf",
        ["--run-dir", str(tmp_path), "--tokenizer", tiny_corpus["tokenizer"], "--out", str(tmp_path / "hf")],
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "no complete checkpoint" in proc.stderr
    assert not (tmp_path / "hf").exists()


def test_grouped_query_attention_is_refused_in_one_line():
    llama = {"normalization": "RMSNorm", "activation": "swiglu", "position_embedding": "rotary", "heads": 8}
    assert hf_class_for(dict(llama, kv_heads=8)) == "LlamaForCausalLM"  # as many KV heads as heads: plain MHA
    with pytest.raises(ScaleDAGError, match=r"grouped-query attention \(2 KV heads for 8\)"):
        hf_class_for(dict(llama, kv_heads=2))
