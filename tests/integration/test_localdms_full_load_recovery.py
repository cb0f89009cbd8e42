"""A full load through what DMS calls environmental errors: a PostgreSQL restart and an S3 that
refuses connections for longer than boto3's own retries, mid-load. As DMS does (ErrorBehavior's
RecoverableError settings, ``dms_spec/recovery.py``), the task stays ``running``, restarts the
load of the tables not yet completed after RecoverableErrorInterval, says so in its events, and
ends with every row in S3 exactly once; ``RecoverableErrorCount: 0`` fails it at the first error.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from localdms.server import ThreadedLocalDms
from sandbox.postgres import ThrowawayPostgres
from sandbox.tcp_proxy import TcpProxy
from tests.conftest import PostgresServer, SourceDatabase
from tests.pipeline import (
    Pipeline,
    create_task,
    describe_task,
    provision,
    read_objects,
    select_rules,
    table_statistics,
    wait_for_status,
)

pytestmark = pytest.mark.integration

BIG_ROWS = 1_500_000
"""Enough that the load of ``app.big`` takes seconds here, so the fault lands inside it."""


def make_tables(source: SourceDatabase) -> None:
    source.execute("CREATE SCHEMA app")
    source.execute("CREATE TABLE app.alpha AS SELECT g AS id, 'row ' || g AS note "
                   "FROM generate_series(1, 100) g")  # fmt: skip
    source.execute("CREATE TABLE app.big AS SELECT g AS id, md5(g::text) AS note "
                   f"FROM generate_series(1, {BIG_ROWS}) g")  # fmt: skip


def loading_task(
    dms: Any, s3: Any, source: SourceDatabase, **error_behavior: Any
) -> tuple[Pipeline, str]:
    """A started full-load task over both tables (alpha loads first), restarting after 1 s."""
    make_tables(source)
    pipeline = provision(dms, s3, source, s3_settings={"MaxFileSize": 20_000})
    settings = {
        "ErrorBehavior": {"RecoverableErrorInterval": 1, **error_behavior},
        "FullLoadSettings": {"MaxFullLoadSubTasks": 1},
    }
    arn = create_task(
        dms, pipeline, select_rules(("app", "alpha"), ("app", "big")),
        ReplicationTaskSettings=json.dumps(settings),
    )  # fmt: skip
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    return pipeline, arn


def wait_loading_big(dms: Any, arn: str, timeout: float = 60) -> None:
    """Until ``app.big`` has rows loaded (its COPY is under way)."""
    deadline = time.monotonic() + timeout
    while table_statistics(dms, arn).get(("app", "big"), {}).get("FullLoadRows", 0) == 0:
        assert time.monotonic() < deadline, describe_task(dms, arn)
        time.sleep(0.05)


def restart_events(dms: Any) -> list[str]:
    events = dms.describe_events(SourceIdentifier="test-task", SourceType="replication-task")
    return [e["Message"] for e in events["Events"] if "recoverable error" in e["Message"]]


def loaded_ids(s3: Any, bucket: str, table: str) -> list[int]:
    """The ids in the table's LOAD files, in file order (a duplicate shows twice)."""
    objects = read_objects(s3, bucket, f"app/{table}/")
    assert all("/LOAD" in key for key in objects), sorted(objects)
    return [int(line.split(b",")[0]) for body in objects.values() for line in body.splitlines()]


def test_a_postgres_restart_mid_load_restarts_the_load_and_loads_each_row_once(dms, s3):
    with ThrowawayPostgres() as postgres:
        server = PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password)
        source = SourceDatabase(server, "postgres")
        pipeline, arn = loading_task(dms, s3, source)
        wait_loading_big(dms, arn)
        postgres.restart()  # the COPY's connection is cut; the server is back when this returns
        assert describe_task(dms, arn)["Status"] == "running"
        task = wait_for_status(dms, arn, {"stopped", "failed"}, timeout=120)

        assert task["Status"] == "stopped", task
        assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
        restarts = restart_events(dms)
        assert len(restarts) == 1, restarts
        assert restarts[0].startswith("The replication task has started. Restart 1 after a "
                                      "recoverable error: ")  # fmt: skip
        assert "PostgreSQL source" in restarts[0]
        stats = table_statistics(dms, arn)
        assert stats[("app", "big")]["TableState"] == "Table completed"
        assert stats[("app", "big")]["FullLoadRows"] == BIG_ROWS
        assert sorted(loaded_ids(s3, pipeline.bucket, "big")) == list(range(1, BIG_ROWS + 1))
        assert sorted(loaded_ids(s3, pipeline.bucket, "alpha")) == list(range(1, 101))


def test_recoverable_error_count_0_fails_the_full_load_at_the_first_error(dms, s3):
    with ThrowawayPostgres() as postgres:
        server = PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password)
        source = SourceDatabase(server, "postgres")
        pipeline, arn = loading_task(dms, s3, source, RecoverableErrorCount=0)
        wait_loading_big(dms, arn)
        postgres.restart()
        task = wait_for_status(dms, arn, {"stopped", "failed"}, timeout=60)

        assert task["Status"] == "failed", task
        assert task["StopReason"].endswith("Stop Reason RECOVERABLE_ERROR Error Level RECOVERABLE")
        assert "Start the task with resume-processing" in task["LastFailureMessage"]
        assert restart_events(dms) == []
        stats = table_statistics(dms, arn)
        assert stats[("app", "alpha")]["TableState"] == "Table completed"
        assert "/LOAD" not in "".join(read_objects(s3, pipeline.bucket, "app/big/"))  # removed

        # resume-processing loads what is left: the first table is kept as it was.
        dms.start_replication_task(
            ReplicationTaskArn=arn, StartReplicationTaskType="resume-processing"
        )
        assert wait_for_status(dms, arn, {"stopped", "failed"})["Status"] == "stopped"
        assert len(loaded_ids(s3, pipeline.bucket, "big")) == BIG_ROWS


def test_an_s3_outage_mid_load_restarts_the_load_until_s3_answers(
    s3, s3_server, source_db, tmp_path, monkeypatch
):
    """localdms reaches S3 through a forwarder that refuses connections mid-load for longer
    than boto3's retries last: the task restarts (more than once, the wait doubling), and the
    load completes once S3 answers, each row once."""
    port = int(s3_server.url.rsplit(":", 1)[1])
    with TcpProxy(port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)  # localdms's S3, not the test's
        with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.2) as server:
            dms = boto3.client("dms", endpoint_url=server.url)
            pipeline, arn = loading_task(dms, s3, source_db)
            wait_loading_big(dms, arn)
            proxy.refuse()
            deadline = time.monotonic() + 90
            while len(restart_events(dms)) < 2:  # boto3's retries, then DMS's restarts
                assert describe_task(dms, arn)["Status"] == "running"
                assert time.monotonic() < deadline, "no second restart during the S3 outage"
                time.sleep(0.2)
            reopened = threading.Timer(0.5, proxy.accept)
            reopened.start()
            task = wait_for_status(dms, arn, {"stopped", "failed"}, timeout=120)
            reopened.join()

            assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED", task
            assert "Failed to write to S3" in restart_events(dms)[0]
            assert sorted(loaded_ids(s3, pipeline.bucket, "big")) == list(range(1, BIG_ROWS + 1))
