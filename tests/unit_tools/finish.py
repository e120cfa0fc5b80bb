"""Make the generated Snakemake unit tests deterministic and runnable under `make test`.

- run Snakemake (and the rules' `python -m workflow...`) with the test's own Python, the venv's;
- compare JSON outputs as data without run-dependent keys (timings) and floats to 1e-9 relative,
  binary and text outputs byte for byte as generated;
- the generated conftest adds a command-line option, which pytest allows only in the top conftest:
  take the conda prefix from SNAKEMAKE_CONDA_PREFIX instead."""
import sys
from pathlib import Path

COMPARE = '''

# -- ScaleDAG override (tests/unit_tools/finish.py): JSON compared as data, without timings --------
import json
import math

VOLATILE_KEYS = {"seconds", "elapsed", "elapsed_s", "time", "timestamp", "created", "date", "hostname", "pid"}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class DeterministicChecker(OutputChecker):
    def compare_files(self, expected_file, generated_file, cmp_cmds):
        if Path(expected_file).suffix == ".json":
            expected = _strip(json.loads(Path(expected_file).read_text()))
            generated = _strip(json.loads(Path(generated_file).read_text()))
            if not _same(expected, generated):
                pytest.fail(f"{expected_file} differs from {generated_file} (timings ignored)", pytrace=False)
            return
        super().compare_files(expected_file, generated_file, cmp_cmds)
'''

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
        text = text.replace('                "python",\n', '                sys.executable,\n')
        text = text.replace("common.OutputChecker(", "common.DeterministicChecker(")
        # rules call `python -m workflow...`: the venv's python must come first on PATH
        text = text.replace("            + conda_prefix\n        )",
                            "            + conda_prefix,\n"
                            "            env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get(\"PATH\", \"\")),\n"
                            "        )")
        test.write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
