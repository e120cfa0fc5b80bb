"""Parsing the DAG loads no heavy library: every Snakemake process (each dry run, each cluster job)
imports what rules/common.smk imports, so torch, pandas and the like must stay out of that set.

Runs in a fresh interpreter (this test session has torch loaded already, by conftest)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

HEAVY = ("torch", "pandas", "numpy", "matplotlib", "megatron", "wandb", "transformers", "lm_eval", "scipy")


def common_smk_imports() -> list[str]:
    """The project modules rules/common.smk imports (its `from workflow... import` lines)."""
    text = (REPO / "rules" / "common.smk").read_text()
    return re.findall(r"^(?:from|import) ((?:workflow|analysis)(?:\.\w+)*)", text, flags=re.M)


def test_common_smk_imports_are_found():
    assert {"workflow.config", "workflow.dag", "workflow.layout"} <= set(common_smk_imports())


def test_dag_parse_loads_no_heavy_library():
    modules = common_smk_imports()
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"HEAVY = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in HEAVY))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    heavy = eval(out.stdout.strip().splitlines()[-1])  # a printed list of module names
    packages = sorted({m.split(".")[0] for m in heavy})
    assert not heavy, f"importing {modules} loads {packages} ({len(heavy)} modules: {', '.join(heavy[:12])}, ...)"
