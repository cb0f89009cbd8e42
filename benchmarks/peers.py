"""Full load against the tools users would pick instead: localdms (CSV, Parquet), dlt
(``sql_table(backend="pyarrow")`` → filesystem on the same S3, CSV and Parquet) and the COPY → S3
pipe, on the same generated tables, in the same run.

Every path runs in a process of its own, so each peak RSS (``ru_maxrss`` / ``VmHWM``) is that
path's. dlt writes its defaults: CSV gzip-compressed, Parquet with pyarrow's settings. Figures are
best of ``--repeat`` runs (dlt once: at ~80k rows/s it dominates the run time).

Usage: ``python -m benchmarks.peers [--rows 2000000] [--narrow-rows 5000000] [--repeat 2]``
(``make bench-peers``; installs the ``peers`` extra, which holds dlt).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
from typing import Any

import boto3
import psycopg

from benchmarks.full_load import TABLES, Result, best_baseline, measure_localdms, object_bytes
from sandbox.postgres import ThrowawayPostgres
from sandbox.s3 import MotoS3Server


def dlt_child(dsn: str, table: str, s3_url: str, file_format: str) -> None:
    """Run one dlt load and print ``seconds peak_rss_mb`` (the timing excludes imports)."""
    os.environ.update(
        {
            "DESTINATION__FILESYSTEM__BUCKET_URL": f"s3://bench/dlt-{file_format}",
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID": os.environ[
                "AWS_ACCESS_KEY_ID"
            ],
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY": os.environ[
                "AWS_SECRET_ACCESS_KEY"
            ],
            "DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL": s3_url,
            "DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME": "us-east-1",
            "RUNTIME__LOG_LEVEL": "WARNING",
        }
    )
    import dlt
    from dlt.sources.sql_database import sql_table

    url = urllib.parse.urlsplit(dsn)
    credentials = url._replace(scheme="postgresql+psycopg2").geturl()
    with tempfile.TemporaryDirectory() as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{table}_{file_format}",
            destination="filesystem",
            dataset_name="public",
            pipelines_dir=pipelines_dir,
        )
        started = time.perf_counter()
        source = sql_table(credentials=credentials, table=table, schema="public", backend="pyarrow")
        pipeline.run(source, loader_file_format=file_format)
        seconds = time.perf_counter() - started
    print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_dlt(dsn: str, table: str, rows: int, s3_url: str, s3: Any, file_format: str) -> Result:
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", "--dlt-child", dsn, table, s3_url, file_format],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if child.returncode != 0:  # not CalledProcessError: its message would show the DSN's password
        raise RuntimeError(f"dlt ({file_format}) failed:\n{child.stderr[-3000:]}")
    output = child.stdout.split()
    size = object_bytes(s3, "bench", f"dlt-{file_format}/public/{table}/")
    return Result(float(output[-2]), rows, size, float(output[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the wide table")
    parser.add_argument("--narrow-rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dlt-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dlt_child:
        dlt_child(*args.dlt_child)
        return

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    tables = {"big": args.rows, "narrow": args.narrow_rows}
    with ThrowawayPostgres() as postgres, MotoS3Server() as s3_server:
        os.environ.update(s3_server.credentials())  # it checks keys; every client uses these
        dsn = postgres.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            for table, rows in tables.items():
                print(f"generating {table}: {rows:,} rows ...", flush=True)
                conn.execute(TABLES[table].format(rows=int(rows)))  # type: ignore[arg-type]
                conn.execute(f"VACUUM ANALYZE public.{table}")
        s3 = boto3.client("s3", endpoint_url=s3_server.url)
        s3.create_bucket(Bucket="bench")
        print(
            f"\n{'table':<8} {'path':<26} {'seconds':>8} {'rows/s':>11} {'MB/s':>7} {'peak RSS MB':>12}"
        )
        for table, rows in tables.items():
            results = {
                "COPY | S3 pipe (CSV)": best_baseline(
                    "csv", dsn, table, s3_server.url, args.repeat
                ),
                "localdms CSV": measure_localdms(
                    s3_server.url, s3, dsn, table, rows, "csv", args.repeat
                ),
                "localdms Parquet": measure_localdms(
                    s3_server.url, s3, dsn, table, rows, "parquet", args.repeat
                ),
                "dlt CSV (gzip, default)": run_dlt(dsn, table, rows, s3_server.url, s3, "csv"),
                "dlt Parquet": run_dlt(dsn, table, rows, s3_server.url, s3, "parquet"),
            }
            for name, result in results.items():
                print(
                    f"{table:<8} {name:<26} {result.seconds:>8.2f} {result.rows_per_second:>11,.0f} "
                    f"{result.mb_per_second:>7.1f} {result.peak_rss_mb:>12.0f}",
                    flush=True,
                )
            for ours, theirs in (("localdms CSV", "dlt CSV (gzip, default)"),
                                 ("localdms Parquet", "dlt Parquet")):  # fmt: skip
                ratio = results[theirs].seconds / results[ours].seconds
                print(f"{table:<8} {ours + ' / dlt':<26} {ratio:>8.2f}x throughput (target >= 5x)")


if __name__ == "__main__":
    main()
