"""JSON outputs of the generated Snakemake unit tests compared as data: run-dependent keys (timings,
hosts) dropped, floats equal to 1e-9 relative. Imported by tests/rules/common.py (see finish.py)."""

import json
import math
from pathlib import Path

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


def same_json(expected_file, generated_file) -> bool:
    expected = _strip(json.loads(Path(expected_file).read_text()))
    generated = _strip(json.loads(Path(generated_file).read_text()))
    return _same(expected, generated)
