"""Full-load throughput: localdms (CSV and Parquet) against the COPY → S3 pipe, same tables, same run.

Baselines (what a user could script instead), each in a process of its own:

* CSV: ``psql -c "\\copy (SELECT * FROM t) TO STDOUT csv"`` piped into a Python process that reads
  16 MiB blocks and uploads them as S3 multipart parts, four in flight.
  ``../shared/reference/performance-anchors.md`` measured this path at ~530k rows/s on the mixed
  table here.
* Parquet: the ADBC PostgreSQL driver's ``SELECT * FROM t`` as Arrow record batches into pyarrow's
  ``ParquetWriter`` with DMS's default Parquet settings (row groups of 10,000 rows, no
  compression), the file streamed to S3 in 16 MiB multipart parts, four in flight. Its values are
  ADBC's own types (numeric as strings, booleans as booleans); localdms writes DMS's types.

localdms runs as its own process (``localdms serve``), one per format, so that each peak RSS
(``VmHWM``) is that run's own. MB/s counts the bytes written (Parquet files are smaller than CSV).
Both write to the same moto S3 server process. Each path runs ``--repeat`` times; the best counts.

After the loads, the flow's S3 reconciliation (``flows.reconcile``: list the LOAD objects and
count their rows, CSV streamed, Parquet from the footers) runs over each localdms output, and its
time is printed against that load's.

Usage: ``python -m benchmarks.full_load [--rows 2000000] [--narrow-rows 5000000] [--repeat 2]``
(``make bench``). Set ``DMS_BENCH_POSTGRES_DSN`` to use an existing server instead of a throwaway.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg

from benchmarks.results import record
from flows.reconcile import table_objects
from flows.target import TargetEndpoint
from sandbox.localdms_process import LocalDmsProcess, provision_pipeline
from sandbox.postgres import ThrowawayPostgres
from sandbox.s3 import MotoS3Server

TABLES = {
    "big": """
        CREATE TABLE public.big AS
        SELECT g::bigint AS id, (g % 1000)::int AS category, md5(g::text) AS label,
               ((g % 100000)::numeric / 7)::numeric(12,2) AS amount,
               timestamptz '2024-01-01' + g * interval '1 second' AS created_at,
               g % 2 = 0 AS flag, g * 1.5::double precision AS score,
               ('name-' || g)::varchar(40) AS name
        FROM generate_series(1, {rows}) g
    """,
    "narrow": "CREATE TABLE public.narrow AS SELECT g::bigint AS id, (g % 97)::int AS v FROM generate_series(1, {rows}) g",
}
BLOCK = 16 * 1024 * 1024
POLL = 0.05  # seconds between two DescribeReplicationTasks while a load runs


@dataclass
class Result:
    seconds: float
    rows: int
    bytes: int
    peak_rss_mb: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.bytes / self.seconds / 1e6


class PartSink:
    """A write-only file that uploads to one S3 object in 16 MiB parts, four in flight: the
    baselines' own (both pipes use it), not localdms's sink, which is what they measure. Like
    ``aws s3 cp -`` (s3transfer), it declares CRC32 on the upload and sends each part's."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")[
            "UploadId"
        ]
        self.pool = concurrent.futures.ThreadPoolExecutor(4)
        self.futures: list[concurrent.futures.Future[Any]] = []
        self.buffer = bytearray()
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        self.buffer += data
        self.position += len(data)
        if len(self.buffer) >= BLOCK:
            self._send()
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def _send(self) -> None:
        while sum(not f.done() for f in self.futures) >= 4:
            time.sleep(0.001)
        body, self.buffer = bytes(self.buffer), bytearray()
        self.futures.append(self.pool.submit(
            self.s3.upload_part, Bucket=self.bucket, Key=self.key, UploadId=self.upload,
            PartNumber=len(self.futures) + 1, Body=body, ChecksumAlgorithm="CRC32",
        ))  # fmt: skip

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.buffer or not self.futures:
            self._send()
        parts = [
            {"PartNumber": i + 1, "ETag": f.result()["ETag"],
             "ChecksumCRC32": f.result()["ChecksumCRC32"]}
            for i, f in enumerate(self.futures)
        ]  # fmt: skip
        self.pool.shutdown()
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload, MultipartUpload={"Parts": parts}
        )


def copy_pipe(dsn: str, table: str, s3: Any, bucket: str) -> tuple[int, int]:
    """The CSV baseline: psql COPY → 16 MiB blocks → multipart upload; returns (rows, bytes)."""
    psql = subprocess.Popen(
        ["psql", dsn, "-X", "-q", "-c", f"\\copy (SELECT * FROM public.{table}) TO STDOUT csv"],
        stdout=subprocess.PIPE,
    )
    assert psql.stdout is not None
    sink = PartSink(s3, bucket, f"pipe/{table}.csv")
    rows = 0
    while block := psql.stdout.read(BLOCK):
        rows += block.count(b"\n")
        sink.write(block)
    sink.close()
    if psql.wait() != 0:
        raise RuntimeError("psql failed")
    return rows, sink.position


def adbc_parquet_pipe(dsn: str, table: str, s3: Any, bucket: str) -> tuple[int, int]:
    """The Parquet baseline: ADBC → Arrow → ParquetWriter → S3; returns (rows, bytes)."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = PartSink(s3, bucket, f"pipe/{table}.parquet")
    rows = 0
    with adbc.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM public.{table}")
        reader = cursor.fetch_record_batch()
        schema = pa.schema(
            f.with_type(f.type.storage_type) if isinstance(f.type, pa.ExtensionType) else f
            for f in reader.schema
        )  # numeric arrives as an extension type over strings: written as its strings
        with pq.ParquetWriter(sink, schema, compression="none") as writer:
            for batch in reader:
                batch = pa.RecordBatch.from_arrays(
                    [
                        c.storage if isinstance(c.type, pa.ExtensionType) else c
                        for c in batch.columns
                    ],
                    schema=schema,
                )
                writer.write_batch(batch, row_group_size=10_000)
                rows += batch.num_rows
    sink.close()
    return rows, sink.position


BASELINES = {"csv": copy_pipe, "parquet": adbc_parquet_pipe}


def run_baseline(data_format: str, dsn: str, table: str, s3_url: str, bucket: str) -> Result:
    """Run a baseline in a child process so that its peak RSS is measured on its own."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.full_load", "--baseline-child", data_format, dsn, table,
         s3_url, bucket],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return Result(float(output[3]), int(output[0]), int(output[1]), float(output[2]))


def best_baseline(data_format: str, dsn: str, table: str, s3_url: str, repeat: int) -> Result:
    """The fastest of ``repeat`` runs of a baseline."""
    runs = [run_baseline(data_format, dsn, table, s3_url, "bench") for _ in range(repeat)]
    return min(runs, key=lambda r: r.seconds)


def task_status(dms: Any, task_arn: str) -> dict[str, Any]:
    """The task as DescribeReplicationTasks shows it (without its settings)."""
    return dict(
        dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-arn", "Values": [task_arn]}], WithoutSettings=True
        )["ReplicationTasks"][0]
    )


def wait_for(dms: Any, task_arn: str, *statuses: str) -> dict[str, Any]:
    """Poll the task every ``POLL`` seconds until its status is one of ``statuses``."""
    while (task := task_status(dms, task_arn))["Status"] not in statuses:
        time.sleep(POLL)
    return task


def run_localdms(dms: Any, task_arn: str, start_type: str) -> float:
    """Start a task; return the seconds until it reads ``stopped`` (polled every ``POLL`` s)."""
    started = time.perf_counter()
    dms.start_replication_task(ReplicationTaskArn=task_arn, StartReplicationTaskType=start_type)
    task = wait_for(dms, task_arn, "stopped", "failed")
    if task["Status"] != "stopped":
        raise RuntimeError(task.get("LastFailureMessage"))
    return time.perf_counter() - started


class LocalDmsLoads:
    """A ``localdms serve`` process of its own with a full-load task for one table, started as
    often as ``run`` is called (``start-replication``, then ``reload-target``).

    The process runs with ``--transition-seconds 0``: how long DMS's statuses show
    (``starting``, the least time ``running`` shows) is the emulation's pacing, not load work,
    and the pipes have none. Each run is timed from StartReplicationTask until the task reads
    ``stopped``, polled every ``POLL`` seconds.
    """

    def __init__(self, s3_url: str, dsn: str, table: str, data_format: str) -> None:
        self.table = table
        self.folder = f"localdms-{data_format}"
        self.process = LocalDmsProcess(s3_url, transition_seconds=0).start()
        self.dms = boto3.client("dms", endpoint_url=self.process.url)
        arns = provision_pipeline(
            self.dms, dsn, "bench", {"BucketFolder": self.folder, "DataFormat": data_format}
        )
        self.task_arn = self.dms.create_replication_task(
            ReplicationTaskIdentifier=f"bench-{table}", SourceEndpointArn=arns.source_endpoint_arn,
            TargetEndpointArn=arns.target_endpoint_arn, ReplicationInstanceArn=arns.replication_instance_arn,
            MigrationType="full-load",
            TableMappings='{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1",'
            f'"rule-action":"include","object-locator":{{"schema-name":"public","table-name":"{table}"}}}}]}}',
        )["ReplicationTask"]["ReplicationTaskArn"]  # fmt: skip
        wait_for(self.dms, self.task_arn, "ready")
        self.seconds: list[float] = []

    def __enter__(self) -> LocalDmsLoads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def run(self) -> float:
        """Load the table once; return the seconds from the start call until ``stopped``."""
        start_type = "reload-target" if self.seconds else "start-replication"
        self.seconds.append(run_localdms(self.dms, self.task_arn, start_type))
        return self.seconds[-1]

    def result(self, s3: Any, rows: int) -> Result:
        """The fastest run, the bytes written and the process's peak RSS over all runs."""
        size = object_bytes(s3, "bench", f"{self.folder}/public/{self.table}/")
        return Result(min(self.seconds), rows, size, self.process.peak_rss_mb())


def measure_localdms(
    s3_url: str, s3: Any, dsn: str, table: str, rows: int, data_format: str, repeat: int
) -> Result:
    """Full-load ``table`` ``repeat`` times with a localdms process of its own; the best run."""
    with LocalDmsLoads(s3_url, dsn, table, data_format) as loads:
        for _ in range(repeat):
            loads.run()
        return loads.result(s3, rows)


def reconcile(s3: Any, table: str, rows: int, data_format: str) -> float:
    """Seconds the flow's reconciliation takes over ``measure_localdms``'s output of ``table``."""
    target = TargetEndpoint.of(
        "bench", BucketName="bench", BucketFolder=f"localdms-{data_format}", DataFormat=data_format
    )
    started = time.perf_counter()
    found = table_objects(s3, target, "public", table)
    seconds = time.perf_counter() - started
    if found.rows != rows:
        raise RuntimeError(f"reconciliation counted {found.rows:,} rows of {table}, not {rows:,}")
    return seconds


def object_bytes(s3: Any, bucket: str, prefix: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(item["Size"] for page in pages for item in page.get("Contents", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the mixed table")
    parser.add_argument(
        "--narrow-rows", type=int, default=5_000_000, help="rows of the narrow table (0 skips)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; the best of each path counts"
    )
    parser.add_argument("--baseline-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_child:
        data_format, dsn, table, s3_url, bucket = args.baseline_child
        client = boto3.client("s3", endpoint_url=s3_url)
        if data_format == "parquet":
            import adbc_driver_postgresql.dbapi  # noqa: F401  (imports are not the pipe's time)
            import pyarrow.parquet  # noqa: F401
        started = time.perf_counter()  # timed after start-up and imports: the pipe alone
        rows, size = BASELINES[data_format](dsn, table, client, bucket)
        seconds = time.perf_counter() - started
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(rows, size, peak, seconds)
        return

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    existing = os.environ.get("DMS_BENCH_POSTGRES_DSN")
    postgres = None if existing else ThrowawayPostgres().start()
    dsn = existing or (postgres.dsn() if postgres else "")
    tables = {"big": args.rows, **({"narrow": args.narrow_rows} if args.narrow_rows else {})}
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for table, rows in tables.items():
                print(f"generating {table}: {rows:,} rows ...", flush=True)
                conn.execute(f"DROP TABLE IF EXISTS public.{table}")
                conn.execute(TABLES[table].format(rows=int(rows)))  # type: ignore[arg-type]
                conn.execute(f"VACUUM ANALYZE public.{table}")
        with MotoS3Server() as s3_server:
            os.environ.update(s3_server.credentials())  # it checks keys; every client uses these
            s3 = boto3.client("s3", endpoint_url=s3_server.url)
            s3.create_bucket(Bucket="bench")
            print()
            print(
                f"{'table':<8} {'path':<22} {'seconds':>8} {'rows/s':>11} {'MB/s':>7} {'peak RSS MB':>12}"
            )
            for table, rows in tables.items():
                # Each round runs every path once, so that a slow spell of the machine
                # falls on all of them; the best round of each counts.
                baselines: dict[str, list[Result]] = {"csv": [], "parquet": []}
                with (
                    LocalDmsLoads(s3_server.url, dsn, table, "csv") as csv_loads,
                    LocalDmsLoads(s3_server.url, dsn, table, "parquet") as parquet_loads,
                ):
                    loads = {"csv": csv_loads, "parquet": parquet_loads}
                    for _ in range(args.repeat):
                        for data_format in ("csv", "parquet"):
                            baselines[data_format].append(run_baseline(
                                data_format, dsn, table, s3_server.url, "bench"))  # fmt: skip
                            loads[data_format].run()
                    csv, parquet = csv_loads.result(s3, rows), parquet_loads.result(s3, rows)
                baseline, adbc_baseline = (
                    min(baselines[f], key=lambda r: r.seconds) for f in ("csv", "parquet")
                )
                for name, result in (
                    ("COPY | S3 pipe (CSV)", baseline),
                    ("localdms CSV", csv),
                    ("ADBC Parquet pipe", adbc_baseline),
                    ("localdms Parquet", parquet),
                ):
                    print(
                        f"{table:<8} {name:<22} {result.seconds:>8.2f} {result.rows_per_second:>11,.0f} "
                        f"{result.mb_per_second:>7.1f} {result.peak_rss_mb:>12.0f}"
                    )
                print(
                    f"{table:<8} {'CSV / pipe':<22} {baseline.seconds / csv.seconds:>8.2f}x throughput "
                    "(target >= 1.0x)"
                )
                print(
                    f"{table:<8} {'Parquet / ADBC pipe':<22} "
                    f"{adbc_baseline.seconds / parquet.seconds:>8.2f}x throughput (target >= 1.0x), "
                    f"Parquet / CSV {csv.seconds / parquet.seconds:.2f}x"
                )
                record(f"{table}: localdms CSV", csv.seconds, "s", baseline=baseline.seconds,
                       baseline_name="COPY | S3 pipe", ratio=baseline.seconds / csv.seconds,
                       target=">= 1.0")  # fmt: skip
                record(f"{table}: localdms Parquet", parquet.seconds, "s",
                       baseline=adbc_baseline.seconds, baseline_name="ADBC Parquet pipe",
                       ratio=adbc_baseline.seconds / parquet.seconds, target=">= 1.0")  # fmt: skip
                record(f"{table}: localdms Parquet peak RSS", parquet.peak_rss_mb, "MB",
                       target="< 300")  # fmt: skip
                for data_format, load in (("csv", csv), ("parquet", parquet)):
                    seconds = reconcile(s3, table, rows, data_format)
                    print(
                        f"{table:<8} {'reconcile ' + data_format:<22} {seconds:>8.2f} "
                        f"{rows / seconds:>11,.0f}   rows counted, {seconds / load.seconds:.2f}x "
                        "the load's time"
                    )
    finally:
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    main()
