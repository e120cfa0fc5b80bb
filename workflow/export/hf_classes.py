"""Which Hugging Face class a run exports to, decided from its ModelSpec dict alone (no torch).

The DAG asks `exportable_runs` which runs of an `export_hf: true` study get an `export_hf` job, so
this lives apart from `workflow.export.hf` (the export itself, which needs torch and transformers);
`workflow.export.hf` re-exports both names. The architecture -> class table is in that module's
docstring.
"""

from __future__ import annotations

from workflow.config import pretrain_spec, study_runs
from workflow.errors import ScaleDAGError
from workflow.model.gpt import make_model_spec


def hf_class_for(model: dict) -> str:
    """Name of the transformers class whose forward equals this ModelSpec dict's; else ScaleDAGError."""
    norm, act = model["normalization"], model["activation"]
    pos = model["position_embedding"]
    emb_ln = bool(model.get("embedding_layernorm", False))
    what = f"normalization={norm}, activation={act}, position_embedding={pos}, embedding_layernorm={emb_ln}"
    kv_heads = model.get("kv_heads")
    if kv_heads and kv_heads != model["heads"]:  # the key maps split QKV with one group per head
        raise ScaleDAGError(
            f"export_hf: grouped-query attention ({kv_heads} KV heads for {model['heads']}) is not exported yet"
        )
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
    ok, skipped = {}, {}
    for run in sorted(study_runs(config, study)):
        spec = pretrain_spec(config, study, run)
        mspec = make_model_spec(spec["arch"], spec["shape"], spec["vocab_size"], spec.get("arch_overrides"))
        try:
            ok[run] = hf_class_for(mspec.to_dict())
        except ScaleDAGError as exc:
            skipped[run] = str(exc).removeprefix("export_hf: ")
    return ok, skipped
