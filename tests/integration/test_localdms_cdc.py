"""localdms change data capture through boto3: LOAD then CDC files replayed in order must give
exactly the source's final state, whatever happened in between (changes during the load, stop and
resume, a SIGKILL of localdms)."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from localdms.engine.pgoutput import parse_lsn
from localdms.server import ThreadedLocalDms
from localdms.store import STATE_FILE
from sandbox.localdms_process import LocalDmsProcess
from sandbox.postgres import ThrowawayPostgres
from sandbox.tcp_proxy import TcpProxy
from tests.conftest import PostgresServer, SourceDatabase
from tests.dms_csv import parse_dms_csv
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

CDC_S3 = {"CdcMaxBatchInterval": 1}
ACCOUNTS = "app/accounts/"


def make_accounts(source: SourceDatabase, rows: int) -> None:
    source.execute("CREATE SCHEMA app")
    source.execute(
        "CREATE TABLE app.accounts (id int PRIMARY KEY, name text, balance numeric(12,2), "
        "updated timestamptz, active boolean, doc jsonb)"
    )
    source.execute(
        "INSERT INTO app.accounts SELECT g, 'owner ' || g, g * 1.25, "
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', g %% 2 = 0, "
        "jsonb_build_object('n', g) FROM generate_series(1, %s) g",
        (rows,),
    )


def change_accounts(source: SourceDatabase, first_id: int, count: int) -> None:
    """One transaction per change: inserts, updates (including a quote, a newline and a NULL), deletes."""
    with psycopg.connect(source.dsn, autocommit=True) as conn:
        for step in range(count):
            key = first_id + step
            conn.execute(
                "INSERT INTO app.accounts VALUES (%s, %s, %s, now(), true, %s)",
                (key, f'new "{key}",\nline', Decimal("10.50"), json.dumps({"k": key})),
            )
            conn.execute(
                "UPDATE app.accounts SET balance = balance + 1, name = NULL, active = NOT active "
                "WHERE id = %s",
                (step * 7 + 1,),
            )
            conn.execute("DELETE FROM app.accounts WHERE id = %s", (step * 11 + 3,))


def source_state(source: SourceDatabase) -> dict[int, tuple[Any, ...]]:
    rows = source.fetchall("SELECT id, name, balance, updated, active, doc FROM app.accounts")
    return {row[0]: row[1:] for row in rows}


def typed(fields: list[str | None]) -> tuple[int, tuple[Any, ...]]:
    """A DMS CSV row of app.accounts read back into Python values."""
    key, name, balance, updated, active, doc = fields
    assert key is not None
    assert updated is not None
    return int(key), (
        name,
        None if balance is None else Decimal(balance),
        datetime.fromisoformat(updated).replace(tzinfo=UTC),
        None if active is None else active == "true",
        None if doc is None else json.loads(doc),
    )


def replay(s3: Any, bucket: str, prefix: str = ACCOUNTS) -> dict[int, tuple[Any, ...]]:
    """Apply the LOAD files, then the CDC files in name order, as a consumer would."""
    objects = read_objects(s3, bucket, prefix)
    state: dict[int, tuple[Any, ...]] = {}
    for key in sorted(k for k in objects if k.rsplit("/", 1)[-1].startswith("LOAD")):
        for row in parse_dms_csv(objects[key].decode()):
            identifier, values = typed(row)
            state[identifier] = values
    for key in sorted(k for k in objects if not k.rsplit("/", 1)[-1].startswith("LOAD")):
        for op, *row in parse_dms_csv(objects[key].decode()):
            if op == "D":
                state.pop(int(row[0] or 0), None)
            else:
                assert op in ("I", "U"), op
                identifier, values = typed(row)
                state[identifier] = values
    return state


def wait_for_sentinel(
    s3: Any,
    bucket: str,
    sentinel: int,
    timeout: float = 60,
    replayer: Callable[[Any, str], dict[int, tuple[Any, ...]]] | None = None,
) -> None:
    """Wait until the row inserted last is in a CDC file: every earlier change is then too."""
    deadline = time.monotonic() + timeout
    while sentinel not in (replayer or replay)(s3, bucket):
        assert time.monotonic() < deadline, f"row {sentinel} never reached S3"
        time.sleep(0.3)


def start(dms: Any, arn: str, start_type: str = "start-replication", **extra: Any) -> None:
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType=start_type, **extra)


def wait_capturing(dms: Any, arn: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the full load is over and the task is running (capturing changes)."""
    deadline = time.monotonic() + timeout
    while True:
        task = describe_task(dms, arn)
        assert task["Status"] in ("starting", "running"), task
        stats = task.get("ReplicationTaskStats", {})
        if task["Status"] == "running" and stats.get("FullLoadProgressPercent") == 100:
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.2)


def capturing_task(
    dms: Any,
    s3: Any,
    source: SourceDatabase,
    migration_type: str = "full-load-and-cdc",
    tables: tuple[str, str] = ("app", "accounts"),
    s3_settings: dict[str, Any] | None = None,
    slot: str | None = None,
) -> tuple[Pipeline, str]:
    """Provision, create and start a CDC task (CDC files every second); return once it captures."""
    pipeline = provision(
        dms, s3, source, s3_settings={**CDC_S3, **(s3_settings or {})},
        postgres_settings={"SlotName": slot} if slot else None,
    )  # fmt: skip
    arn = create_task(dms, pipeline, select_rules(tables), migration_type=migration_type)
    start(dms, arn)
    wait_capturing(dms, arn)
    return pipeline, arn


def slots(source: SourceDatabase) -> list[str]:
    return [
        row[0]
        for row in source.fetchall(
            "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
        )
    ]


def test_full_load_and_cdc_loses_and_repeats_nothing(dms, s3, source_db):
    make_accounts(source_db, 30_000)
    pipeline = provision(dms, s3, source_db, s3_settings=CDC_S3)
    arn = create_task(
        dms, pipeline, select_rules(("app", "%")), migration_type="full-load-and-cdc",
        ReplicationTaskSettings=json.dumps({"FullLoadSettings": {"MaxFullLoadSubTasks": 1}}),
    )  # fmt: skip
    during = threading.Thread(target=change_accounts, args=(source_db, 100_001, 150))
    start(dms, arn)
    wait_for_status(dms, arn, {"running"})
    during.start()  # changes race the load: each must land in LOAD or CDC, exactly once
    task = wait_capturing(dms, arn)
    during.join()
    assert task["ReplicationTaskStats"]["FullLoadProgressPercent"] == 100
    change_accounts(source_db, 200_001, 50)
    source_db.execute("INSERT INTO app.accounts VALUES (999999, 'sentinel', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_999)

    assert replay(s3, pipeline.bucket) == source_state(source_db)
    statistics = table_statistics(dms, arn)[("app", "accounts")]
    assert statistics["Inserts"] >= 51
    assert statistics["Updates"] >= 50
    assert statistics["Deletes"] >= 50
    assert statistics["AppliedInserts"] >= 51
    task = describe_task(dms, arn)
    assert parse_lsn(task["RecoveryCheckpoint"]) > 0
    cdc_files = [k for k in read_objects(s3, pipeline.bucket, ACCOUNTS) if "/LOAD" not in k]
    assert cdc_files
    assert all(len(k.rsplit("/", 1)[-1]) == len("20230905-151244585.csv") for k in cdc_files)

    dms.stop_replication_task(ReplicationTaskArn=arn)
    stopped = wait_for_status(dms, arn, {"stopped"})
    assert stopped["StopReason"] == "Stop Reason NORMAL"
    change_accounts(source_db, 300_001, 30)  # while stopped: kept by the slot
    start(dms, arn, "resume-processing")
    source_db.execute("INSERT INTO app.accounts VALUES (999998, 'sentinel', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_998)
    assert replay(s3, pipeline.bucket) == source_state(source_db)

    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})
    assert len(slots(source_db)) == 1
    dms.delete_replication_task(ReplicationTaskArn=arn)
    deadline = time.monotonic() + 30
    while slots(source_db) or source_db.fetchall("SELECT 1 FROM pg_publication"):
        assert time.monotonic() < deadline, "the slot or a publication outlived the task"
        time.sleep(0.2)


def test_cached_changes_applied_then_stops(dms, s3, source_db):
    make_accounts(source_db, 2_000)
    # A view that waits for an advisory lock the test holds keeps the full load open while the
    # changes commit (an advisory lock takes no transaction id, so the slot is created at once).
    source_db.execute(
        "CREATE VIEW app.gated AS SELECT 1 AS x FROM (SELECT pg_advisory_xact_lock_shared(42)) AS w"
    )
    rules = json.loads(select_rules(("app", "accounts"), ("app", "gated")))
    rules["rules"][1]["object-locator"]["table-type"] = "view"
    pipeline = provision(dms, s3, source_db, s3_settings=CDC_S3)
    arn = create_task(
        dms, pipeline, json.dumps(rules), migration_type="full-load-and-cdc",
        ReplicationTaskSettings=json.dumps(
            {"FullLoadSettings": {"StopTaskCachedChangesApplied": True}}
        ),
    )  # fmt: skip
    with psycopg.connect(source_db.dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(42)")
        start(dms, arn)
        wait_for_status(dms, arn, {"running"})
        change_accounts(source_db, 100_001, 40)  # committed during the load: cached changes
        assert describe_task(dms, arn)["Status"] == "running"
    task = wait_for_status(dms, arn, {"stopped", "failed"})
    assert task["StopReason"] == "Stop Reason STOPPED_AFTER_CACHED_EVENTS", task
    assert replay(s3, pipeline.bucket) == source_state(source_db)
    assert table_statistics(dms, arn)[("app", "accounts")]["AppliedInserts"] == 40


def test_localdms_killed_during_cdc_resumes_from_its_checkpoint(s3, s3_server, source_db):
    make_accounts(source_db, 5_000)
    server = LocalDmsProcess(s3_server.url, transition_seconds=0.2).start()
    try:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline, arn = capturing_task(dms, s3, source_db)
        change_accounts(source_db, 100_001, 40)
        source_db.execute("INSERT INTO app.accounts VALUES (999997, 's', 0, now(), true, '{}')")
        wait_for_sentinel(s3, pipeline.bucket, 999_997)
        killer = threading.Thread(target=change_accounts, args=(source_db, 200_001, 80))
        killer.start()
        time.sleep(0.5)
        server.kill()  # mid-stream: some changes captured, some not yet written
        killer.join()
        change_accounts(source_db, 300_001, 20)  # while localdms is down
        server.start()
        assert describe_task(dms, arn)["Status"] in ("starting", "running")  # resuming by itself
        wait_for_status(dms, arn, {"running"})
        source_db.execute("INSERT INTO app.accounts VALUES (999996, 's', 0, now(), true, '{}')")
        wait_for_sentinel(s3, pipeline.bucket, 999_996)
        assert replay(s3, pipeline.bucket) == source_state(source_db)
        dms.stop_replication_task(ReplicationTaskArn=arn)
        wait_for_status(dms, arn, {"stopped"})
    finally:
        server.stop()


def saved_status(server: LocalDmsProcess, arn: str) -> str:
    """The task's status in the state file localdms left on disk."""
    state = json.loads((server.state_dir / STATE_FILE).read_text())
    return str(next(t["status"] for t in state["tasks"] if t["arn"] == arn))


def test_localdms_killed_while_a_capturing_task_stops_finishes_the_stop(s3, s3_server, source_db):
    """StopReplicationTask was accepted, then localdms died before the run had stopped: after a
    restart the task is stopped (Stop Reason NORMAL) and stays so; it used to resume capture."""
    make_accounts(source_db, 1_000)
    server = LocalDmsProcess(s3_server.url, transition_seconds=0.2).start()
    try:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline, arn = capturing_task(dms, s3, source_db)
        for _attempt in range(5):  # the kill must land before the run has written `stopped`
            change_accounts(source_db, 100_001 + 1_000 * _attempt, 200)  # pending changes
            dms.stop_replication_task(ReplicationTaskArn=arn)
            server.kill()
            if saved_status(server, arn) == "stopping":
                break
            server.start()  # it had stopped in time: capture again and retry
            start(dms, arn, "resume-processing")
            wait_capturing(dms, arn)
        else:
            pytest.fail("the run stopped before every kill; the stopping state was never caught")

        server.start()
        task = describe_task(dms, arn)
        assert (task["Status"], task["StopReason"]) == ("stopped", "Stop Reason NORMAL")
        time.sleep(1.0)  # nothing resumes it meanwhile
        assert describe_task(dms, arn)["Status"] == "stopped"
        active = source_db.fetchall(
            "SELECT active FROM pg_replication_slots WHERE database = current_database()"
        )
        assert active == [(False,)]  # its slot is kept, and nothing reads it
        start(dms, arn, "resume-processing")  # what it had not written is still in the slot
        wait_capturing(dms, arn)
        source_db.execute("INSERT INTO app.accounts VALUES (999994, 's', 0, now(), true, '{}')")
        wait_for_sentinel(s3, pipeline.bucket, 999_994)
        assert replay(s3, pipeline.bucket) == source_state(source_db)
        dms.stop_replication_task(ReplicationTaskArn=arn)
        wait_for_status(dms, arn, {"stopped"})
    finally:
        server.stop()


def test_cdc_task_writes_only_changes_and_honours_table_identity(dms, s3, source_db):
    make_accounts(source_db, 100)
    source_db.execute("CREATE TABLE app.events (kind text, at int)")  # no primary key
    source_db.execute("INSERT INTO app.events VALUES ('old', 0)")
    pipeline, arn = capturing_task(
        dms, s3, source_db, "cdc", ("app", "%"), {"DatePartitionEnabled": True}
    )
    change_accounts(source_db, 500, 5)
    source_db.execute("INSERT INTO app.events VALUES ('click', 1)")
    source_db.execute("UPDATE app.events SET at = 2")  # not refused on the source, not captured
    source_db.execute("DELETE FROM app.events WHERE kind = 'old'")
    source_db.execute("INSERT INTO app.accounts VALUES (999995, 's', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_995)

    objects = read_objects(s3, pipeline.bucket)
    assert not [k for k in objects if "/LOAD" in k]  # a cdc task has no full load
    today = datetime.now(UTC).strftime("%Y/%m/%d")
    assert all(f"/{today}/" in key for key in objects), sorted(objects)
    events = [
        row
        for key, body in objects.items()
        if key.startswith("app/events/")
        for row in parse_dms_csv(body.decode())
    ]
    assert events == [["I", "click", "1"]]
    accounts = [
        row[0]
        for k, b in objects.items()
        if k.startswith(ACCOUNTS)
        for row in parse_dms_csv(b.decode())
    ]
    assert accounts.count("I") == 6
    assert accounts.count("U") == 5
    assert accounts.count("D") == 5

    source_db.execute("TRUNCATE app.events")
    deadline = time.monotonic() + 30
    while s3.list_objects_v2(Bucket=pipeline.bucket, Prefix="app/events/")["KeyCount"]:
        assert time.monotonic() < deadline, "TRUNCATE did not remove the table's files"
        time.sleep(0.3)
    assert table_statistics(dms, arn)[("app", "events")]["Ddls"] == 1
    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})


def test_cdc_refuses_a_source_that_cannot_stream(dms, s3, source_db):
    make_accounts(source_db, 10)
    source_db.execute("ALTER SYSTEM SET wal_sender_timeout = 5000")
    source_db.execute("SELECT pg_reload_conf()")
    try:
        pipeline = provision(dms, s3, source_db)
        arn = create_task(dms, pipeline, select_rules(("app", "%")), migration_type="cdc")
        start(dms, arn)
        task = wait_for_status(dms, arn, {"failed"})
    finally:
        source_db.execute("ALTER SYSTEM RESET wal_sender_timeout")
        source_db.execute("SELECT pg_reload_conf()")
    assert "wal_sender_timeout is 5000 ms" in task["LastFailureMessage"]
    assert task["StopReason"].endswith("Stop Reason FATAL_ERROR Error Level FATAL")
    assert slots(source_db) == []


def replay_parquet(s3: Any, bucket: str, prefix: str = ACCOUNTS) -> dict[int, tuple[Any, ...]]:
    """LOAD then CDC Parquet files applied in order (the Op column leads CDC files)."""
    objects = read_objects(s3, bucket, prefix)
    state: dict[int, tuple[Any, ...]] = {}
    for key in sorted(objects, key=lambda k: (not k.rsplit("/", 1)[-1].startswith("LOAD"), k)):
        assert key.endswith(".parquet"), key
        for row in pq.read_table(io.BytesIO(objects[key])).to_pylist():
            op = row.pop("Op", "I")
            values = (row["name"], row["balance"], row["updated"], row["active"], row["doc"])
            values = (*values[:3], None if values[3] is None else values[3] == "true",
                      None if values[4] is None else json.loads(values[4]))  # fmt: skip
            if op == "D":
                state.pop(row["id"], None)
            else:
                state[row["id"]] = values
    return state


def test_full_load_and_cdc_in_parquet(dms, s3, source_db):
    make_accounts(source_db, 3_000)
    pipeline, arn = capturing_task(dms, s3, source_db, s3_settings={"DataFormat": "parquet"})
    change_accounts(source_db, 100_001, 30)
    source_db.execute("INSERT INTO app.accounts VALUES (999994, 's', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_994, replayer=replay_parquet)

    assert replay_parquet(s3, pipeline.bucket) == source_state(source_db)
    objects = read_objects(s3, pipeline.bucket, ACCOUNTS)
    assert f"{ACCOUNTS}LOAD00000001.parquet" in objects
    last_cdc = max(k for k in objects if "/LOAD" not in k)
    cdc = pq.read_table(io.BytesIO(objects[last_cdc]))
    assert cdc.schema.field("balance").type == pa.decimal128(12, 2)
    assert cdc.schema.field("updated").type == pa.timestamp("us", tz="UTC")
    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})


def test_cdc_reads_the_endpoints_existing_slot_and_leaves_it(dms, s3, source_db):
    make_accounts(source_db, 30)
    source_db.execute("SELECT pg_create_logical_replication_slot('analytics_slot', 'pgoutput')")
    pipeline, arn = capturing_task(dms, s3, source_db, "cdc", slot="analytics_slot")
    change_accounts(source_db, 500, 3)
    source_db.execute("INSERT INTO app.accounts VALUES (999993, 's', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_993)
    ops = [row[0] for body in read_objects(s3, pipeline.bucket).values()
           for row in parse_dms_csv(body.decode())]  # fmt: skip
    assert (ops.count("I"), ops.count("U"), ops.count("D")) == (4, 3, 3)
    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})
    dms.delete_replication_task(ReplicationTaskArn=arn)
    time.sleep(2)
    assert slots(source_db) == ["analytics_slot"]  # the user's slot stays

    source_db.execute("SELECT pg_drop_replication_slot('analytics_slot')")
    arn = create_task(dms, pipeline, select_rules(("app", "accounts")), "again", "cdc")
    start(dms, arn)
    task = wait_for_status(dms, arn, {"failed"})
    assert (
        "Replication slot analytics_slot (the source endpoint's SlotName) does not exist"
        in (task["LastFailureMessage"])
    )


def test_cdc_start_and_stop_positions(dms, s3, source_db):
    """CdcStartPosition skips what came before it; CdcStopPosition commit_time stops the task at
    the first commit at or after that time, without writing it."""
    make_accounts(source_db, 30)
    source_db.execute("SELECT pg_create_logical_replication_slot('positions_slot', 'pgoutput')")
    pipeline, arn = capturing_task(dms, s3, source_db, "cdc", slot="positions_slot")  # publications
    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})
    source_db.execute("INSERT INTO app.accounts VALUES (1001, 'before', 0, now(), true, '{}')")
    # the insert position: with synchronous_commit=off the write position can lag the commit
    (position,) = source_db.fetchall("SELECT pg_current_wal_insert_lsn()::text")[0]
    source_db.execute("INSERT INTO app.accounts VALUES (1002, 'after', 0, now(), true, '{}')")
    stop_at = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S")
    start(
        dms,
        arn,
        "reload-target",
        CdcStartPosition=position,
        CdcStopPosition=f"commit_time:{stop_at}",
    )
    wait_for_sentinel(s3, pipeline.bucket, 1002)
    time.sleep(5)
    source_db.execute("INSERT INTO app.accounts VALUES (1003, 'too late', 0, now(), true, '{}')")
    task = wait_for_status(dms, arn, {"stopped", "failed"})
    assert task["StopReason"] == "Stop Reason STOPPED_AT_COMMIT_TIME", task
    ids = [row[1] for body in read_objects(s3, pipeline.bucket).values()
           for row in parse_dms_csv(body.decode())]  # fmt: skip
    assert ids == ["1002"]


def test_cached_changes_not_applied_stops_right_after_the_load(dms, s3, source_db):
    make_accounts(source_db, 100)
    pipeline = provision(dms, s3, source_db, s3_settings=CDC_S3)
    arn = create_task(
        dms, pipeline, select_rules(("app", "accounts")), migration_type="full-load-and-cdc",
        ReplicationTaskSettings=json.dumps({"FullLoadSettings": {"StopTaskCachedChangesNotApplied": True}}),
    )  # fmt: skip
    start(dms, arn)
    task = wait_for_status(dms, arn, {"stopped", "failed"})
    assert task["StopReason"] == "Stop Reason STOPPED_AFTER_FULL_LOAD", task
    assert len(slots(source_db)) == 1  # kept: resume-processing goes on from it


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"wal_level": "replica"},
            "wal_level is 'replica': change data capture needs wal_level = logical",
        ),
        ({"max_replication_slots": "1"}, "all replication slots are in use"),
    ],
)
def test_cdc_prerequisites_fail_the_task_saying_what_to_change(dms, s3, settings, message):
    with ThrowawayPostgres(settings=settings) as postgres:
        server = PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password)
        source = SourceDatabase(server, "postgres")
        make_accounts(source, 10)
        if "max_replication_slots" in settings:
            source.execute("SELECT pg_create_logical_replication_slot('taken', 'pgoutput')")
        pipeline = provision(dms, s3, source)
        arn = create_task(
            dms, pipeline, select_rules(("app", "%")), migration_type="full-load-and-cdc"
        )
        start(dms, arn)
        task = wait_for_status(dms, arn, {"failed"})
        assert message in task["LastFailureMessage"]
        assert task["StopReason"].endswith("Stop Reason FATAL_ERROR Error Level FATAL")
        assert slots(source) == (["taken"] if "max_replication_slots" in settings else [])
        assert source.fetchall("SELECT pubname FROM pg_publication") == []  # nothing left behind


def test_reload_target_reloads_and_restarts_capture(dms, s3, source_db):
    """Afterwards: the earlier run's CDC files are gone (they would replay onto the new load),
    the slot was created again, and LOAD plus new CDC files replay to the source."""
    make_accounts(source_db, 2_000)
    pipeline, arn = capturing_task(dms, s3, source_db)
    change_accounts(source_db, 100_001, 10)
    source_db.execute("INSERT INTO app.accounts VALUES (999992, 's', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_992)
    first_files = {k for k in read_objects(s3, pipeline.bucket, ACCOUNTS) if "/LOAD" not in k}
    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})

    start(dms, arn, "reload-target")
    wait_capturing(dms, arn)
    change_accounts(source_db, 200_001, 10)
    source_db.execute("INSERT INTO app.accounts VALUES (999991, 's', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_991)

    files = set(read_objects(s3, pipeline.bucket, ACCOUNTS))
    assert not first_files & files
    load = read_objects(s3, pipeline.bucket, f"{ACCOUNTS}LOAD00000001.csv")
    loaded = {int(row[0] or 0) for body in load.values() for row in parse_dms_csv(body.decode())}
    assert 100_001 in loaded  # inserted during the first capture: the tables were loaded again
    assert len(slots(source_db)) == 1
    assert replay(s3, pipeline.bucket) == source_state(source_db)
    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})


def delete_and_wait_for_the_slot_to_go(dms: Any, arn: str, source: SourceDatabase) -> list[str]:
    """Stop and delete a capturing task; return the slots left on its database once the drop
    (on a thread of localdms) has had its time."""
    dms.stop_replication_task(ReplicationTaskArn=arn)
    wait_for_status(dms, arn, {"stopped"})
    dms.delete_replication_task(ReplicationTaskArn=arn)
    deadline = time.monotonic() + 20
    while slots(source) and time.monotonic() < deadline:
        time.sleep(0.2)
    return slots(source)


def test_deleting_a_cdc_task_whose_source_is_a_secret_drops_its_slot(
    dms, s3, s3_server, source_db, monkeypatch
):
    """The endpoint has no host or port of its own, only a Secrets Manager secret: the drop
    connects with the secret, as the run did (it used to connect without it, fail on a thread,
    and leave the slot holding WAL on the source)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", s3_server.url)  # moto serves both
    server = source_db.server
    secret = boto3.client("secretsmanager", **s3_server.client_arguments()).create_secret(
        Name=f"dms/{source_db.name}",
        SecretString=json.dumps({"username": server.user, "password": server.password,
                                 "host": server.host, "port": server.port,
                                 "dbname": source_db.name}),
    )["ARN"]  # fmt: skip
    make_accounts(source_db, 100)
    pipeline = provision(dms, s3, source_db, s3_settings=CDC_S3)
    endpoint = dms.create_endpoint(
        EndpointIdentifier="from-secret", EndpointType="source", EngineName="postgres",
        PostgreSQLSettings={"SecretsManagerSecretId": secret,
                            "SecretsManagerAccessRoleArn": "arn:aws:iam::123456789012:role/s"},
    )["Endpoint"]  # fmt: skip
    pipeline = replace(pipeline, source_arn=endpoint["EndpointArn"])
    arn = create_task(
        dms, pipeline, select_rules(("app", "accounts")), migration_type="full-load-and-cdc"
    )
    start(dms, arn)
    wait_capturing(dms, arn)
    assert len(slots(source_db)) == 1

    assert delete_and_wait_for_the_slot_to_go(dms, arn, source_db) == []
    publications = source_db.fetchall("SELECT pubname FROM pg_publication")
    assert publications == []


def recovering_task(
    dms: Any, s3: Any, source: SourceDatabase, **error_behavior: Any
) -> tuple[Pipeline, str]:
    """A capturing full-load-and-cdc task whose recoverable errors restart it after 1 s."""
    make_accounts(source, 500)
    pipeline = provision(dms, s3, source, s3_settings=CDC_S3)
    settings = {"ErrorBehavior": {"RecoverableErrorInterval": 1, **error_behavior}}
    arn = create_task(
        dms, pipeline, select_rules(("app", "accounts")), migration_type="full-load-and-cdc",
        ReplicationTaskSettings=json.dumps(settings),
    )  # fmt: skip
    start(dms, arn)
    wait_capturing(dms, arn)
    return pipeline, arn


def write_through_restarts(source: SourceDatabase, first_id: int, stop: threading.Event) -> None:
    """A steady writer, one insert per transaction, that keeps going through a restart."""
    key = first_id
    while not stop.is_set():
        try:
            source.execute(
                "INSERT INTO app.accounts VALUES (%s, 'w', 1, now(), true, '{}')", (key,)
            )
            key += 1
        except psycopg.OperationalError:
            time.sleep(0.1)  # the server is restarting


def test_a_postgres_restart_during_cdc_is_retried_as_dms_retries_it(dms, s3):
    """ErrorBehavior's defaults (RecoverableErrorCount -1): the task stays running through the
    restart, says so in its events, and loses nothing: LOAD then CDC files replay to the source."""
    with ThrowawayPostgres() as postgres:
        server = PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password)
        source = SourceDatabase(server, "postgres")
        pipeline, arn = recovering_task(dms, s3, source)
        stop = threading.Event()
        writer = threading.Thread(target=write_through_restarts, args=(source, 200_001, stop))
        writer.start()
        try:
            time.sleep(1.0)
            postgres.restart()  # the capture's replication connection is cut
            time.sleep(2.5)  # the restart waits RecoverableErrorInterval, then captures again
        finally:
            stop.set()
            writer.join()
        source.execute("INSERT INTO app.accounts VALUES (999990, 's', 0, now(), true, '{}')")
        wait_for_sentinel(s3, pipeline.bucket, 999_990)

        assert describe_task(dms, arn)["Status"] == "running"
        events = dms.describe_events(SourceIdentifier="test-task", SourceType="replication-task")
        restarts = [e["Message"] for e in events["Events"] if "recoverable error" in e["Message"]]
        assert restarts, events["Events"]
        assert restarts[0].startswith("The replication task has started. Restart 1 after a "
                                      "recoverable error: Change capture lost the PostgreSQL source")  # fmt: skip
        assert "resume-processing" not in restarts[0]  # localdms restarts it: nothing to do
        assert replay(s3, pipeline.bucket) == source_state(source)
        dms.stop_replication_task(ReplicationTaskArn=arn)
        wait_for_status(dms, arn, {"stopped"})


def test_recoverable_error_count_0_stops_the_task_at_the_first_error(dms, s3):
    with ThrowawayPostgres() as postgres:
        server = PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password)
        source = SourceDatabase(server, "postgres")
        _, arn = recovering_task(dms, s3, source, RecoverableErrorCount=0)
        postgres.restart()
        task = wait_for_status(dms, arn, {"failed"}, timeout=30)
        assert task["StopReason"].endswith("Stop Reason RECOVERABLE_ERROR Error Level RECOVERABLE")
        assert "Change capture lost the PostgreSQL source" in task["LastFailureMessage"]
        assert "Start the task with resume-processing" in task["LastFailureMessage"]
        events = dms.describe_events(SourceIdentifier="test-task", SourceType="replication-task")
        assert not [e for e in events["Events"] if "recoverable error" in e["Message"]]


def statistics(
    cloudwatch: Any, name: str, dimensions: dict[str, str], minutes: float = 10
) -> list[dict[str, Any]]:
    """A metric's datapoints of the last ``minutes``, as an alarm or a dashboard reads them."""
    now = datetime.now(UTC)
    points: list[dict[str, Any]] = cloudwatch.get_metric_statistics(
        Namespace="AWS/DMS", MetricName=name,
        Dimensions=[{"Name": key, "Value": value} for key, value in dimensions.items()],
        StartTime=now - timedelta(minutes=minutes), EndTime=now + timedelta(minutes=1),
        Period=60, Statistics=["Minimum", "Maximum", "SampleCount"],
    )["Datapoints"]  # fmt: skip
    return points


def restart_events(dms: Any) -> list[str]:
    events = dms.describe_events(SourceIdentifier="test-task", SourceType="replication-task")
    return [e["Message"] for e in events["Events"] if "recoverable error" in e["Message"]]


def test_an_s3_outage_during_cdc_is_retried_and_loses_nothing(
    s3, s3_server, source_db, tmp_path, monkeypatch
):
    """localdms reaches S3 through a forwarder that refuses connections while changes arrive,
    for longer than boto3's own retries last: the CDC files cannot be written, the task stays
    running and restarts capture from its checkpoint until S3 answers again; nothing is lost."""
    port = int(s3_server.url.rsplit(":", 1)[1])
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", s3_server.url)  # moto's, not refused
    cloudwatch = boto3.client("cloudwatch", **s3_server.client_arguments())
    with TcpProxy(port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)  # localdms's S3, not the test's
        with ThreadedLocalDms(
            state_dir=tmp_path / "localdms", transition_seconds=0.2, metrics_period=1
        ) as server:
            dms = boto3.client("dms", endpoint_url=server.url)
            pipeline, arn = recovering_task(dms, s3, source_db)
            task = {"ReplicationInstanceIdentifier": "test-instance",
                    "ReplicationTaskIdentifier": arn.rsplit(":", 1)[-1]}  # fmt: skip
            proxy.refuse()
            change_accounts(source_db, 100_001, 30)  # captured; their CDC files cannot be written
            deadline = time.monotonic() + 90
            while not restart_events(dms):  # boto3 retries first (5 attempts), then DMS's restart
                assert describe_task(dms, arn)["Status"] == "running"
                assert time.monotonic() < deadline, "no restart after the S3 outage"
                time.sleep(0.5)
            # While S3 refuses, the changes wait and CDCLatencyTarget rises (as an alarm sees it).
            outage = statistics(cloudwatch, "CDCLatencyTarget", task)
            assert max(p["Maximum"] for p in outage) >= 2, outage
            waiting = statistics(cloudwatch, "CDCIncomingChanges", task)
            assert max(p["Maximum"] for p in waiting) > 0
            proxy.accept()
            source_db.execute("INSERT INTO app.accounts VALUES (999989, 's', 0, now(), true, '{}')")
            wait_for_sentinel(s3, pipeline.bucket, 999_989)
            time.sleep(2.5)  # periods after the backlog is written: the latency falls back
            recent = statistics(cloudwatch, "CDCLatencyTarget", task, minutes=0.05)
            assert recent, "no datapoint since S3 came back"
            assert min(p["Minimum"] for p in recent) == 0

            assert describe_task(dms, arn)["Status"] == "running"
            assert "Failed to write CDC files to S3" in restart_events(dms)[0]
            assert replay(s3, pipeline.bucket) == source_state(source_db)
            dms.stop_replication_task(ReplicationTaskArn=arn)
            wait_for_status(dms, arn, {"stopped"})


def test_a_fatal_error_after_a_restart_stays_fatal(dms, s3):
    """The source restarts (recoverable: capture waits to restart), and meanwhile its slot is
    dropped: the restart then fails for good, with DMS's fatal words, not as one more
    recoverable error."""
    with ThrowawayPostgres() as postgres:
        server = PostgresServer(postgres.host, postgres.port, postgres.user, postgres.password)
        source = SourceDatabase(server, "postgres")
        _, arn = recovering_task(dms, s3, source, RecoverableErrorInterval=3)
        postgres.restart()
        deadline = time.monotonic() + 10
        while slots(source) and time.monotonic() < deadline:  # idle once capture let go
            with contextlib.suppress(psycopg.errors.ObjectInUse):
                source.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                )
            time.sleep(0.2)
        assert slots(source) == []
        task = wait_for_status(dms, arn, {"failed"}, timeout=30)
        assert task["StopReason"].endswith("Stop Reason FATAL_ERROR Error Level FATAL"), task
        assert "does not exist on the PostgreSQL source" in task["LastFailureMessage"]


def test_a_column_added_during_cdc_is_written_from_then_on(dms, s3, source_db):
    """ALTER TABLE ... ADD COLUMN while capturing: the files after it carry the column (last, as
    in the source), the files before it do not; the header says which."""
    make_accounts(source_db, 5)
    pipeline, _ = capturing_task(dms, s3, source_db, s3_settings={"AddColumnName": True})
    source_db.execute("INSERT INTO app.accounts VALUES (999981, 'a', 0, now(), true, '{}')")
    source_db.execute("ALTER TABLE app.accounts ADD COLUMN note varchar(20) DEFAULT 'x'")
    source_db.execute(
        "INSERT INTO app.accounts VALUES (999982, 'b', 0, now(), true, '{}', 'with, comma')"
    )
    deadline = time.monotonic() + 30
    while True:
        bodies = [v.decode() for k, v in sorted(read_objects(s3, pipeline.bucket, ACCOUNTS).items())
                  if "/LOAD" not in k]  # fmt: skip
        if any("999982" in b for b in bodies):
            break
        assert time.monotonic() < deadline, bodies
        time.sleep(0.3)
    rows = [row for body in bodies for row in parse_dms_csv(body)]
    headers = [r for r in rows if r[0] == "Op"]
    assert headers[0] == ["Op", "id", "name", "balance", "updated", "active", "doc"]
    assert headers[-1] == [*headers[0], "note"]
    (after,) = [r for r in rows if r[1] == "999982"]
    assert after[-1] == "with, comma"
    (before,) = [r for r in rows if r[1] == "999981"]
    assert len(before) == 7
