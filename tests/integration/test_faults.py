"""Faults the flow must ride through (issue: prove it holds). Each test says what must hold after."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from flows import dms_ingestion
from flows.report import IngestionReport
from localdms.faults import FaultInjector
from localdms.server import ThreadedLocalDms
from sandbox.localdms_process import LocalDmsProcess
from sandbox.postgres import ThrowawayPostgres
from sandbox.s3 import MotoS3Server
from sandbox.tcp_proxy import TcpProxy
from tests.conftest import PostgresServer, SourceDatabase
from tests.integration.conftest import write_config
from tests.pipeline import (
    create_task,
    describe_task,
    provision,
    read_objects,
    select_rules,
    table_statistics,
)

pytestmark = pytest.mark.integration


async def test_flow_completes_through_throttling_and_5xx_and_says_how_often_it_retried(
    job, localdms, s3
):
    """Afterwards: the ingestion succeeded, every table is in S3, and the report counts the
    retries (boto3's own and the flow's) that the injected faults caused."""
    localdms.server.faults = FaultInjector.parse("throttle=0.3,error=0.15,seed=11")

    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    injected = localdms.server.faults.injected
    assert injected["throttle"] > 0
    assert injected["error"] > 0
    assert report.succeeded, report.failure_message()
    assert report.sdk_retries + report.transient_errors > 0
    assert f"{report.sdk_retries} by boto3" in report.summary_markdown()
    keys = read_objects(s3, "postgres-repo")
    assert {"bookings/tickets/LOAD00000001.csv", "bookings/flights/LOAD00000001.csv"} <= set(keys)


def test_fault_spec_is_checked():
    with pytest.raises(ValueError, match="throttle=R"):
        FaultInjector.parse("slow=0.5")
    with pytest.raises(ValueError, match="add up to 1"):
        FaultInjector.parse("throttle=0.8,error=0.5")
    assert not FaultInjector.parse("").enabled


@pytest.fixture
def localdms_process(s3_server, monkeypatch):
    """localdms as its own process (so it can be SIGKILLed), with boto3 pointed at it."""
    from prefect_aws.credentials import _get_client_cached

    server = LocalDmsProcess(s3_server.url, transition_seconds=0.2).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE", server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    _get_client_cached.cache_clear()
    yield server
    server.stop()
    _get_client_cached.cache_clear()


def wait_until_loading(dms, arn: str, table: str, rows: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while table_statistics(dms, arn).get(("bookings", table), {}).get("FullLoadRows", 0) < rows:
        assert time.monotonic() < deadline, describe_task(dms, arn)
        time.sleep(0.05)


def loaded_ids(s3, table: str) -> list[int]:
    objects = read_objects(s3, "postgres-repo", f"bookings/{table}/")
    names = sorted(key.rsplit("/", 1)[-1] for key in objects)
    assert names == [f"LOAD{n:08X}.csv" for n in range(1, len(names) + 1)], names  # no stale file
    return [
        int(line.split(",", 1)[0])
        for body in objects.values()
        for line in body.decode().splitlines()
    ]


async def test_localdms_killed_mid_load_then_a_rerun_loads_exactly(
    localdms_process, s3, source_db, prefect_api, monkeypatch, tmp_path
):
    """Afterwards: the task is complete, and each table in S3 equals the source: every row once,
    LOAD files numbered from 1 with none left over from the killed run."""
    source_db.execute("CREATE SCHEMA bookings")
    source_db.execute(
        "CREATE TABLE bookings.big AS SELECT g AS id, md5(g::text) AS label "
        "FROM generate_series(1, 1500000) g"
    )
    source_db.execute(
        "CREATE TABLE bookings.small AS SELECT g AS id FROM generate_series(1, 1000) g"
    )
    dms = boto3.client("dms", endpoint_url=localdms_process.url)
    pipeline = provision(
        dms, s3, source_db, bucket="postgres-repo", s3_settings={"MaxFileSize": 20_000}
    )
    monkeypatch.setenv("DMS_SOURCE_ENDPOINT_ARN", pipeline.source_arn)
    monkeypatch.setenv("DMS_TARGET_ENDPOINT_ARN", pipeline.target_arn)
    monkeypatch.setenv("DMS_REPLICATION_INSTANCE_ARN", pipeline.instance_arn)
    config = tmp_path / "dms_config.json"
    write_config(config, [{"schema_name": "bookings", "table_name": "%"}])
    arn = create_task(dms, pipeline, select_rules(("bookings", "%")), "postgres-migration-test")
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    wait_until_loading(dms, arn, "big", 200_000)

    localdms_process.kill()
    localdms_process.start()
    interrupted = describe_task(dms, arn)
    assert interrupted["Status"] == "failed"
    assert "localdms stopped while the task was running" in interrupted["LastFailureMessage"]

    report = await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)

    assert report.succeeded, report.failure_message()
    assert report.task_arn == arn  # the same task, rerun
    assert sorted(loaded_ids(s3, "big")) == list(range(1, 1_500_001))
    assert sorted(loaded_ids(s3, "small")) == list(range(1, 1001))


async def test_flow_process_killed_then_rerun_attaches_to_the_running_task(
    job, dms, s3, source_db, tmp_path
):
    """Afterwards: one replication task (the rerun attached to it rather than creating another),
    the ingestion succeeded, and every row is in S3 once."""
    with psycopg.connect(source_db.dsn) as lock:
        # Holds the load of bookings.tickets open, so the task is running when the flow dies.
        lock.execute("LOCK TABLE bookings.tickets IN ACCESS EXCLUSIVE MODE")
        first = subprocess.Popen(
            [sys.executable, "-m", "flows", "run", "--config", str(job), "--poll-interval", "0.2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (tasks := dms.describe_replication_tasks()["ReplicationTasks"]) or (
                tasks[0]["Status"] != "running"
            ):
                assert first.poll() is None, "the first run ended before it could be killed"
                assert time.monotonic() < deadline, tasks
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # the flow is monitoring now
        finally:
            first.kill()
            first.wait(30)

        rerun = asyncio.create_task(
            dms_ingestion(
                config_path=str(job), poll_interval_seconds=0.2, overrides={"if_running": "attach"}
            )
        )
        await asyncio.sleep(3)
        assert not rerun.done()
        lock.rollback()  # the load goes on
        report = await rerun

    assert report.succeeded, report.failure_message()
    assert report.start_type is None  # attached: not started again
    assert len(dms.describe_replication_tasks()["ReplicationTasks"]) == 1
    tickets = read_objects(s3, "postgres-repo", "bookings/tickets/")
    assert sum(body.count(b"\n") for body in tickets.values()) == 5000


@dataclass
class Stack:
    """A job on servers of its own, which a test may restart or stop."""

    postgres: ThrowawayPostgres
    s3_server: MotoS3Server
    s3: Any
    dms: Any
    config: Path

    def start_bucket(self) -> None:
        self.s3.create_bucket(Bucket="postgres-repo")


@pytest.fixture
def own_stack(tmp_path, monkeypatch, prefect_api):
    from prefect_aws.credentials import _get_client_cached

    with (
        ThrowawayPostgres(settings={"wal_level": "logical"}) as postgres,
        MotoS3Server() as s3_server,
    ):
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
        for name, value in s3_server.credentials().items():
            monkeypatch.setenv(name, value)
        with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.2) as localdms:
            monkeypatch.setenv("AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE", localdms.url)
            _get_client_cached.cache_clear()
            server = PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password)
            source = SourceDatabase(server, "postgres")
            source.execute("CREATE SCHEMA bookings")
            source.execute(
                "CREATE TABLE bookings.big AS SELECT g AS id, md5(g::text) AS label "
                "FROM generate_series(1, 1500000) g"
            )
            # This server's keys: boto3's default session keeps the first ones it read.
            s3 = boto3.client("s3", **s3_server.client_arguments())
            dms = boto3.client("dms", endpoint_url=localdms.url)
            pipeline = provision(dms, s3, source, bucket="postgres-repo")
            monkeypatch.setenv("DMS_SOURCE_ENDPOINT_ARN", pipeline.source_arn)
            monkeypatch.setenv("DMS_TARGET_ENDPOINT_ARN", pipeline.target_arn)
            monkeypatch.setenv("DMS_REPLICATION_INSTANCE_ARN", pipeline.instance_arn)
            config = tmp_path / "dms_config.json"
            write_config(config, [{"schema_name": "bookings", "table_name": "big"}])
            yield Stack(postgres, s3_server, s3, dms, config)
        _get_client_cached.cache_clear()


async def load_through(stack: Stack, fault: Callable[[], None]) -> IngestionReport:
    """Run the flow, apply ``fault`` while bookings.big loads, and return the flow's report."""
    flow = asyncio.create_task(
        dms_ingestion(config_path=str(stack.config), poll_interval_seconds=0.2)
    )
    deadline = time.monotonic() + 120
    while not (tasks := stack.dms.describe_replication_tasks()["ReplicationTasks"]) or (
        table_statistics(stack.dms, tasks[0]["ReplicationTaskArn"])
        .get(("bookings", "big"), {})
        .get("FullLoadRows", 0)
        < 200_000
    ):
        assert time.monotonic() < deadline
        assert not flow.done()
        await asyncio.sleep(0.05)
    await asyncio.to_thread(fault)
    return await flow


def restarts(stack: Stack) -> list[str]:
    events = stack.dms.describe_events(SourceType="replication-task")["Events"]
    return [e["Message"] for e in events if "recoverable error" in e["Message"]]


def big_ids(stack: Stack) -> list[int]:
    objects = read_objects(stack.s3, "postgres-repo", "bookings/big/")
    assert sorted(objects) == ["bookings/big/LOAD00000001.csv"]
    return sorted(
        int(line.split(",", 1)[0])
        for line in objects["bookings/big/LOAD00000001.csv"].decode().splitlines()
    )


async def test_postgres_restarted_mid_load_is_retried_and_loads_every_row_once(own_stack):
    """As DMS does after an environmental error: the task restarts the load by itself, the flow
    run succeeds, and every row is in S3 once."""
    report = await load_through(own_stack, own_stack.postgres.restart)

    assert report.succeeded, report.failure_message()
    assert report.tables[0].table_state == "Table completed"
    (restart,) = restarts(own_stack)
    assert "PostgreSQL source" in restart
    assert big_ids(own_stack) == list(range(1, 1_500_001))


async def test_s3_unreachable_mid_load_is_retried_until_it_answers(own_stack, monkeypatch):
    """S3 refusing connections for a while mid-load (a forwarder in front of moto, which would
    lose its buckets if restarted): the task waits and restarts until it answers, then loads
    every row once."""
    from prefect_aws.credentials import _get_client_cached

    with TcpProxy(int(own_stack.s3_server.url.rsplit(":", 1)[1])) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)  # localdms's S3 and the flow's
        _get_client_cached.cache_clear()

        def outage() -> None:  # longer than boto3's own retries: until DMS restarts the load
            proxy.refuse()
            deadline = time.monotonic() + 90
            while not restarts(own_stack):
                assert time.monotonic() < deadline, "no restart during the S3 outage"
                time.sleep(0.2)
            proxy.accept()

        report = await load_through(own_stack, outage)

    assert report.succeeded, report.failure_message()
    assert restarts(own_stack), "no restart during the S3 outage"
    assert "Failed to write to S3" in restarts(own_stack)[0]
    assert big_ids(own_stack) == list(range(1, 1_500_001))
