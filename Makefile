# ScaleDAG: `make run` runs the tiny DAG, `make test` runs the test suite; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(CURDIR)/$(VENV)/bin
# The stamp records which dependency files the venv was built from: editing them makes it stale.
STAMP := $(VENV)/.scaledag-setup
export PATH := $(BIN):$(PATH)
export TOKENIZERS_PARALLELISM := false
export WANDB_MODE ?= offline

.PHONY: setup run test dry-run-paper plan lint format clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@if ! $(BIN)/python -c "import sys; assert sys.version_info[:2] >= (3, 11)" 2>/dev/null; then \
		echo "creating $(VENV)"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# compat: the repo root goes on sys.path, so Snakemake finds the Parsl executor plugin (it scans top-level modules)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	@touch $(STAMP)

run: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup
	$(BIN)/python -m pytest -ra

dry-run-paper: setup
	$(BIN)/snakemake -n --config scale=paper

# Cost plan of a scale's DAG (workflow/hpc/plan.py): results/<scale>/plan.csv and a table, nothing
# submitted, no Slurm needed. `make plan SCALE=small PROFILE=profiles/slurm`; ALLOCATION=<node-hours>
# makes an overrun an error.
SCALE ?= paper
PROFILE ?= profiles/frontier
plan: setup
	$(BIN)/python -m workflow.hpc.plan --scale $(SCALE) --profile $(PROFILE) $(if $(ALLOCATION),--config allocation_node_hours=$(ALLOCATION))

# Lint: Snakemake's own checks, ruff (lint + format) on the Python, snakefmt on the Snakemake files,
# and docs/CONFIG.md current with the schema. `make format` rewrites what the format checks reject.
lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/python -m workflow.config_reference --check

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile rules/

clean:
	rm -rf results logs .snakemake
