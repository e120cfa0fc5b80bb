"""Export a ScaleDAG checkpoint to a Hugging Face `transformers` model directory (+ its tokenizer).

Why: evaluation harnesses (lm-eval) and anyone outside this project read HF checkpoints, not
Megatron dist_checkpointing shards.  The architecture options of the run (ModelSpec, recorded in
the run's summary.json) choose the HF class that computes exactly the same function:

    RMSNorm + SwiGLU + full rotary                  -> LlamaForCausalLM (biases via attention_bias/mlp_bias)
    LayerNorm + GeLU + rotary (any fraction) / none -> GPTNeoXForCausalLM (sequential residual)
    LayerNorm + GeLU + learned absolute positions   -> GPT2LMHeadModel
    LayerNorm + GeLU + ALiBi + embedding LayerNorm  -> BloomForCausalLM

Anything else (e.g. LayerNorm + SwiGLU) has no HF class with the same math and is refused.

Each class is one `Adapter` in `ADAPTERS` (torchtitan's state-dict-adapter habit): its config kwargs and
tables `hf key -> (Megatron key, transform)` for a decoder layer and for the rest (embeddings, final norm,
lm_head), with a handful of named transforms (same, conv1d transpose, split_q/k/v, gate/up, qkv_cat).
Why tables: the export is a renaming plus a few reshapes, so each class's whole mapping reads at a glance,
`convert_state_dict` is one loop for all of them, and a new class is a new table, not a new branch.

Layout notes (megatron-core 0.16.1, local layer spec):
- `linear_qkv` rows are grouped per query group: [q heads of the group, k, v] x head_dim.  With
  one group per head that is [q_h, k_h, v_h] per head, which is exactly NeoX's and BLOOM's fused
  `query_key_value` layout; Llama gets separate q/k/v, GPT-2 gets [Q_all, K_all, V_all].
- Rotary is Megatron's non-interleaved (half-split, `rotate_half`) form applied to the first
  `int(head_dim * rotary_percent)` dims, the same convention as HF NeoX/Llama, so no permutation.
- SwiGLU `linear_fc1` is [gate; up] (Megatron applies the activation to the first chunk).
- BLOOM's GeLU is the tanh approximation (`bloom_gelu_forward`, not configurable) while Megatron's
  is exact: the one inexact mapping; on tiny trained models logits still agree within 1e-4
  relative (tests/unit/test_export_hf.py), but deep models may drift further.
- Weights are taken from a TP=PP=1 rebuild of the model (dist_checkpointing reshards on load), in fp32.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from workflow.errors import ScaleDAGError, main_guard
from workflow.export.hf_classes import exportable_runs, hf_class_for  # noqa: F401 (exportable_runs re-exported)
from workflow.hpc.launch import shutdown
from workflow.io import atomic_path
from workflow.model.gpt import ModelSpec
from workflow.train.checkpoint import load_final_model

EOD_TOKEN = "<|endoftext|>"
ROTARY_BASE = 10000.0  # GPTModel's default rotary_base
NORM_EPS = 1e-5  # workflow.model.gpt.transformer_config's layernorm_epsilon


def model_spec_from_summary(run_dir: str | os.PathLike):
    """The run's ModelSpec, rebuilt from `summary.json` (written by workflow.train.pretrain)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ScaleDAGError(f"{path}: no such file (export needs a finished run)")
    model = json.loads(path.read_text()).get("model")
    if not isinstance(model, dict):
        raise ScaleDAGError(f"{path}: no 'model' object (the run's ModelSpec)")
    names = {f.name for f in dataclasses.fields(ModelSpec)}
    try:
        return ModelSpec(**{k: v for k, v in model.items() if k in names})
    except TypeError as exc:
        raise ScaleDAGError(f"{path}: 'model' is not a ModelSpec ({exc})") from None


def _split_qkv(w: torch.Tensor, heads: int, groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Megatron fused QKV rows [groups x (q_per_group + 2) x head_dim] -> q, k, v rows (head-major)."""
    per_group = heads // groups + 2
    grouped = w.reshape(groups, per_group, -1, *w.shape[1:])
    q = grouped[:, :-2].reshape(-1, *w.shape[1:])
    k = grouped[:, -2].reshape(-1, *w.shape[1:])
    v = grouped[:, -1].reshape(-1, *w.shape[1:])
    return q, k, v


# --- one adapter per target class ---------------------------------------------------------------------------
# Transforms: (Megatron tensor, ModelSpec) -> HF tensor.  Fused QKV is split with one query group per head.


def same(t, m):
    return t


def conv1d(t, m):  # GPT-2's Conv1D stores weights as [in, out]
    return t.t()


def split_q(t, m):
    return _split_qkv(t, m.heads, m.heads)[0]


def split_k(t, m):
    return _split_qkv(t, m.heads, m.heads)[1]


def split_v(t, m):
    return _split_qkv(t, m.heads, m.heads)[2]


def gate(t, m):  # SwiGLU fc1 is [gate; up]
    return t.chunk(2, dim=0)[0]


def up(t, m):
    return t.chunk(2, dim=0)[1]


def qkv_cat(t, m):  # GPT-2's c_attn rows are [Q_all, K_all, V_all]
    return torch.cat(_split_qkv(t, m.heads, m.heads))


def conv1d_qkv_cat(t, m):
    return qkv_cat(t, m).t()


KeyMap = dict[str, tuple[str, Callable]]  # hf key -> (Megatron key, transform)


@dataclasses.dataclass(frozen=True)
class Adapter:
    """How one transformers class reads a Megatron GPTModel (TP=1) state dict.

    `layer` keys are relative to `layer_prefix` (HF, "{i}" = layer index) and `decoder.layers.{i}.` (Megatron);
    `layer_if_bias` joins them only for runs trained with biases; `top` is everything outside the decoder layers.
    A Megatron key ending in "?" may be missing (a run trained without biases): it then exports zeros the size of
    its weight, since these HF classes always have that bias.  `output_layer.weight` of a run with tied
    embeddings is its word embeddings."""

    config_class: str  # transformers config class, built with hf_config's common kwargs (vocab, tokens, tying)
    config: Callable[..., dict]  # ModelSpec -> the class-specific config kwargs
    layer_prefix: str
    layer: KeyMap
    top: KeyMap
    layer_if_bias: KeyMap = dataclasses.field(default_factory=dict)


# The adapters, aligned by hand (`ruff format` leaves them alone).
# fmt: off
LLAMA = Adapter(
    config_class="LlamaConfig",
    config=lambda m: dict(
        hidden_size=m.hidden, intermediate_size=m.ffn_hidden, num_hidden_layers=m.layers,
        num_attention_heads=m.heads, num_key_value_heads=m.heads, hidden_act="silu",
        max_position_embeddings=m.seq_length, rms_norm_eps=NORM_EPS, attention_bias=m.bias, mlp_bias=m.bias,
        rope_parameters={"rope_type": "default", "rope_theta": ROTARY_BASE}),
    layer_prefix="model.layers.{i}.",
    layer={
        "self_attn.q_proj.weight":          ("self_attention.linear_qkv.weight", split_q),
        "self_attn.k_proj.weight":          ("self_attention.linear_qkv.weight", split_k),
        "self_attn.v_proj.weight":          ("self_attention.linear_qkv.weight", split_v),
        "self_attn.o_proj.weight":          ("self_attention.linear_proj.weight", same),
        "mlp.gate_proj.weight":             ("mlp.linear_fc1.weight", gate),
        "mlp.up_proj.weight":               ("mlp.linear_fc1.weight", up),
        "mlp.down_proj.weight":             ("mlp.linear_fc2.weight", same),
        "input_layernorm.weight":           ("input_layernorm.weight", same),
        "post_attention_layernorm.weight":  ("pre_mlp_layernorm.weight", same),
    },
    layer_if_bias={
        "self_attn.q_proj.bias":            ("self_attention.linear_qkv.bias", split_q),
        "self_attn.k_proj.bias":            ("self_attention.linear_qkv.bias", split_k),
        "self_attn.v_proj.bias":            ("self_attention.linear_qkv.bias", split_v),
        "self_attn.o_proj.bias":            ("self_attention.linear_proj.bias", same),
        "mlp.gate_proj.bias":               ("mlp.linear_fc1.bias", gate),
        "mlp.up_proj.bias":                 ("mlp.linear_fc1.bias", up),
        "mlp.down_proj.bias":               ("mlp.linear_fc2.bias", same),
    },
    top={
        "model.embed_tokens.weight":        ("embedding.word_embeddings.weight", same),
        "model.norm.weight":                ("decoder.final_layernorm.weight", same),
        "lm_head.weight":                   ("output_layer.weight", same),
    },
)

NEOX = Adapter(
    config_class="GPTNeoXConfig",
    config=lambda m: dict(
        hidden_size=m.hidden, intermediate_size=m.ffn_hidden, num_hidden_layers=m.layers,
        num_attention_heads=m.heads, hidden_act="gelu", max_position_embeddings=m.seq_length,
        layer_norm_eps=NORM_EPS, use_parallel_residual=False, attention_bias=True,
        rope_parameters={"rope_type": "default", "rope_theta": ROTARY_BASE, "partial_rotary_factor":
                         m.rotary_percent if m.position_embedding == "rotary" else 0.0}),
    layer_prefix="gpt_neox.layers.{i}.",
    layer={  # fused per-head [q, k, v] rows: Megatron's own layout with one group per head
        "input_layernorm.weight":           ("input_layernorm.weight", same),
        "input_layernorm.bias":             ("input_layernorm.bias?", same),
        "attention.query_key_value.weight": ("self_attention.linear_qkv.weight", same),
        "attention.query_key_value.bias":   ("self_attention.linear_qkv.bias?", same),
        "attention.dense.weight":           ("self_attention.linear_proj.weight", same),
        "attention.dense.bias":             ("self_attention.linear_proj.bias?", same),
        "post_attention_layernorm.weight":  ("pre_mlp_layernorm.weight", same),
        "post_attention_layernorm.bias":    ("pre_mlp_layernorm.bias?", same),
        "mlp.dense_h_to_4h.weight":         ("mlp.linear_fc1.weight", same),
        "mlp.dense_h_to_4h.bias":           ("mlp.linear_fc1.bias?", same),
        "mlp.dense_4h_to_h.weight":         ("mlp.linear_fc2.weight", same),
        "mlp.dense_4h_to_h.bias":           ("mlp.linear_fc2.bias?", same),
    },
    top={
        "gpt_neox.embed_in.weight":         ("embedding.word_embeddings.weight", same),
        "gpt_neox.final_layer_norm.weight": ("decoder.final_layernorm.weight", same),
        "gpt_neox.final_layer_norm.bias":   ("decoder.final_layernorm.bias?", same),
        "lm_head.weight":                   ("output_layer.weight", same),
    },
)

GPT2 = Adapter(
    config_class="GPT2Config",
    config=lambda m: dict(
        n_embd=m.hidden, n_layer=m.layers, n_head=m.heads, n_inner=m.ffn_hidden, n_positions=m.seq_length,
        activation_function="gelu", layer_norm_epsilon=NORM_EPS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
    layer_prefix="transformer.h.{i}.",
    layer={
        "ln_1.weight":                      ("input_layernorm.weight", same),
        "ln_1.bias":                        ("input_layernorm.bias?", same),
        "attn.c_attn.weight":               ("self_attention.linear_qkv.weight", conv1d_qkv_cat),
        "attn.c_attn.bias":                 ("self_attention.linear_qkv.bias?", qkv_cat),
        "attn.c_proj.weight":               ("self_attention.linear_proj.weight", conv1d),
        "attn.c_proj.bias":                 ("self_attention.linear_proj.bias?", same),
        "ln_2.weight":                      ("pre_mlp_layernorm.weight", same),
        "ln_2.bias":                        ("pre_mlp_layernorm.bias?", same),
        "mlp.c_fc.weight":                  ("mlp.linear_fc1.weight", conv1d),
        "mlp.c_fc.bias":                    ("mlp.linear_fc1.bias?", same),
        "mlp.c_proj.weight":                ("mlp.linear_fc2.weight", conv1d),
        "mlp.c_proj.bias":                  ("mlp.linear_fc2.bias?", same),
    },
    top={
        "transformer.wte.weight":           ("embedding.word_embeddings.weight", same),
        "transformer.wpe.weight":           ("embedding.position_embeddings.weight", same),
        "transformer.ln_f.weight":          ("decoder.final_layernorm.weight", same),
        "transformer.ln_f.bias":            ("decoder.final_layernorm.bias?", same),
        "lm_head.weight":                   ("output_layer.weight", same),
    },
)

BLOOM = Adapter(
    config_class="BloomConfig",
    config=lambda m: dict(
        hidden_size=m.hidden, n_layer=m.layers, n_head=m.heads, layer_norm_epsilon=NORM_EPS,
        hidden_dropout=0.0, attention_dropout=0.0),
    layer_prefix="transformer.h.{i}.",
    layer={  # fused per-head [q, k, v] rows, as NeoX
        "input_layernorm.weight":                ("input_layernorm.weight", same),
        "input_layernorm.bias":                  ("input_layernorm.bias?", same),
        "self_attention.query_key_value.weight": ("self_attention.linear_qkv.weight", same),
        "self_attention.query_key_value.bias":   ("self_attention.linear_qkv.bias?", same),
        "self_attention.dense.weight":           ("self_attention.linear_proj.weight", same),
        "self_attention.dense.bias":             ("self_attention.linear_proj.bias?", same),
        "post_attention_layernorm.weight":       ("pre_mlp_layernorm.weight", same),
        "post_attention_layernorm.bias":         ("pre_mlp_layernorm.bias?", same),
        "mlp.dense_h_to_4h.weight":              ("mlp.linear_fc1.weight", same),
        "mlp.dense_h_to_4h.bias":                ("mlp.linear_fc1.bias?", same),
        "mlp.dense_4h_to_h.weight":              ("mlp.linear_fc2.weight", same),
        "mlp.dense_4h_to_h.bias":                ("mlp.linear_fc2.bias?", same),
    },
    top={
        "transformer.word_embeddings.weight":           ("embedding.word_embeddings.weight", same),
        "transformer.ln_f.weight":                      ("decoder.final_layernorm.weight", same),
        "transformer.ln_f.bias":                        ("decoder.final_layernorm.bias?", same),
        "transformer.word_embeddings_layernorm.weight": ("embedding.embedding_layernorm.weight", same),
        "transformer.word_embeddings_layernorm.bias":   ("embedding.embedding_layernorm.bias", same),
        "lm_head.weight":                               ("output_layer.weight", same),
    },
)
# fmt: on

ADAPTERS: dict[str, Adapter] = {
    "LlamaForCausalLM": LLAMA,
    "GPTNeoXForCausalLM": NEOX,
    "GPT2LMHeadModel": GPT2,
    "BloomForCausalLM": BLOOM,
}


def adapter_for(hf_class: str) -> Adapter:
    if hf_class not in ADAPTERS:
        raise ScaleDAGError(f"export_hf: unknown Hugging Face class {hf_class!r}")
    return ADAPTERS[hf_class]


def hf_config(mspec, hf_class: str, eod_id: int):
    """The transformers config for `hf_class` describing `mspec` (fp32, no dropout)."""
    import transformers

    adapter = adapter_for(hf_class)
    common = dict(
        vocab_size=mspec.vocab_size,
        bos_token_id=eod_id,
        eos_token_id=eod_id,
        pad_token_id=eod_id,
        tie_word_embeddings=mspec.tied_embeddings,
        dtype="float32",
    )
    return getattr(transformers, adapter.config_class)(**adapter.config(mspec), **common)


def convert_state_dict(sd: dict, mspec, hf_class: str) -> dict[str, torch.Tensor]:
    """Megatron GPTModel state dict (TP=1) -> the HF class's state dict (same tensors, renamed/split)."""
    adapter = adapter_for(hf_class)
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor) and not k.endswith("_extra_state")}

    def get(key):
        if key.endswith("?"):  # a layer trained without bias exports a zero bias where HF always has one
            key = key[:-1]
            if key not in sd:
                weight = get(key.removesuffix("bias") + "weight")
                return torch.zeros(weight.shape[0], dtype=weight.dtype)
        if key == "output_layer.weight" and mspec.tied_embeddings:
            key = "embedding.word_embeddings.weight"
        if key not in sd:
            raise ScaleDAGError(f"export_hf: checkpoint has no {key!r} (expected for {hf_class})")
        return sd[key]

    layer = {**adapter.layer, **(adapter.layer_if_bias if mspec.bias else {})}
    out: dict[str, torch.Tensor] = {}
    for i in range(mspec.layers):
        for hf_key, (key, fn) in layer.items():
            out[adapter.layer_prefix.format(i=i) + hf_key] = fn(get(f"decoder.layers.{i}.{key}"), mspec)
    for hf_key, (key, fn) in adapter.top.items():
        out[hf_key] = fn(get(key), mspec)
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in out.items()}


def build_hf_model(mspec, hf_class: str, state: dict[str, torch.Tensor], eod_id: int):
    """Instantiate the HF class without allocating random weights, then load `state` strictly."""
    import transformers

    config = hf_config(mspec, hf_class, eod_id)
    with torch.device("meta"):
        model = getattr(transformers, hf_class)(config)
    expected = set(model.state_dict())
    if mspec.tied_embeddings:
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
        expected.discard("lm_head.weight")
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise ScaleDAGError(
            f"export_hf: {hf_class} weights do not line up (missing {missing[:4]}, unexpected {extra[:4]})"
        )
    model.load_state_dict(state, strict=False, assign=True)
    if mspec.tied_embeddings:
        model.tie_weights()
    # Non-persistent buffers (rotary inv_freq) were created on meta: rebuild their modules on CPU.
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)) and hasattr(module, "config"):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, type(module)(module.config))
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ScaleDAGError(f"export_hf: {hf_class} tensors left uninitialised: {left[:4]}")
    return model.eval()


def load_megatron_state(run_dir: str | os.PathLike, mspec, iteration: int | None = None) -> tuple[dict, int]:
    """Model weights of a run's final (or the given) checkpoint, verified, gathered to TP=PP=1."""
    model, it = load_final_model(run_dir, mspec, iteration)
    return model.state_dict(), it


def save_tokenizer(tokenizer_json: str | os.PathLike, out_dir: Path, max_length: int) -> int:
    """Write the run's byte-level BPE as a PreTrainedTokenizerFast; returns the EOD id."""
    from transformers import PreTrainedTokenizerFast

    if not Path(tokenizer_json).is_file():
        raise ScaleDAGError(f"{tokenizer_json}: no such tokenizer file")
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json),
        bos_token=EOD_TOKEN,
        eos_token=EOD_TOKEN,
        pad_token=EOD_TOKEN,
        unk_token=EOD_TOKEN,
        model_max_length=max_length,
    )
    eod = tok.convert_tokens_to_ids(EOD_TOKEN)
    if eod is None or tok.convert_ids_to_tokens(eod) != EOD_TOKEN:
        raise ScaleDAGError(f"{tokenizer_json}: has no {EOD_TOKEN} token")
    tok.save_pretrained(str(out_dir))
    return int(eod)


def export_hf(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, tokenizer: str | os.PathLike, iteration: int | None = None
) -> dict:
    """Write `out_dir` (atomically) so `AutoModelForCausalLM/AutoTokenizer.from_pretrained(out_dir)` work."""
    mspec = model_spec_from_summary(run_dir)
    hf_class = hf_class_for(mspec.to_dict())
    try:
        print(f"loading checkpoint of {run_dir} ({hf_class})", flush=True)
        sd, it = load_megatron_state(run_dir, mspec, iteration)
    finally:
        shutdown()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        eod = save_tokenizer(tokenizer, tmp, mspec.seq_length)
        model = build_hf_model(mspec, hf_class, convert_state_dict(sd, mspec, hf_class), eod)
        model.generation_config.update(bos_token_id=eod, eos_token_id=eod, pad_token_id=eod)
        model.save_pretrained(str(tmp))
        info = {"hf_class": hf_class, "iteration": it, "run_dir": str(run_dir), "model": mspec.to_dict()}
        (tmp / "scaledag_export.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        print(f"wrote {hf_class} ({sum(p.numel() for p in model.parameters())} parameters) to {out_dir}", flush=True)
    return {"hf_class": hf_class, "iteration": it, "out_dir": str(out_dir)}


@main_guard
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="export a run's checkpoint to a Hugging Face model directory")
    parser.add_argument("--run-dir", required=True, help="results/<scale>/<study>/runs/<run>")
    parser.add_argument("--tokenizer", required=True, help="the run's tokenizer.json")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    parser.add_argument("--iteration", type=int, default=None, help="checkpoint iteration (default: latest)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(export_hf(args.run_dir, args.out, args.tokenizer, args.iteration)))


if __name__ == "__main__":
    main()
