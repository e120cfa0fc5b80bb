"""Export a ScaleDAG checkpoint to a Hugging Face `transformers` model directory (+ its tokenizer).

Why: evaluation harnesses (lm-eval) and anyone outside this project read HF checkpoints, not
Megatron dist_checkpointing shards.  The architecture options of the run (ModelSpec, recorded in
the run's summary.json) choose the HF class that computes exactly the same function:

    RMSNorm + SwiGLU + full rotary                  -> LlamaForCausalLM (biases via attention_bias/mlp_bias)
    LayerNorm + GeLU + rotary (any fraction) / none -> GPTNeoXForCausalLM (sequential residual)
    LayerNorm + GeLU + learned absolute positions   -> GPT2LMHeadModel
    LayerNorm + GeLU + ALiBi + embedding LayerNorm  -> BloomForCausalLM

Anything else (e.g. LayerNorm + SwiGLU) has no HF class with the same math and is refused.

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
from pathlib import Path

import torch

from workflow.errors import ScaleDAGError, main_guard
from workflow.io import atomic_path

EOD_TOKEN = "<|endoftext|>"
ROTARY_BASE = 10000.0  # GPTModel's default rotary_base
NORM_EPS = 1e-5  # workflow.model.gpt.transformer_config's layernorm_epsilon


def hf_class_for(model: dict) -> str:
    """Name of the transformers class whose forward equals this ModelSpec dict's; else ScaleDAGError."""
    norm, act = model["normalization"], model["activation"]
    pos = model["position_embedding"]
    emb_ln = bool(model.get("embedding_layernorm", False))
    what = f"normalization={norm}, activation={act}, position_embedding={pos}, embedding_layernorm={emb_ln}"
    if norm == "RMSNorm" and act == "swiglu" and pos == "rotary" and not emb_ln:
        if float(model.get("rotary_percent", 1.0)) != 1.0:
            raise ScaleDAGError(f"export_hf: Llama needs rotary_percent 1.0, got {model['rotary_percent']} ({what})")
        return "LlamaForCausalLM"
    if norm == "LayerNorm" and act == "gelu":
        if pos == "alibi" and emb_ln:
            return "BloomForCausalLM"
        if not emb_ln and pos in ("rotary", "none"):
            return "GPTNeoXForCausalLM"
        if not emb_ln and pos == "learned":
            return "GPT2LMHeadModel"
    raise ScaleDAGError(f"export_hf: no Hugging Face class computes this architecture ({what})")


def exportable_runs(config: dict, study: str) -> tuple[dict[str, str], dict[str, str]]:
    """(run -> HF class, run -> why not) for a study's runs, decided from config alone (for the DAG)."""
    from workflow.config import pretrain_spec, study_runs
    from workflow.model.gpt import make_model_spec

    ok, skipped = {}, {}
    for run in sorted(study_runs(config, study)):
        spec = pretrain_spec(config, study, run)
        mspec = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec.get("arch_overrides"))
        try:
            ok[run] = hf_class_for(mspec.to_dict())
        except ScaleDAGError as exc:
            skipped[run] = str(exc).removeprefix("export_hf: ")
    return ok, skipped


def model_spec_from_summary(run_dir: str | os.PathLike):
    """The run's ModelSpec, rebuilt from `summary.json` (written by workflow.train.pretrain)."""
    from workflow.model.gpt import ModelSpec

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


def hf_config(mspec, hf_class: str, eod_id: int):
    """The transformers config for `hf_class` describing `mspec` (fp32, no dropout)."""
    import transformers

    common = dict(vocab_size=mspec.vocab_size, bos_token_id=eod_id, eos_token_id=eod_id, pad_token_id=eod_id,
                  tie_word_embeddings=mspec.tied_embeddings, dtype="float32")
    if hf_class == "LlamaForCausalLM":
        return transformers.LlamaConfig(
            hidden_size=mspec.hidden, intermediate_size=mspec.ffn_hidden, num_hidden_layers=mspec.layers,
            num_attention_heads=mspec.heads, num_key_value_heads=mspec.heads, hidden_act="silu",
            max_position_embeddings=mspec.seq_length, rms_norm_eps=NORM_EPS, attention_bias=mspec.bias,
            mlp_bias=mspec.bias, rope_parameters={"rope_type": "default", "rope_theta": ROTARY_BASE}, **common)
    if hf_class == "GPTNeoXForCausalLM":
        fraction = mspec.rotary_percent if mspec.position_embedding == "rotary" else 0.0
        return transformers.GPTNeoXConfig(
            hidden_size=mspec.hidden, intermediate_size=mspec.ffn_hidden, num_hidden_layers=mspec.layers,
            num_attention_heads=mspec.heads, hidden_act="gelu", max_position_embeddings=mspec.seq_length,
            layer_norm_eps=NORM_EPS, use_parallel_residual=False, attention_bias=True,
            rope_parameters={"rope_type": "default", "rope_theta": ROTARY_BASE, "partial_rotary_factor": fraction},
            **common)
    if hf_class == "GPT2LMHeadModel":
        return transformers.GPT2Config(
            n_embd=mspec.hidden, n_layer=mspec.layers, n_head=mspec.heads, n_inner=mspec.ffn_hidden,
            n_positions=mspec.seq_length, activation_function="gelu", layer_norm_epsilon=NORM_EPS,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common)
    if hf_class == "BloomForCausalLM":
        return transformers.BloomConfig(
            hidden_size=mspec.hidden, n_layer=mspec.layers, n_head=mspec.heads, layer_norm_epsilon=NORM_EPS,
            hidden_dropout=0.0, attention_dropout=0.0, **common)
    raise ScaleDAGError(f"export_hf: unknown Hugging Face class {hf_class!r}")


def _split_qkv(w: torch.Tensor, heads: int, groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Megatron fused QKV rows [groups x (q_per_group + 2) x head_dim] -> q, k, v rows (head-major)."""
    per_group = heads // groups + 2
    grouped = w.reshape(groups, per_group, -1, *w.shape[1:])
    q = grouped[:, :-2].reshape(-1, *w.shape[1:])
    k = grouped[:, -2].reshape(-1, *w.shape[1:])
    v = grouped[:, -1].reshape(-1, *w.shape[1:])
    return q, k, v


def convert_state_dict(sd: dict, mspec, hf_class: str) -> dict[str, torch.Tensor]:
    """Megatron GPTModel state dict (TP=1) -> the HF class's state dict (same tensors, renamed/split)."""
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor) and not k.endswith("_extra_state")}
    h, heads = mspec.hidden, mspec.heads

    def get(key):
        if key not in sd:
            raise ScaleDAGError(f"export_hf: checkpoint has no {key!r} (expected for {hf_class})")
        return sd[key]

    def maybe_bias(key, size):  # a layer trained without bias exports a zero bias where HF always has one
        return sd[key] if key in sd else torch.zeros(size, dtype=get("embedding.word_embeddings.weight").dtype)

    out: dict[str, torch.Tensor] = {}
    emb = get("embedding.word_embeddings.weight")
    head_w = emb if mspec.tied_embeddings else get("output_layer.weight")
    for i in range(mspec.layers):
        p = f"decoder.layers.{i}."
        qkv_w, proj_w = get(p + "self_attention.linear_qkv.weight"), get(p + "self_attention.linear_proj.weight")
        fc1_w, fc2_w = get(p + "mlp.linear_fc1.weight"), get(p + "mlp.linear_fc2.weight")
        ln1_w, ln2_w = get(p + "input_layernorm.weight"), get(p + "pre_mlp_layernorm.weight")
        if hf_class == "LlamaForCausalLM":
            q = f"model.layers.{i}."
            for name, t in zip("qkv", _split_qkv(qkv_w, heads, heads)):
                out[q + f"self_attn.{name}_proj.weight"] = t
            out[q + "self_attn.o_proj.weight"] = proj_w
            gate, up = fc1_w.chunk(2, dim=0)
            out.update({q + "mlp.gate_proj.weight": gate, q + "mlp.up_proj.weight": up, q + "mlp.down_proj.weight": fc2_w,
                        q + "input_layernorm.weight": ln1_w, q + "post_attention_layernorm.weight": ln2_w})
            if mspec.bias:
                for name, t in zip("qkv", _split_qkv(get(p + "self_attention.linear_qkv.bias"), heads, heads)):
                    out[q + f"self_attn.{name}_proj.bias"] = t
                gate_b, up_b = get(p + "mlp.linear_fc1.bias").chunk(2, dim=0)
                out.update({q + "self_attn.o_proj.bias": get(p + "self_attention.linear_proj.bias"),
                            q + "mlp.gate_proj.bias": gate_b, q + "mlp.up_proj.bias": up_b,
                            q + "mlp.down_proj.bias": get(p + "mlp.linear_fc2.bias")})
            continue
        biases = {name: maybe_bias(p + name, size) for name, size in (
            ("self_attention.linear_qkv.bias", 3 * h), ("self_attention.linear_proj.bias", h),
            ("mlp.linear_fc1.bias", mspec.ffn_hidden), ("mlp.linear_fc2.bias", h),
            ("input_layernorm.bias", h), ("pre_mlp_layernorm.bias", h))}
        if hf_class == "GPT2LMHeadModel":
            q = f"transformer.h.{i}."
            qkv = [torch.cat(parts) for parts in (_split_qkv(qkv_w, heads, heads), _split_qkv(biases["self_attention.linear_qkv.bias"], heads, heads))]
            out.update({  # GPT-2's Conv1D stores weights as [in, out]
                q + "ln_1.weight": ln1_w, q + "ln_1.bias": biases["input_layernorm.bias"],
                q + "attn.c_attn.weight": qkv[0].t(), q + "attn.c_attn.bias": qkv[1],
                q + "attn.c_proj.weight": proj_w.t(), q + "attn.c_proj.bias": biases["self_attention.linear_proj.bias"],
                q + "ln_2.weight": ln2_w, q + "ln_2.bias": biases["pre_mlp_layernorm.bias"],
                q + "mlp.c_fc.weight": fc1_w.t(), q + "mlp.c_fc.bias": biases["mlp.linear_fc1.bias"],
                q + "mlp.c_proj.weight": fc2_w.t(), q + "mlp.c_proj.bias": biases["mlp.linear_fc2.bias"]})
            continue
        # NeoX and BLOOM: fused per-head [q, k, v] rows, identical to Megatron's with one group per head
        q, attn = (f"gpt_neox.layers.{i}.", "attention") if hf_class == "GPTNeoXForCausalLM" else (f"transformer.h.{i}.", "self_attention")
        out.update({
            q + "input_layernorm.weight": ln1_w, q + "input_layernorm.bias": biases["input_layernorm.bias"],
            q + f"{attn}.query_key_value.weight": qkv_w, q + f"{attn}.query_key_value.bias": biases["self_attention.linear_qkv.bias"],
            q + f"{attn}.dense.weight": proj_w, q + f"{attn}.dense.bias": biases["self_attention.linear_proj.bias"],
            q + "post_attention_layernorm.weight": ln2_w, q + "post_attention_layernorm.bias": biases["pre_mlp_layernorm.bias"],
            q + "mlp.dense_h_to_4h.weight": fc1_w, q + "mlp.dense_h_to_4h.bias": biases["mlp.linear_fc1.bias"],
            q + "mlp.dense_4h_to_h.weight": fc2_w, q + "mlp.dense_4h_to_h.bias": biases["mlp.linear_fc2.bias"]})

    final_w = get("decoder.final_layernorm.weight")
    final_b = maybe_bias("decoder.final_layernorm.bias", h)
    if hf_class == "LlamaForCausalLM":
        out.update({"model.embed_tokens.weight": emb, "model.norm.weight": final_w})
    elif hf_class == "GPTNeoXForCausalLM":
        out.update({"gpt_neox.embed_in.weight": emb, "gpt_neox.final_layer_norm.weight": final_w,
                    "gpt_neox.final_layer_norm.bias": final_b})
    elif hf_class == "GPT2LMHeadModel":
        out.update({"transformer.wte.weight": emb, "transformer.wpe.weight": get("embedding.position_embeddings.weight"),
                    "transformer.ln_f.weight": final_w, "transformer.ln_f.bias": final_b})
    else:
        out.update({"transformer.word_embeddings.weight": emb, "transformer.ln_f.weight": final_w,
                    "transformer.ln_f.bias": final_b,
                    "transformer.word_embeddings_layernorm.weight": get("embedding.embedding_layernorm.weight"),
                    "transformer.word_embeddings_layernorm.bias": get("embedding.embedding_layernorm.bias")})
    out["lm_head.weight"] = head_w
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
        raise ScaleDAGError(f"export_hf: {hf_class} weights do not line up (missing {missing[:4]}, unexpected {extra[:4]})")
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
    from workflow.train.checkpoint import load_final_model

    model, it = load_final_model(run_dir, mspec, iteration)
    return model.state_dict(), it


def save_tokenizer(tokenizer_json: str | os.PathLike, out_dir: Path, max_length: int) -> int:
    """Write the run's byte-level BPE as a PreTrainedTokenizerFast; returns the EOD id."""
    from transformers import PreTrainedTokenizerFast

    if not Path(tokenizer_json).is_file():
        raise ScaleDAGError(f"{tokenizer_json}: no such tokenizer file")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), bos_token=EOD_TOKEN, eos_token=EOD_TOKEN,
                                  pad_token=EOD_TOKEN, unk_token=EOD_TOKEN, model_max_length=max_length)
    eod = tok.convert_tokens_to_ids(EOD_TOKEN)
    if eod is None or tok.convert_ids_to_tokens(eod) != EOD_TOKEN:
        raise ScaleDAGError(f"{tokenizer_json}: has no {EOD_TOKEN} token")
    tok.save_pretrained(str(out_dir))
    return int(eod)


def export_hf(run_dir: str | os.PathLike, out_dir: str | os.PathLike, tokenizer: str | os.PathLike,
              iteration: int | None = None) -> dict:
    """Write `out_dir` (atomically) so `AutoModelForCausalLM/AutoTokenizer.from_pretrained(out_dir)` work."""
    from workflow.hpc.launch import shutdown

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
