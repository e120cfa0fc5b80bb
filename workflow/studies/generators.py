"""Study kinds whose runs are derived in code rather than listed (`studies.<s>.kind` in config).

The study modules are imported inside each generator because they import workflow.config, which
imports this table. Each generator maps (config, study) -> {run name: run dict} in the shape `workflow.config.study_runs`
returns; the `pretrain` rule then treats generated runs exactly like listed ones.
"""

from __future__ import annotations

from collections.abc import Callable

GENERATORS: dict[str, Callable[[dict, str], dict[str, dict]]] = {}


def _isoflop(config: dict, study: str) -> dict[str, dict]:
    from workflow.studies.isoflop import isoflop_runs  # Chinchilla IsoFLOP sweeps

    return isoflop_runs(config, study)


GENERATORS["isoflop"] = _isoflop


def _proxy(config: dict, study: str) -> dict[str, dict]:
    from workflow.studies.proxy import proxy_runs  # MatGPT architecture design by proxy

    return proxy_runs(config, study)


GENERATORS["proxy"] = _proxy
