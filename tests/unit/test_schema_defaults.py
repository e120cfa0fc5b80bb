"""Config defaults live in the schema only: validation fills them, and no module restates one.

The scan fails on `x.get("<key>", <constant>)` anywhere in workflow/ and analysis/ where <key> is a
config property: such a fallback is a second copy of a default that can drift from the schema's (a
fallback of {} / [] / None for an absent optional section is not a value and is allowed).
"""

from __future__ import annotations

import ast

from conftest import REPO
from workflow import schema
from workflow.config import load_config
from workflow.hpc.resources import rule_resource_spec

# (module, key) -> why its fallback is not a config default.
NOT_CONFIG = {
    ("workflow/model/gpt.py", "rotary_percent"): "architecture options: ARCHITECTURES holds the presets",
    ("workflow/model/gpt.py", "tied_embeddings"): "architecture options: ARCHITECTURES holds the presets",
    ("workflow/model/gpt.py", "embedding_layernorm"): "architecture options: ARCHITECTURES holds the presets",
    ("workflow/export/hf_classes.py", "embedding_layernorm"): "a ModelSpec dict, options from ARCHITECTURES",
    ("workflow/export/hf_classes.py", "rotary_percent"): "a ModelSpec dict, options from ARCHITECTURES",
    ("workflow/report/wandb_report.py", "tp"): "reads run summaries, where old runs may lack the key",
    ("workflow/report/wandb_report.py", "pp"): "reads run summaries, where old runs may lack the key",
}


def _property_names(node, names: set[str]) -> set[str]:
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            names.update(node["properties"])
        for value in node.values():
            _property_names(value, names)
    elif isinstance(node, list):
        for value in node:
            _property_names(value, names)
    return names


def _is_value(node) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is not None
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.List, ast.Tuple)):
        return bool(node.elts) and all(isinstance(e, ast.Constant) for e in node.elts)
    return False


def test_no_module_restates_a_config_default():
    keys = _property_names(schema.schema(), set())
    found = []
    for path in sorted([*(REPO / "workflow").rglob("*.py"), *(REPO / "analysis").rglob("*.py")]):
        rel = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"):
                continue
            if len(node.args) != 2 or not isinstance(node.args[0], ast.Constant):
                continue
            key = node.args[0].value
            if key in keys and _is_value(node.args[1]) and (rel, key) not in NOT_CONFIG:
                found.append(f"{rel}:{node.lineno}: .get({key!r}, {ast.unparse(node.args[1])})")
    assert not found, "defaults restated outside the schema:\n" + "\n".join(found)


def test_validation_fills_the_defaults_the_code_reads():
    config = load_config(REPO / "config.yaml")
    for scale in ("tiny", "small", "paper"):
        sc = config["scales"][scale]
        assert {"tp", "pp"} <= set(sc["parallel"]) and sc["eval"]["max_tokens"] > 0 and sc["threads_per_run"] >= 1
        assert {"log_interval", "eval_interval", "eval_iters", "keep_checkpoints", "seed"} <= set(sc["train"])
    iso = config["studies"]["chinchilla"]["isoflop"]
    assert iso["evals_per_run"] == 10 and set(iso["shape_rule"]) == {"aspect_ratio", "head_size", "hidden_multiple"}
    # the study-level rule has defaults; a scale's own rule must not, or it would override the study's
    assert set(iso["small"]["shape_rule"]) == {"aspect_ratio", "head_size"}  # as config.yaml writes it
    assert config["corpora"]["matsci"]["near_dedup"] == schema.defaults("near_dedup")


def test_a_rule_without_resources_gets_the_schema_defaults():
    config = load_config(REPO / "config.yaml", {"scale": "paper"})
    assert rule_resource_spec(config, "no_such_rule") == {"nodes": 1, "tasks_per_node": 1, "gpus_per_task": 0}
    assert (
        rule_resource_spec(config, "pretrain")["nodes"] == config["scales"]["paper"]["resources"]["pretrain"]["nodes"]
    )
