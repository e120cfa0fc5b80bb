#!/usr/bin/env bash
# Regenerate the Snakemake unit tests under tests/rules from a tiny run (after changing a data rule):
#   bash tests/unit_tools/regenerate.sh
# Runs prepare_corpus and train_tokenizer on the shrunken corpus of tests/slurm/subset.yaml in a temp
# directory, calls `snakemake --generate-unit-tests`, then applies tests/unit_tools/finish.py
# (venv Python, JSON comparison without timings, no pytest_addoption in a nested conftest).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
BIN=$(dirname "$(command -v snakemake || echo .venv/bin/snakemake)")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TARGET=results/tiny/data/synthetic/tokenizer.json
ARGS=(-s "$REPO/Snakefile" -d "$WORK" --configfile "$REPO/config.yaml" "$REPO/tests/slurm/subset.yaml")
"$BIN/snakemake" "$TARGET" "${ARGS[@]}" --cores 2 --quiet
rm -rf tests/rules
"$BIN/snakemake" "$TARGET" "${ARGS[@]}" --generate-unit-tests "$REPO/tests/rules"
"$BIN/python" tests/unit_tools/finish.py tests/rules
