# shadowswap: `make demo` runs the main job, `make test` the whole suite (lint included).
# Each target creates .venv and installs what it needs on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
LINTED := src tests benchmarks scripts

.PHONY: setup system-deps lint test demo bench mutation clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "shadowswap needs Python 3.11: run make PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24"
	$(PIP) install -e '.[all,dev]'
	@touch $@

system-deps:
	@scripts/ensure_system_packages.sh

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint system-deps
	$(BIN)/pytest

# The whole migration rehearsed on GloVe data (docs/rehearsal.md): reports in data/rehearsal.
demo: setup
	$(BIN)/shadowswap rehearse

# wrk (Debian) drives the gateway benchmark; without it that benchmark uses a slower Python client.
bench: setup
	@scripts/ensure_system_packages.sh wrk || echo "wrk not installed: bench_service falls back to its Python client"
	$(BIN)/python benchmarks/run_all.py

# Mutation testing of the gate's stats.py and evaluate.py against tests/gate ([tool.mutmut],
# docs/gate.md): 11 minutes on 2 CPUs, so not part of `make test`. Runs in a copy of the
# tree (MUTATION_DIR, default a temporary directory); fails when a module scores below 95 %.
mutation: setup
	scripts/mutation.sh $(BIN)

clean:
	rm -rf $(VENV) data mutants .pytest_cache .mypy_cache .ruff_cache
