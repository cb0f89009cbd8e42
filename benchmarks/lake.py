"""The lake's cost: building an Iceberg table from LOAD files, and applying a batch of changes.

1. **Full apply against the full load**: localdms full-loads the mixed table of
   ``benchmarks.full_load`` (2 M rows, Parquet), then ``lake.apply`` builds the Iceberg table
   from those LOAD files; the ratio is the load's time over the apply's (target >= 0.5: applying
   the files takes at most twice what writing them took).
2. **A batch of 10 k changes on a 2 M-row table against a 100 k-row one**: both tables capture
   changes (full-load-and-cdc, Parquet, CDC files every second) and have their Iceberg tables; the
   source then takes 10,000 changes per table (6,000 inserts of new keys, 3,000 updates and 1,000
   deletes), and the time to apply the CDC files holding them is compared (target: the big
   table's at most 3x the small one's). Two shapes of change: ``recent`` (the updates and deletes
   among the newest 50,000 keys, as an OLTP table's changes mostly are) and ``uniform`` (across
   every key). Deletes are merge-on-read: a batch reads the key columns of the data files whose
   key bounds may hold one of its keys and writes position delete files; the uniform batch reads
   every data file's key column.

3. **A batch after many batches**: ``--history`` (200) batches of one CDC file each (one update,
   one insert; DMS-shaped Parquet files written here, into a 10,000-row table), each applied by a
   sync of its own; the mean time of the last 10 against that of batches 6-15. Each batch adds a
   small data file that later batches would read, until a batch merges them
   (``lake.apply.COMPACT_FILES``).

The peak RSS of this process (which runs every apply) is printed too.

Usage: ``python -m benchmarks.lake [--rows 2000000] [--small-rows 100000] [--history 200]``
(``make bench``).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import tempfile
import time
from typing import Any

import boto3
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.full_load import TABLES, run_localdms
from benchmarks.results import record
from dms_spec.s3_target import S3Target
from lake.apply import LakeTable, TableSpec
from lake.catalogs import file_io, open_catalog
from lake.dms_files import list_table_objects
from sandbox.localdms_process import LocalDmsProcess, provision_pipeline
from sandbox.postgres import ThrowawayPostgres
from sandbox.s3 import MotoS3Server

CHANGES = 10_000
RECENT = 50_000
"""The ``recent`` shape's updates and deletes fall among the newest this many keys."""


def rules(*tables: str) -> str:
    selections = ",".join(
        f'{{"rule-type":"selection","rule-id":"{i}","rule-name":"{i}","rule-action":"include",'
        f'"object-locator":{{"schema-name":"public","table-name":"{t}"}}}}'
        for i, t in enumerate(tables, 1)
    )
    return f'{{"rules":[{selections}]}}'


def make_table(dsn: str, name: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS public.{name}")
        conn.execute(TABLES["big"].replace("public.big", f"public.{name}").format(rows=rows))
        conn.execute(f"ALTER TABLE public.{name} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM ANALYZE public.{name}")


def change(dsn: str, name: str, rows: int, shape: str, first_new: int) -> int:
    """About 10,000 changes in transactions of 1,000: inserts of new keys, updates, deletes;
    returns how many rows they changed (an update or delete of a key deleted before changes
    none)."""
    inserts, updates, deletes = CHANGES * 6 // 10, CHANGES * 3 // 10, CHANGES // 10
    low = max(1, rows - RECENT) if shape == "recent" else 1
    span = rows - low
    changed = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, inserts, 1000):
            changed += conn.execute(
                f"INSERT INTO public.{name} SELECT g, 1, md5(g::text), 1.5, now(), true, 2.5, "
                f"'new-' || g FROM generate_series(%s::bigint, %s::bigint) g",
                (first_new + start, first_new + start + 999),
            ).rowcount
        # Keys spread over [low, rows]: a stride across the range, different for each statement.
        for start in range(0, updates, 1000):
            changed += conn.execute(
                f"UPDATE public.{name} SET label = 'updated', amount = amount + 1 WHERE id IN "
                f"(SELECT {low} + (g * 7919) %% {span} FROM generate_series(%s::int, %s::int) g)",
                (start, start + 999),
            ).rowcount
        changed += conn.execute(
            f"DELETE FROM public.{name} WHERE id IN "
            f"(SELECT {low} + (g * 104729 + 13) % {span} FROM generate_series(1, {deletes}) g)"
        ).rowcount
    return changed


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def applied(dms: Any, arn: str, table: str) -> int:
    for page in dms.get_paginator("describe_table_statistics").paginate(ReplicationTaskArn=arn):
        for t in page["TableStatistics"]:
            if t["TableName"] == table:
                return int(t["AppliedInserts"] + t["AppliedUpdates"] + t["AppliedDeletes"])
    return 0


def history(s3: Any, table: LakeTable, batches: int) -> None:
    """Many small batches, one CDC file each (one update, one insert), applied one sync each:
    the time of a batch near the end against one near the start."""
    prefix = "history/public/history"
    ids = pa.array(range(1, 10_001), pa.int64())
    put_parquet(s3, f"{prefix}/LOAD00000001.parquet",
                pa.table({"id": ids, "label": pc.cast(ids, pa.string())}))  # fmt: skip
    table.sync(list_table_objects(s3, "bench", f"{prefix}/"))
    seconds = []
    for n in range(1, batches + 1):
        changes = pa.table({"Op": ["U", "I"], "id": pa.array([n % 5_000 + 1, 100_000 + n], pa.int64()),
                            "label": ["updated", "inserted"]})  # fmt: skip
        put_parquet(s3, f"{prefix}/2026/12/08/20261208-{n:09d}.parquet", changes)
        objects = list_table_objects(s3, "bench", f"{prefix}/")
        started = time.perf_counter()
        table.sync(objects)
        seconds.append(time.perf_counter() - started)
    early, late = statistics.mean(seconds[5:15]), statistics.mean(seconds[-10:])
    print(f"\nbatches 6-15 of {batches}: {early:.3f} s each; the last 10: {late:.3f} s each "
          f"({late / early:.2f}x)", flush=True)  # fmt: skip
    record(f"lake: a batch after {batches} batches", late, "s", baseline=early,
           baseline_name="batches 6-15", ratio=early / late)  # fmt: skip


def put_parquet(s3: Any, key: str, rows: pa.Table) -> None:
    sink = io.BytesIO()
    pq.write_table(rows, sink)
    s3.put_object(Bucket="bench", Key=key, Body=sink.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=200, help="small batches applied in turn")
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sizes = {"lake_big": args.rows, "lake_small": args.small_rows}
    with (
        ThrowawayPostgres() as postgres,
        MotoS3Server() as s3_server,
        tempfile.TemporaryDirectory() as scratch,
    ):
        os.environ.update(s3_server.credentials())
        dsn = postgres.dsn()
        for name, rows in sizes.items():
            print(f"generating {name}: {rows:,} rows ...", flush=True)
            make_table(dsn, name, rows)
        s3 = boto3.client("s3", endpoint_url=s3_server.url)
        s3.create_bucket(Bucket="bench")
        session = boto3.Session()
        catalog = open_catalog("sql", "bench", "s3://bench/iceberg", session, s3_server.url,
                               uri=f"sqlite:///{scratch}/catalog.db")  # fmt: skip
        lake_io = file_io(catalog)
        settings: dict[str, Any] = {"DataFormat": "parquet", "CdcMaxBatchInterval": 1}

        def lake(name: str, folder: str, namespace: str) -> LakeTable:
            target = S3Target.from_settings({"BucketName": "bench", "BucketFolder": folder,
                                             **settings})  # fmt: skip
            spec = TableSpec("public", name, (namespace, name), key=("id",))
            return LakeTable(catalog, spec, target, lake_io, "bench")

        with LocalDmsProcess(s3_server.url, transition_seconds=0.1) as localdms:
            dms = boto3.client("dms", endpoint_url=localdms.url)
            arns = provision_pipeline(dms, dsn, "bench", {"BucketFolder": "load", **settings})
            task = dms.create_replication_task(
                ReplicationTaskIdentifier="bench-lake-load", MigrationType="full-load",
                SourceEndpointArn=arns.source_endpoint_arn, TargetEndpointArn=arns.target_endpoint_arn,
                ReplicationInstanceArn=arns.replication_instance_arn, TableMappings=rules("lake_big"),
            )["ReplicationTask"]["ReplicationTaskArn"]  # fmt: skip
            time.sleep(0.3)
            load_seconds = run_localdms(dms, task, "start-replication")
            objects = list_table_objects(s3, "bench", "load/public/lake_big/")
            started = time.perf_counter()
            built = lake("lake_big", "load", "full").sync(objects)
            apply_seconds = time.perf_counter() - started
            assert built.rows == args.rows, built
            print(f"peak RSS after the full apply {peak_mb():.0f} MB")
            print(f"\nfull load (localdms, Parquet) {load_seconds:6.2f} s; lake apply of its "
                  f"{built.load_objects} LOAD file(s) {apply_seconds:6.2f} s: "
                  f"{load_seconds / apply_seconds:.2f}x (target >= 0.5)", flush=True)  # fmt: skip
            record("lake: full apply of the LOAD files", apply_seconds, "s",
                   baseline=load_seconds, baseline_name="localdms full load",
                   ratio=load_seconds / apply_seconds, target=">= 0.5")  # fmt: skip

            cdc_target = dms.create_endpoint(
                EndpointIdentifier="bench-cdc", EndpointType="target", EngineName="s3",
                S3Settings={"BucketName": "bench", "BucketFolder": "cdc", "DataFormat": "parquet",
                            "CdcMaxBatchInterval": 1,
                            "ServiceAccessRoleArn": "arn:aws:iam::123456789012:role/dms-s3"},
            )["Endpoint"]["EndpointArn"]  # fmt: skip
            cdc_task = dms.create_replication_task(
                ReplicationTaskIdentifier="bench-lake-cdc", MigrationType="full-load-and-cdc",
                SourceEndpointArn=arns.source_endpoint_arn, TargetEndpointArn=cdc_target,
                ReplicationInstanceArn=arns.replication_instance_arn,
                TableMappings=rules("lake_big", "lake_small"),
            )["ReplicationTask"]["ReplicationTaskArn"]  # fmt: skip
            time.sleep(0.3)
            dms.start_replication_task(ReplicationTaskArn=cdc_task,
                                       StartReplicationTaskType="start-replication")  # fmt: skip
            while (
                dms.describe_replication_tasks(
                    Filters=[{"Name": "replication-task-arn", "Values": [cdc_task]}]
                )["ReplicationTasks"][0]
                .get("ReplicationTaskStats", {})
                .get("FullLoadProgressPercent")
                != 100
            ):
                time.sleep(0.5)
            tables = {name: lake(name, "cdc", "cdc") for name in sizes}
            for name, table in tables.items():
                table.sync(list_table_objects(s3, "bench", f"cdc/public/{name}/"))
            print(f"\n{'shape':<8} {'table':<11} {'rows':>10} {'changes':>8} {'CDC files':>9} "
                  f"{'apply s':>8}")  # fmt: skip
            seconds: dict[tuple[str, str], float] = {}
            for round_, shape in enumerate(("recent", "uniform")):
                for name, rows in sizes.items():
                    before = applied(dms, cdc_task, name)
                    made = change(dsn, name, rows, shape, 10_000_000 + round_ * CHANGES)
                    while applied(dms, cdc_task, name) < before + made:
                        time.sleep(0.3)
                    objects = list_table_objects(s3, "bench", f"cdc/public/{name}/")
                    started = time.perf_counter()
                    result = tables[name].sync(objects)
                    seconds[shape, name] = time.perf_counter() - started
                    done = result.inserts + result.updates + result.deletes
                    print(f"{shape:<8} {name:<11} {rows:>10,} {done:>8,} {result.cdc_objects:>9} "
                          f"{seconds[shape, name]:>8.2f}", flush=True)  # fmt: skip
                ratio = seconds[shape, "lake_big"] / seconds[shape, "lake_small"]
                print(f"{shape:<8} {'2 M / 100 k':<11} {ratio:>38.2f}x (target <= 3)")
                record(f"lake: {CHANGES:,} {shape} changes, {args.rows:,} rows",
                       seconds[shape, "lake_big"], "s", baseline=seconds[shape, "lake_small"],
                       baseline_name=f"{args.small_rows:,} rows",
                       ratio=seconds[shape, "lake_small"] / seconds[shape, "lake_big"],
                       target=">= 0.33")  # fmt: skip
            dms.stop_replication_task(ReplicationTaskArn=cdc_task)
        history(s3, lake("history", "history", "history"), args.history)
        peak = peak_mb()
        print(f"\nlake peak RSS (this process) {peak:.0f} MB")
        record("lake: peak RSS of the applying process", peak, "MB")


if __name__ == "__main__":
    main()
