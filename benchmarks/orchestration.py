"""Orchestration overhead of the flow for 1, 50 and 500 tables.

Overhead = the flow's wall time minus the DMS task's own ElapsedTimeMillis: what Prefect (task
runs, one subflow run per table, artifacts) and polling add to the replication. Also printed: the
most DMS API calls made in one monitoring poll (target: ceil(tables / 500) + 1).

The stack is the demo's: a throwaway PostgreSQL with N small tables per schema, moto's S3 server,
localdms as its own process, and a Prefect server backed by the same PostgreSQL.

Usage: ``python -m benchmarks.orchestration [--tables 1 50 500] [--poll-interval 1]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 50, 500])
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="a SQLite-backed Prefect server (as `dms-ingestion run`'s temporary one)",
    )
    args = parser.parse_args()
    os.environ.update(AWS_DEFAULT_REGION="us-east-1")

    with ThrowawayPostgres() as postgres, MotoS3Server() as s3_server:
        os.environ.update(s3_server.credentials())  # it checks keys; every client uses these
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE source")
            conn.execute("CREATE DATABASE prefect")
        schemas = {count: create_tables(postgres.dsn("source"), count) for count in args.tables}
        os.environ["AWS_ENDPOINT_URL_S3"] = s3_server.url
        boto3.client("s3", endpoint_url=s3_server.url).create_bucket(Bucket="bench-bucket")
        prefect_db = postgres.dsn("prefect").replace("postgresql://", "postgresql+asyncpg://", 1)
        with (
            LocalDmsProcess(s3_server.url) as localdms,
            PrefectServer(database_url=None if args.sqlite else prefect_db) as server,
        ):
            os.environ["AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE"] = localdms.url
            os.environ["PREFECT_API_URL"] = server.api_url
            arns = provision_pipeline(
                boto3.client("dms", endpoint_url=localdms.url),
                postgres.dsn("source"),
                "bench-bucket",
            )
            os.environ.update(arns.environment())
            from flows import dms_ingestion

            print(f"\npoll interval {args.poll_interval} s; localdms transition 1 s")
            print(f"{'tables':>7} {'flow s':>8} {'DMS task s':>11} {'overhead s':>11} {'target s':>9} "
                  f"{'calls/poll':>11} {'target':>7}")  # fmt: skip
            for count, schema in schemas.items():
                overrides = {
                    "dms_task_name": f"orchestration-{count}",
                    "s3_bucket_name": "bench-bucket",
                    "table_mappings": [{"schema_name": schema, "table_name": "%"}],
                }
                started = time.perf_counter()
                report = asyncio.run(
                    dms_ingestion(
                        config_path=None,
                        poll_interval_seconds=args.poll_interval,
                        overrides=overrides,
                    )
                )
                wall = time.perf_counter() - started
                task = report.task_elapsed_seconds or 0.0
                print(
                    f"{count:>7} {wall:>8.1f} {task:>11.1f} {wall - task:>11.1f} {TARGETS.get(count, '-'):>9} "
                    f"{report.max_monitoring_calls_per_poll:>11} {'<=' + str(math.ceil(count / 500) + 1):>7}",
                    flush=True,
                )
                backend = "SQLite" if args.sqlite else "PostgreSQL"
                record(f"orchestration: overhead at {count} tables ({backend})", wall - task, "s",
                       target="" if args.sqlite else TARGETS.get(count, ""))  # fmt: skip


if __name__ == "__main__":
    main()
