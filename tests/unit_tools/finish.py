"""Make the generated Snakemake unit tests deterministic and runnable under `make test`.

- run Snakemake (and the rules' `python -m workflow...`) with the test's own Python, the venv's;
- compare JSON outputs as data (tests/unit_tools/json_compare.py: no run-dependent keys, floats to
  1e-9 relative), binary and text outputs byte for byte as generated;
- the generated conftest adds a command-line option, which pytest allows only in the top conftest:
  take the conda prefix from SNAKEMAKE_CONDA_PREFIX instead."""

import sys
from pathlib import Path

COMPARE = """

# -- ScaleDAG override (tests/unit_tools/finish.py): JSON compared as data, without timings --------
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit_tools"))
from json_compare import same_json  # noqa: E402


class DeterministicChecker(OutputChecker):
    def compare_files(self, expected_file, generated_file, cmp_cmds):
        if Path(expected_file).suffix == ".json":
            if not same_json(expected_file, generated_file):
                pytest.fail(f"{expected_file} differs from {generated_file} (timings ignored)", pytrace=False)
            return
        super().compare_files(expected_file, generated_file, cmp_cmds)
"""

CONFTEST = '''"""Fixture of the generated Snakemake unit tests (see tests/unit_tools/finish.py)."""
import os

from pytest import fixture


@fixture()
def conda_prefix():
    prefix = os.environ.get("SNAKEMAKE_CONDA_PREFIX")
    return ["--conda-prefix", prefix] if prefix else []
'''


def main(root: Path) -> None:
    common = root / "common.py"
    if "DeterministicChecker" not in common.read_text():
        common.write_text(common.read_text() + COMPARE)
    (root / "conftest.py").write_text(CONFTEST)
    # A package, so its conftest imports as `unit.conftest` and never shadows tests/conftest.py
    # (tests there do `from conftest import ...` at run time).
    (root / "__init__.py").write_text("")
    for test in root.glob("test_*.py"):
        text = test.read_text()
        text = text.replace('                "python",\n', "                sys.executable,\n")
        text = text.replace("common.OutputChecker(", "common.DeterministicChecker(")
        # rules call `python -m workflow...`: the venv's python must come first on PATH
        text = text.replace(
            "            + conda_prefix\n        )",
            "            + conda_prefix,\n"
            '            env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")),\n'
            "        )",
        )
        test.write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
