"""Fixture of the generated Snakemake unit tests (see tests/unit_tools/finish.py)."""
import os

from pytest import fixture


@fixture()
def conda_prefix():
    prefix = os.environ.get("SNAKEMAKE_CONDA_PREFIX")
    return ["--conda-prefix", prefix] if prefix else []
