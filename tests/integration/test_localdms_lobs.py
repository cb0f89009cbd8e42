"""LOBs in limited LOB mode, as DMS loads them: a value longer than LobMaxSize is cut to it, in
the full load (CSV and Parquet) and in change capture; full LOB mode keeps it whole."""

from __future__ import annotations

import io
import json
import time

import pyarrow.parquet as pq
import pytest

from tests.integration.test_localdms_cdc import wait_capturing
from tests.pipeline import (
    create_task,
    provision,
    read_objects,
    run_task,
    select_rules,
    table_statistics,
)

pytestmark = pytest.mark.integration

LIMIT = 1024  # LobMaxSize 1 (KB): 1,024 characters, or bytes for bytea
ONE_KB = json.dumps({"TargetMetadata": {"LobMaxSize": 1}})


def make_lobs(source_db) -> None:
    source_db.execute("CREATE TABLE public.lobs (id int PRIMARY KEY, body text, blob bytea)")
    source_db.execute(
        "INSERT INTO public.lobs SELECT n, repeat('é', 1024 + n), "
        "decode(repeat('ab', 1024 + n), 'hex') FROM generate_series(-1, 1) n"
    )  # 1,023 (under), 1,024 (at) and 1,025 (over) characters or bytes


def test_limited_lob_mode_cuts_values_over_lob_max_size_in_a_csv_load(dms, s3, source_db):
    make_lobs(source_db)
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "lobs")),
                      ReplicationTaskSettings=ONE_KB)  # fmt: skip
    assert run_task(dms, arn)["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"

    body = read_objects(s3, pipeline.bucket, "public/lobs/")["public/lobs/LOAD00000001.csv"]
    rows = {int(line.split(",")[0]): line.split(",") for line in body.decode().splitlines()}
    lengths = {key: (len(row[1]), len(row[2]) // 2) for key, row in rows.items()}
    assert lengths == {-1: (1023, 1023), 0: (1024, 1024), 1: (1024, 1024)}
    assert rows[1][1] == "é" * LIMIT  # cut on a character, never inside one


def test_limited_lob_mode_cuts_parquet_values_and_full_lob_mode_keeps_them(dms, s3, source_db):
    make_lobs(source_db)
    pipeline = provision(dms, s3, source_db, s3_settings={"DataFormat": "parquet"})
    arn = create_task(dms, pipeline, select_rules(("public", "lobs")),
                      ReplicationTaskSettings=ONE_KB)  # fmt: skip
    run_task(dms, arn)
    table = pq.read_table(io.BytesIO(read_objects(s3, pipeline.bucket, "public/lobs/")[
        "public/lobs/LOAD00000001.parquet"]))  # fmt: skip
    lengths = {row["id"]: (len(row["body"]), len(row["blob"])) for row in table.to_pylist()}
    assert lengths == {-1: (1023, 1023), 0: (1024, 1024), 1: (1024, 1024)}

    dms.modify_replication_task(
        ReplicationTaskArn=arn,
        ReplicationTaskSettings=json.dumps({"TargetMetadata": {"FullLobMode": True}}),
    )
    while (
        dms.describe_replication_tasks(Filters=[{"Name": "replication-task-arn", "Values": [arn]}])[
            "ReplicationTasks"
        ][0]["Status"]
        != "stopped"
    ):
        time.sleep(0.1)
    run_task(dms, arn, "reload-target")
    table = pq.read_table(io.BytesIO(read_objects(s3, pipeline.bucket, "public/lobs/")[
        "public/lobs/LOAD00000001.parquet"]))  # fmt: skip
    assert max(len(row["body"]) for row in table.to_pylist()) == 1025


def test_change_capture_cuts_lob_values_as_the_load_does(dms, s3, source_db):
    make_lobs(source_db)
    pipeline = provision(dms, s3, source_db, s3_settings={"CdcMaxBatchInterval": 1})
    arn = create_task(dms, pipeline, select_rules(("public", "lobs")),
                      migration_type="full-load-and-cdc", ReplicationTaskSettings=ONE_KB)  # fmt: skip
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    wait_capturing(dms, arn)
    source_db.execute(
        "INSERT INTO public.lobs VALUES (7, repeat('z', 5000), decode(repeat('cd', 3000), 'hex'))"
    )
    deadline = time.monotonic() + 60
    while not (
        cdc := [k for k in read_objects(s3, pipeline.bucket, "public/lobs/") if "LOAD" not in k]
    ):
        assert time.monotonic() < deadline, "the change never reached S3"
        time.sleep(0.2)
    op, identifier, body, blob = (
        read_objects(s3, pipeline.bucket, cdc[0])[cdc[0]].decode().strip().split(",")
    )
    assert (op, identifier) == ("I", "7")
    assert body == "z" * LIMIT
    assert blob == "cd" * LIMIT
    dms.stop_replication_task(ReplicationTaskArn=arn)


def policy(name: str) -> str:
    return json.dumps({"TargetMetadata": {"LobMaxSize": 1},
                       "ErrorBehavior": {"DataTruncationErrorPolicy": name}})  # fmt: skip


def test_data_truncation_error_policy_decides_what_a_cut_lob_does(dms, s3, source_db):
    make_lobs(source_db)
    source_db.execute("CREATE TABLE public.small (id int PRIMARY KEY, body text)")
    source_db.execute("INSERT INTO public.small VALUES (1, 'fits')")
    pipeline = provision(dms, s3, source_db)
    rules = select_rules(("public", "lobs"), ("public", "small"))

    ignore = create_task(dms, pipeline, rules, identifier="ignore",
                         ReplicationTaskSettings=policy("IGNORE_RECORD"))  # fmt: skip
    run_task(dms, ignore)
    stats = table_statistics(dms, ignore)
    assert stats[("public", "lobs")]["FullLoadRows"] == 2  # the row over the limit is left out
    body = read_objects(s3, pipeline.bucket, "public/lobs/")["public/lobs/LOAD00000001.csv"]
    assert sorted(int(line.split(",")[0]) for line in body.decode().splitlines()) == [-1, 0]

    suspend = create_task(dms, pipeline, rules, identifier="suspend",
                          ReplicationTaskSettings=policy("SUSPEND_TABLE"))  # fmt: skip
    task = run_task(dms, suspend)
    stats = table_statistics(dms, suspend)
    assert stats[("public", "lobs")]["TableState"] == "Table error"
    assert stats[("public", "small")]["TableState"] == "Table completed"
    assert "1 row(s) of public.lobs hold LOB values longer than LobMaxSize" in task[
        "LastFailureMessage"]  # fmt: skip
    left = read_objects(s3, pipeline.bucket, "public/lobs/")["public/lobs/LOAD00000001.csv"]
    assert left == body  # nothing of the suspended table was written (the file is the last run's)

    stop = create_task(dms, pipeline, rules, identifier="stop",
                       ReplicationTaskSettings=policy("STOP_TASK"))  # fmt: skip
    task = run_task(dms, stop)
    assert task["Status"] == "failed"
    assert "DataTruncationErrorPolicy is STOP_TASK" in task["LastFailureMessage"]


def test_fail_tasks_on_lob_truncation_fails_the_task_instead_of_cutting(dms, s3, source_db):
    make_lobs(source_db)
    pipeline = provision(dms, s3, source_db,
                         postgres_settings={"FailTasksOnLobTruncation": True})  # fmt: skip
    arn = create_task(dms, pipeline, select_rules(("public", "lobs")),
                      ReplicationTaskSettings=ONE_KB)  # fmt: skip
    task = run_task(dms, arn)
    assert task["Status"] == "failed"
    assert "FailTasksOnLobTruncation" in task["LastFailureMessage"]
