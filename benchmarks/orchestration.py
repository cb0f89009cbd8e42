"""Orchestration overhead of the flow for 1, 50 and 500 tables.

Overhead = the flow's wall time minus that of a plain boto3 script making the same DMS calls
against the same localdms, in the same run (``boto3_driver``: create the task, wait until it is
ready, run the premigration assessment the flow's preflight runs, start the task, wait until it
stops, read its table statistics; botocore's ready waiter and status polls at the flow's poll
interval). What remains is
what the flow adds: Prefect (task runs, one subflow run per table, artifacts, events), its
polling, and its reconciliation of S3 against DMS's counts. Also printed: the overhead over the
task's own ElapsedTimeMillis (it includes what DMS spends outside it: localdms's 1 s creating
and starting transitions and the assessment run), and the most DMS API calls made in one
monitoring poll (target: ceil(tables / 500) + 1).

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
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import boto3
import psycopg

from benchmarks.results import record
from sandbox.localdms_process import LocalDmsProcess, PipelineArns, provision_pipeline
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


def boto3_driver(
    dms: Any, count: int, schema: str, poll_interval: float, arns: PipelineArns
) -> float:
    """The baseline: the DMS calls of one ingestion made by a plain boto3 script (as a user or
    Airflow's DMS operators and sensors would make them); returns its wall time.

    The assessment run gets the role and bucket the flow's preflight gives it (the target
    endpoint's), and its statuses are polled at ``poll_interval`` (botocore has no waiter for it).
    """
    waiter_config = {"Delay": poll_interval, "MaxAttempts": 100_000}
    mappings = {"rules": [{
        "rule-type": "selection", "rule-id": "1", "rule-name": "1", "rule-action": "include",
        "object-locator": {"schema-name": schema, "table-name": "%"},
    }]}  # fmt: skip
    started = time.perf_counter()
    task = dms.create_replication_task(
        ReplicationTaskIdentifier=f"boto3-driver-{count}", SourceEndpointArn=arns.source_endpoint_arn,
        TargetEndpointArn=arns.target_endpoint_arn,
        ReplicationInstanceArn=arns.replication_instance_arn,
        MigrationType="full-load", TableMappings=json.dumps(mappings),
    )["ReplicationTask"]  # fmt: skip
    arn = task["ReplicationTaskArn"]
    task_filter = [{"Name": "replication-task-arn", "Values": [arn]}]
    dms.get_waiter("replication_task_ready").wait(Filters=task_filter, WaiterConfig=waiter_config)
    target = dms.describe_endpoints(
        Filters=[{"Name": "endpoint-arn", "Values": [arns.target_endpoint_arn]}]
    )
    s3_settings = target["Endpoints"][0]["S3Settings"]
    run = dms.start_replication_task_assessment_run(
        ReplicationTaskArn=arn, ServiceAccessRoleArn=s3_settings["ServiceAccessRoleArn"],
        ResultLocationBucket=s3_settings["BucketName"], AssessmentRunName=f"driver-{count}",
    )["ReplicationTaskAssessmentRun"]  # fmt: skip
    while run["Status"] in ("starting", "provisioning", "running"):
        time.sleep(poll_interval)
        run = dms.describe_replication_task_assessment_runs(
            Filters=[{"Name": "replication-task-assessment-run-arn",
                      "Values": [run["ReplicationTaskAssessmentRunArn"]]}]
        )["ReplicationTaskAssessmentRuns"][0]  # fmt: skip
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    # botocore's replication_task_stopped waiter fails on "starting" (the flow's waiters.json
    # fixes it), so the script polls the status, as Airflow's DmsTaskCompletedSensor does.
    status = "starting"
    while status != "stopped":
        time.sleep(poll_interval)
        status = dms.describe_replication_tasks(Filters=task_filter, WithoutSettings=True)[
            "ReplicationTasks"
        ][0]["Status"]
    loaded = sum(
        len(page["TableStatistics"])
        for page in dms.get_paginator("describe_table_statistics").paginate(ReplicationTaskArn=arn)
    )
    if loaded != count:
        raise SystemExit(f"the boto3 driver saw {loaded} tables loaded, expected {count}")
    return time.perf_counter() - started


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
            dms = boto3.client("dms", endpoint_url=localdms.url)
            arns = provision_pipeline(
                dms,
                postgres.dsn("source"),
                "bench-bucket",
            )
            os.environ.update(arns.environment())

            print(f"\npoll interval {args.poll_interval} s; localdms transition 1 s; "
                  "Prefect server on PostgreSQL")  # fmt: skip
            print(f"{'tables':>7} {'flow s':>8} {'boto3 s':>8} {'overhead s':>11} {'target s':>9} "
                  f"{'DMS task s':>11} {'over task s':>12} {'calls/poll':>11} {'target':>7}")  # fmt: skip
            walls = {}
            for count in counts:
                driver = boto3_driver(dms, count, schemas[count], args.poll_interval, arns)
                wall, report = run_flow(
                    count, schemas[count], args.poll_interval, server.api_url,
                    f"orchestration-{count}",
                )  # fmt: skip
                walls[count] = wall
                task = report.task_elapsed_seconds or 0.0
                print(
                    f"{count:>7} {wall:>8.1f} {driver:>8.1f} {wall - driver:>11.1f} {TARGETS.get(count, '-'):>9} "
                    f"{task:>11.1f} {wall - task:>12.1f} "
                    f"{report.max_monitoring_calls_per_poll:>11} {'<=' + str(math.ceil(count / 500) + 1):>7}",
                    flush=True,
                )
                record(f"orchestration: overhead at {count} tables", wall - driver, "s",
                       baseline=driver, baseline_name="boto3 script, same DMS calls",
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
