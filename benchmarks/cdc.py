"""CDC throughput and latency: changes/s from PostgreSQL commits to CDC files in S3, and the time
from a commit to its row being readable in S3, at a given CdcMaxBatchInterval.

A full-load-and-cdc task runs on localdms (its own process) against a throwaway PostgreSQL and
moto's S3 server. Two phases:

1. Throughput: one writer commits transactions of ``--batch`` inserts plus as many updates of
   existing rows, as fast as it can, for ``--seconds``; the figure is changes applied to S3 (the
   table statistics' Applied counters) per second from the first commit until the last one is in S3.
   The source's own commit rate is printed beside it: that is the baseline (a capture cannot apply
   changes faster than they are committed).
2. Latency: a probe row is committed every 100 ms; a watcher lists the table's CDC files every 50
   ms and records when each probe first becomes readable. With ``CdcMaxBatchInterval`` = N seconds
   the expected latency is up to N seconds plus the poll and upload time.

Usage: ``python -m benchmarks.cdc [--seconds 15] [--batch 500] [--interval 1]`` (part of
``make bench``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from typing import Any

import boto3
import psycopg

from benchmarks.results import record
from sandbox.localdms_process import LocalDmsProcess, provision_pipeline
from sandbox.postgres import ThrowawayPostgres
from sandbox.s3 import MotoS3Server

PREFIX = "cdc/public/events/"


APPLIED_POLL_SECONDS = 0.25
"""How often the catch-up is polled: gently, as a dashboard would, so that the observer's
requests (answered by the same localdms process) do not slow what they measure."""


def applied(dms: Any, arn: str) -> int:
    stats = dms.describe_table_statistics(ReplicationTaskArn=arn)["TableStatistics"]
    return sum(t["AppliedInserts"] + t["AppliedUpdates"] + t["AppliedDeletes"] for t in stats)


def wait_running(dms: Any, arn: str) -> None:
    while True:
        task = dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}], WithoutSettings=True
        )["ReplicationTasks"][0]
        stats = task.get("ReplicationTaskStats", {})
        if task["Status"] == "running" and stats.get("FullLoadProgressPercent") == 100:
            return
        if task["Status"] in ("stopped", "failed"):
            raise RuntimeError(task.get("LastFailureMessage"))
        time.sleep(0.1)


def throughput(dsn: str, dms: Any, arn: str, seconds: float, batch: int) -> None:
    before = applied(dms, arn)
    changes = 0
    next_id = 1_000_000
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.perf_counter() - started < seconds:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO public.events SELECT g, 'payload ' || g, now() "
                    "FROM generate_series(%s, %s) g",
                    (next_id, next_id + batch - 1),
                )
                updated = conn.execute(
                    "UPDATE public.events SET body = body || '+' WHERE id BETWEEN %s AND %s",
                    (next_id - batch, next_id - 1),
                ).rowcount
            changes += batch + updated
            next_id += batch
    committed = time.perf_counter() - started
    deadline = time.perf_counter() + 300
    while applied(dms, arn) - before < changes:
        if time.perf_counter() > deadline:
            raise RuntimeError(
                f"only {applied(dms, arn) - before:,} of {changes:,} changes applied"
            )
        time.sleep(APPLIED_POLL_SECONDS)
    done = time.perf_counter() - started
    print(f"source commit rate   {changes / committed:>12,.0f} changes/s ({changes:,} changes)")
    print(f"applied to S3        {changes / done:>12,.0f} changes/s "
          f"(last change in S3 {done - committed:.2f} s after the last commit)")  # fmt: skip
    print(f"ratio                {committed / done:>12.2f}x of the commit rate")
    record("CDC: changes applied to S3", changes / done, "changes/s",
           baseline=changes / committed, baseline_name="source commit rate",
           ratio=committed / done)  # fmt: skip


def latency(dsn: str, s3: Any, bucket: str, seconds: float) -> list[float]:
    committed: dict[str, float] = {}
    visible: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        seen: set[str] = set()
        while not stop.is_set() or len(visible) < len(committed):
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX)
            for key in [i["Key"] for p in pages for i in p.get("Contents", [])]:
                if key in seen:
                    continue
                seen.add(key)
                now = time.time()
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
                for line in body.splitlines():
                    probe = line.split(",")[2] if line.count(",") >= 2 else ""
                    if probe.startswith("probe-"):
                        visible.setdefault(probe, now)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.time()
        index = 0
        while time.time() - started < seconds:
            name = f"probe-{index}"
            conn.execute("INSERT INTO public.events VALUES (%s, %s, now())", (-1 - index, name))
            committed[name] = time.time()
            index += 1
            time.sleep(0.1)
    stop.set()
    watcher.join(60)
    return sorted(visible[name] - committed[name] for name in committed if name in visible)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--batch", type=int, default=500, help="inserts (and updates) per commit")
    parser.add_argument("--interval", type=int, default=1, help="CdcMaxBatchInterval, seconds")
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with ThrowawayPostgres() as postgres, MotoS3Server() as s3_server:
        os.environ.update(s3_server.credentials())  # it checks keys; every client uses these
        dsn = postgres.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE public.events (id bigint PRIMARY KEY, body text, at timestamptz)"
            )
            conn.execute(
                "INSERT INTO public.events SELECT g, 'seed ' || g, now() FROM generate_series(1, 100000) g"
            )
        s3 = boto3.client("s3", endpoint_url=s3_server.url)
        s3.create_bucket(Bucket="bench")
        with LocalDmsProcess(s3_server.url, transition_seconds=0.1) as localdms:
            dms = boto3.client("dms", endpoint_url=localdms.url)
            arns = provision_pipeline(
                dms, dsn, "bench", {"BucketFolder": "cdc", "CdcMaxBatchInterval": args.interval}
            )
            arn = dms.create_replication_task(
                ReplicationTaskIdentifier="bench-cdc", SourceEndpointArn=arns.source_endpoint_arn,
                TargetEndpointArn=arns.target_endpoint_arn, ReplicationInstanceArn=arns.replication_instance_arn,
                MigrationType="full-load-and-cdc",
                TableMappings='{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1",'
                '"rule-action":"include","object-locator":{"schema-name":"public","table-name":"events"}}]}',
            )["ReplicationTask"]["ReplicationTaskArn"]  # fmt: skip
            time.sleep(0.3)
            dms.start_replication_task(
                ReplicationTaskArn=arn, StartReplicationTaskType="start-replication"
            )
            wait_running(dms, arn)
            print(f"CDC, CdcMaxBatchInterval={args.interval}s, {args.batch} inserts + {args.batch} "
                  f"updates per commit, {args.seconds:.0f} s per phase")  # fmt: skip
            throughput(dsn, dms, arn, args.seconds, args.batch)
            delays = latency(dsn, s3, "bench", args.seconds)
            if delays:
                p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
                print(f"commit -> readable   p50 {statistics.median(delays):.2f} s, p95 {p95:.2f} s "
                      f"({len(delays)} probes)")  # fmt: skip
                record(f"CDC: commit -> readable in S3, p95 (CdcMaxBatchInterval {args.interval} s)",
                       p95, "s")  # fmt: skip
            print(f"localdms peak RSS    {localdms.peak_rss_mb():>12.0f} MB")
            dms.stop_replication_task(ReplicationTaskArn=arn)


if __name__ == "__main__":
    main()
