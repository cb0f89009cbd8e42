#!/usr/bin/env bash
# make test's pytest: every test, spread over worker processes (pytest-xdist, `--dist load`).
# Each worker has its own throwaway PostgreSQL, moto S3 and Prefect server (session fixtures),
# and every test uses free ports and temporary folders, so tests can run side by side. The slow
# end-to-end tests are collected first (tests/conftest.py), so each starts at once on a worker
# of its own while the short ones fill in around them. Most tests wait on servers and
# subprocesses, so more workers than the machine's 2 cores pay off (measured: see
# docs/development.md). PYTEST_WORKERS overrides the number; extra arguments go to pytest.
# Usage: tests/run_suite.sh [venv bin directory] [pytest arguments...]
set -euo pipefail
bin=${1:-.venv/bin}
shift || true
exec "$bin/pytest" -n "${PYTEST_WORKERS:-4}" --dist load --maxschedchunk 1 --durations=30 "$@"
