"""Study kinds whose runs are derived in code rather than listed (`studies.<s>.kind` in config).

Each generator maps (config, study) -> {run name: run dict} in the shape `workflow.config.study_runs`
returns; the `pretrain` rule then treats generated runs exactly like listed ones. A generator may
offer `.shared(config, study)`, the same answer uncopied, for read-only lookups of one run.
"""

from __future__ import annotations

from collections.abc import Callable

from workflow.studies.isoflop import isoflop_runs
from workflow.studies.proxy import proxy_runs

GENERATORS: dict[str, Callable[[dict, str], dict[str, dict]]] = {}

GENERATORS["isoflop"] = isoflop_runs  # Chinchilla IsoFLOP sweeps (memoised, with .shared)


def _proxy(config: dict, study: str) -> dict[str, dict]:
    return proxy_runs(config, study)  # MatGPT architecture design by proxy


GENERATORS["proxy"] = _proxy
