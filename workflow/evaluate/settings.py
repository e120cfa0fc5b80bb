"""Downstream-evaluation settings from config, for the DAG (no pandas, numpy or torch).

`zeroshot:` / `bandgap:` in config.yaml (their defaults live in the schema); a study takes part by
setting `zeroshot: true` / `bandgap: true`. `workflow.evaluate.downstream` (the tables) re-exports
these names.
"""

from __future__ import annotations

from pathlib import Path

from workflow.evaluate.zeroshot_tasks import missing_files
from workflow.layout import input_path

BANDGAP_DATA_FILE = "matbench_expt_gap.csv"  # Matbench's matbench_expt_gap (workflow.evaluate.bandgap's DATA_FILE)


def zeroshot_settings(config: dict) -> dict:
    return config["zeroshot"]  # filled with the schema's defaults when config loads


def bandgap_settings(config: dict) -> dict:
    return config["bandgap"]


def evaluates(config: dict, study: str, which: str) -> bool:
    """Whether `study` declares the downstream evaluation `which` (`zeroshot` or `bandgap`)."""
    return bool(config["studies"][study].get(which))


def zeroshot_limit(config: dict) -> int | None:
    return zeroshot_settings(config)["limit"].get(config["scale"])


def bandgap_rows(config: dict) -> int | None:
    return bandgap_settings(config)["rows"].get(config["scale"])


def missing_zeroshot_data(config: dict) -> list[Path]:
    s = zeroshot_settings(config)
    return missing_files(s["tasks"], input_path(s["data_dir"]))


def missing_bandgap_data(config: dict) -> list[Path]:
    path = input_path(bandgap_settings(config)["data_dir"]) / BANDGAP_DATA_FILE
    return [] if path.is_file() else [path]
