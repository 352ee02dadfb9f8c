# escalator -- run `make help` for the list of targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run test lint typecheck unit integration bench schemas clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/escalator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/escalator ## create .venv and install escalator with the dev extra (includes the embedded broker)

lint: setup ## ruff (lint + format check)
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench

typecheck: setup ## mypy --strict on services/
	$(BIN)/mypy

unit: setup ## unit tests only (no network, no wall clock)
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

test: lint typecheck ## everything CI runs: lint, types, the whole test suite
	$(BIN)/escalator schemas check
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: setup ## benchmarks; results go to bench/results/
	$(PY) bench/core_bench.py

schemas: setup ## regenerate schemas/ from the code
	$(BIN)/escalator schemas write

clean: ## remove caches and build leftovers (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist services/*.egg-info
