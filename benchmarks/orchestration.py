"""Orchestration overhead of the flow for 1, 50 and 500 tables.

Overhead = the flow's wall time minus the DMS task's own ElapsedTimeMillis: what Prefect (task
runs, one subflow run per table, artifacts) and polling add to the replication, and also what
DMS spends outside ElapsedTimeMillis (localdms's 1 s creating and starting transitions, and the
flow's preflight assessment: at 50 tables 1 s + 1 s + 2.1 s of the figure). Also printed: the most DMS API calls made in
one monitoring poll (target: ceil(tables / 500) + 1).

The stack is the demo's: a throwaway PostgreSQL with N small tables per schema, moto's S3 server,
localdms as its own process, and a Prefect server backed by the same PostgreSQL; with
``--sqlite-tables N``, N tables also run against a SQLite-backed server (what ``dms-ingestion
run`` starts when no ``PREFECT_API_URL`` is set), compared with the PostgreSQL-backed run.

Usage: ``python -m benchmarks.orchestration [--tables 1 50 500] [--poll-interval 1]
[--sqlite-tables 600]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
from typing import Any

import boto3
import psycopg

from benchmarks.results import record
from sandbox.localdms_process import LocalDmsProcess, provision_pipeline
from sandbox.postgres import ThrowawayPostgres
from sandbox.prefect_server import PrefectServer
from sandbox.s3 import MotoS3Server

TARGETS = {50: "<= 5", 500: "<= 30"}
"""The overhead targets, seconds (a PostgreSQL-backed Prefect server)."""


def create_tables(dsn: str, count: int) -> str:
    schema = f"orch_{count}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE SCHEMA {schema}; DO $$ BEGIN FOR i IN 1..{count} LOOP "
            f"EXECUTE format('CREATE TABLE {schema}.t%s AS SELECT g AS id, md5(g::text) AS v "
            "FROM generate_series(1, 100) g', i); END LOOP; END $$"
        )
    return schema


def run_flow(
    count: int, schema: str, poll_interval: float, api_url: str, name: str
) -> tuple[float, Any]:
    """One ingestion of the ``count`` tables of ``schema`` against the Prefect API at ``api_url``;
    returns its wall time and report."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import dms_ingestion

    overrides = {
        "dms_task_name": name,
        "s3_bucket_name": "bench-bucket",
        "table_mappings": [{"schema_name": schema, "table_name": "%"}],
    }
    with temporary_settings({PREFECT_API_URL: api_url}):
        started = time.perf_counter()
        report = asyncio.run(
            dms_ingestion(
                config_path=None, poll_interval_seconds=poll_interval, overrides=overrides
            )
        )
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 50, 500])
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument(
        "--sqlite-tables",
        type=int,
        default=0,
        help="also load this many tables with a PostgreSQL-backed and a SQLite-backed server "
        "(as `dms-ingestion run`'s temporary API), and compare (0: not)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(AWS_DEFAULT_REGION="us-east-1")
    if args.child:
        child(int(args.child[0]), args.child[1], float(args.child[2]))
        return

    with ThrowawayPostgres() as postgres, MotoS3Server() as s3_server:
        os.environ.update(s3_server.credentials())  # it checks keys; every client uses these
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE source")
            conn.execute("CREATE DATABASE prefect")
        counts = sorted({*args.tables, *([args.sqlite_tables] if args.sqlite_tables else [])})
        schemas = {count: create_tables(postgres.dsn("source"), count) for count in counts}
        os.environ["AWS_ENDPOINT_URL_S3"] = s3_server.url
        boto3.client("s3", endpoint_url=s3_server.url).create_bucket(Bucket="bench-bucket")
        prefect_db = postgres.dsn("prefect").replace("postgresql://", "postgresql+asyncpg://", 1)
        with (
            LocalDmsProcess(s3_server.url) as localdms,
            PrefectServer(database_url=prefect_db) as server,
        ):
            os.environ["AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE"] = localdms.url
            arns = provision_pipeline(
                boto3.client("dms", endpoint_url=localdms.url),
                postgres.dsn("source"),
                "bench-bucket",
            )
            os.environ.update(arns.environment())

            print(f"\npoll interval {args.poll_interval} s; localdms transition 1 s; "
                  "Prefect server on PostgreSQL")  # fmt: skip
            print(f"{'tables':>7} {'flow s':>8} {'DMS task s':>11} {'overhead s':>11} {'target s':>9} "
                  f"{'calls/poll':>11} {'target':>7}")  # fmt: skip
            walls = {}
            for count in counts:
                wall, report = run_flow(
                    count, schemas[count], args.poll_interval, server.api_url,
                    f"orchestration-{count}",
                )  # fmt: skip
                walls[count] = wall
                task = report.task_elapsed_seconds or 0.0
                print(
                    f"{count:>7} {wall:>8.1f} {task:>11.1f} {wall - task:>11.1f} {TARGETS.get(count, '-'):>9} "
                    f"{report.max_monitoring_calls_per_poll:>11} {'<=' + str(math.ceil(count / 500) + 1):>7}",
                    flush=True,
                )
                record(f"orchestration: overhead at {count} tables", wall - task, "s",
                       target=TARGETS.get(count, ""))  # fmt: skip
            if args.sqlite_tables:
                count = args.sqlite_tables
                with PrefectServer() as sqlite_server:
                    wall = sqlite_run(
                        count, schemas[count], args.poll_interval, sqlite_server.api_url
                    )
                print(f"{count} tables with a SQLite-backed server: flow {wall:.1f} s, "
                      f"{wall / walls[count]:.2f}x the PostgreSQL-backed {walls[count]:.1f} s "
                      "(target <= 2x)")  # fmt: skip
                record(f"orchestration: {count} tables, SQLite-backed server", wall, "s",
                       baseline=walls[count], baseline_name="PostgreSQL-backed",
                       ratio=walls[count] / wall, target=">= 0.5")  # fmt: skip


def sqlite_run(count: int, schema: str, poll_interval: float, api_url: str) -> float:
    """The flow's wall time in a process of its own against ``api_url`` (Prefect's clients and
    its events worker are per process: as ``dms-ingestion run`` against its temporary API)."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.orchestration", "--child", str(count), schema,
         str(poll_interval)],
        env={**os.environ, "PREFECT_API_URL": api_url}, check=True, capture_output=True,
        text=True,
    ).stdout  # fmt: skip
    return float(next(line for line in output.splitlines() if line.startswith("WALL ")).split()[1])


def child(count: int, schema: str, poll_interval: float) -> None:
    """``--child``: one ingestion against ``PREFECT_API_URL``; prints ``WALL <seconds>``."""
    wall, report = run_flow(
        count, schema, poll_interval, os.environ["PREFECT_API_URL"],
        f"orchestration-{count}-sqlite",
    )  # fmt: skip
    if not report.succeeded:
        raise SystemExit(report.failure_message())
    print(f"WALL {wall}", flush=True)


if __name__ == "__main__":
    main()
