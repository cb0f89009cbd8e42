"""LOBs in limited LOB mode, as DMS loads them: a value longer than LobMaxSize is cut to it, in
the full load (CSV and Parquet) and in change capture, measured as DMS measures it (a BLOB's
bytes, a CLOB's UTF-8 bytes, two bytes a character of an NCLOB); full LOB mode keeps it whole,
SupportLobs false leaves LOB columns out, and DataTruncationErrorPolicy decides what a cut value
does, in the full load and in change capture."""

from __future__ import annotations

import io
import json
import logging
import time

import pyarrow.parquet as pq
import pytest

from tests.integration.test_localdms_cdc import wait_capturing
from tests.pipeline import (
    create_task,
    describe_task,
    provision,
    read_objects,
    run_task,
    select_rules,
    table_statistics,
    wait_for_status,
)

pytestmark = pytest.mark.integration

LIMIT = 1024  # LobMaxSize 1 (KB): 1,024 bytes; 512 characters of text (an NCLOB)
ONE_KB = json.dumps({"TargetMetadata": {"LobMaxSize": 1}})
MULTIBYTE_XML = "'<a>' || repeat('é', 600) || '</a>'"  # 1,207 UTF-8 bytes: cut inside an é


def make_lobs(source_db) -> None:
    source_db.execute(
        "CREATE TABLE public.lobs (id int PRIMARY KEY, body text, blob bytea, doc xml)"
    )
    source_db.execute(
        "INSERT INTO public.lobs SELECT n, repeat('é', 512 + n), "
        "decode(repeat('ab', 1024 + n), 'hex'), ('<a>' || repeat('x', 1017 + n) || '</a>')::xml "
        "FROM generate_series(-1, 1) n"
    )  # under, at and over the limit: 511/512/513 characters, 1,023/1,024/1,025 bytes
    source_db.execute(
        f"INSERT INTO public.lobs VALUES (2, 'short', '\\x00', ({MULTIBYTE_XML})::xml)"
    )


EXPECTED_CUT = {  # id: (text characters, bytea bytes, xml UTF-8 bytes)
    -1: (511, 1023, 1023), 0: (512, 1024, 1024), 1: (512, 1024, 1024), 2: (5, 1, 1023),
}  # fmt: skip


CUTS_LOGGED = (
    "public.lobs: LOB values longer than LobMaxSize (1,024 bytes) were truncated: "
    "1 of body, 1 of blob, 2 of doc"
)


def localdms_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("localdms")]


def test_limited_lob_mode_cuts_values_over_lob_max_size_in_a_csv_load(dms, s3, source_db, caplog):
    make_lobs(source_db)
    source_db.execute(
        "CREATE TABLE public.short_texts AS SELECT g AS id, md5(g::text) AS t, CASE WHEN g = 1 "
        "THEN to_jsonb(repeat('j', 600)) ELSE '{}'::jsonb END AS j FROM generate_series(1, 100) g"
    )  # short text values; one jsonb value of 602 characters (1,204 bytes as an NCLOB)
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "lobs"), ("public", "short_texts")),
                      ReplicationTaskSettings=ONE_KB)  # fmt: skip
    caplog.set_level(logging.INFO, logger="localdms")
    assert run_task(dms, arn)["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    # Said once at the start, then how many values of which columns were cut, table by table
    # (text, bytea and xml counted as the load cuts them, jsonb by a count after it).
    lines = localdms_lines(caplog)
    assert [line for line in lines if "limited LOB mode" in line] == [
        f"task {describe_task(dms, arn)['ReplicationTaskIdentifier']}: limited LOB mode: LOB "
        "values over 1,024 bytes (TargetMetadata.LobMaxSize) are truncated; "
        "DataTruncationErrorPolicy LOG_ERROR"
    ]
    assert sorted(line for line in lines if "truncated:" in line) == [
        CUTS_LOGGED,
        "public.short_texts: LOB values longer than LobMaxSize (1,024 bytes) were truncated: "
        "1 of j",
    ]

    body = read_objects(s3, pipeline.bucket, "public/lobs/")["public/lobs/LOAD00000001.csv"]
    rows = {int(line.split(",")[0]): line.split(",") for line in body.decode().splitlines()}
    lengths = {
        key: (len(row[1]), len(row[2]) // 2, len(row[3].encode())) for key, row in rows.items()
    }
    assert lengths == EXPECTED_CUT
    assert rows[1][1] == "é" * 512  # an NCLOB counts two bytes a character
    assert rows[2][3] == "<a>" + "é" * 510  # a CLOB is cut before the é that crosses the limit


def test_parquet_values_are_cut_in_every_lob_mode_an_s3_target_has(dms, s3, source_db, caplog):
    make_lobs(source_db)
    caplog.set_level(logging.INFO, logger="localdms")
    pipeline = provision(dms, s3, source_db, s3_settings={"DataFormat": "parquet"})
    arn = create_task(dms, pipeline, select_rules(("public", "lobs")),
                      ReplicationTaskSettings=ONE_KB)  # fmt: skip

    def load(settings: dict | None = None) -> list[dict]:
        if settings is not None:
            dms.modify_replication_task(ReplicationTaskArn=arn,
                                        ReplicationTaskSettings=json.dumps(settings))  # fmt: skip
            while describe_task(dms, arn)["Status"] != "stopped":
                time.sleep(0.1)
        run_task(dms, arn, "reload-target" if settings is not None else "start-replication")
        return pq.read_table(io.BytesIO(read_objects(s3, pipeline.bucket, "public/lobs/")[
            "public/lobs/LOAD00000001.parquet"])).to_pylist()  # fmt: skip

    lengths = {
        row["id"]: (len(row["body"]), len(row["blob"]), len(row["doc"].encode())) for row in load()
    }
    assert lengths == EXPECTED_CUT
    assert [line for line in localdms_lines(caplog) if "truncated:" in line] == [CUTS_LOGGED]
    # "Full LOB mode is not supported" on an S3 target: still cut at LobMaxSize (1 KB).
    assert max(len(row["body"]) for row in load({"TargetMetadata": {"FullLobMode": True}})) == 512
    # A LobMaxSize that fits the longest value keeps every value whole.
    assert max(len(row["body"]) for row in load({"TargetMetadata": {"LobMaxSize": 2}})) == 513


def test_change_capture_cuts_lob_values_as_the_load_does(dms, s3, source_db):
    make_lobs(source_db)
    pipeline = provision(dms, s3, source_db, s3_settings={"CdcMaxBatchInterval": 1})
    arn = create_task(dms, pipeline, select_rules(("public", "lobs")),
                      migration_type="full-load-and-cdc", ReplicationTaskSettings=ONE_KB)  # fmt: skip
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    wait_capturing(dms, arn)
    source_db.execute(
        "INSERT INTO public.lobs VALUES (7, repeat('z', 5000), decode(repeat('cd', 3000), 'hex'), "
        f"({MULTIBYTE_XML})::xml)"
    )
    deadline = time.monotonic() + 60
    while not (
        cdc := [k for k in read_objects(s3, pipeline.bucket, "public/lobs/") if "LOAD" not in k]
    ):
        assert time.monotonic() < deadline, "the change never reached S3"
        time.sleep(0.2)
    op, identifier, body, blob, doc = (
        read_objects(s3, pipeline.bucket, cdc[0])[cdc[0]].decode().strip().split(",")
    )
    assert (op, identifier) == ("I", "7")
    assert body == "z" * 512
    assert blob == "cd" * LIMIT
    assert doc == "<a>" + "é" * 510
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
    assert "2 row(s) of public.lobs hold LOB values longer than LobMaxSize" in task[
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


def cdc_objects(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    return {k: v for k, v in read_objects(s3, bucket, prefix).items() if "/LOAD" not in k}


def wait_cdc_rows(s3, bucket: str, prefix: str, timeout: float = 60) -> list[list[str]]:
    """The rows of the table's CDC files, once there are any."""
    deadline = time.monotonic() + timeout
    while not (files := cdc_objects(s3, bucket, prefix)):
        assert time.monotonic() < deadline, f"no CDC file under {prefix}"
        time.sleep(0.2)
    return [line.split(",") for body in files.values() for line in body.decode().splitlines()]


def capture(dms, s3, source_db, settings: str, **provision_args):
    """A full-load-and-cdc task on lobs (without its values over the limit) and small, loaded
    in full and capturing (CDC files every second)."""
    make_lobs(source_db)
    source_db.execute("DELETE FROM public.lobs WHERE id > 0")
    source_db.execute("CREATE TABLE public.small (id int PRIMARY KEY, body text)")
    pipeline = provision(dms, s3, source_db, s3_settings={"CdcMaxBatchInterval": 1},
                         **provision_args)  # fmt: skip
    arn = create_task(dms, pipeline, select_rules(("public", "lobs"), ("public", "small")),
                      migration_type="full-load-and-cdc", ReplicationTaskSettings=settings)  # fmt: skip
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    wait_capturing(dms, arn)
    states = {t["TableState"] for t in table_statistics(dms, arn).values()}
    assert states == {"Table completed"}
    return pipeline, arn


OVER = "INSERT INTO public.lobs (id, body) VALUES ({}, repeat('z', 600))"  # 1,200 bytes
FITS = "INSERT INTO public.lobs (id, body) VALUES ({}, 'fits')"


def test_support_lobs_false_leaves_lob_columns_out_of_load_and_cdc_files(dms, s3, source_db):
    make_lobs(source_db)
    pipeline = provision(dms, s3, source_db,
                         s3_settings={"CdcMaxBatchInterval": 1, "AddColumnName": True})  # fmt: skip
    arn = create_task(
        dms, pipeline, select_rules(("public", "lobs")), migration_type="full-load-and-cdc",
        ReplicationTaskSettings=json.dumps({"TargetMetadata": {"SupportLobs": False}}),
    )  # fmt: skip
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    wait_capturing(dms, arn)
    load = read_objects(s3, pipeline.bucket, "public/lobs/")["public/lobs/LOAD00000001.csv"]
    assert load.decode().splitlines() == ["id", "-1", "0", "1", "2"]

    source_db.execute(OVER.format(7))
    assert wait_cdc_rows(s3, pipeline.bucket, "public/lobs/") == [["Op", "id"], ["I", "7"]]
    assert table_statistics(dms, arn)[("public", "lobs")]["TableState"] == "Table completed"
    dms.stop_replication_task(ReplicationTaskArn=arn)


def test_ignore_record_leaves_a_captured_change_with_a_long_lob_out(dms, s3, source_db):
    pipeline, arn = capture(dms, s3, source_db, policy("IGNORE_RECORD"))
    source_db.execute(OVER.format(8))
    source_db.execute(FITS.format(9))
    rows = wait_cdc_rows(s3, pipeline.bucket, "public/lobs/")
    assert [row[:2] for row in rows] == [["I", "9"]]
    dms.stop_replication_task(ReplicationTaskArn=arn)


def test_suspend_table_stops_capturing_that_table_and_the_others_go_on(dms, s3, source_db):
    pipeline, arn = capture(dms, s3, source_db, policy("SUSPEND_TABLE"))
    source_db.execute(OVER.format(8))
    source_db.execute(FITS.format(9))
    source_db.execute("INSERT INTO public.small VALUES (2, 'after')")
    assert wait_cdc_rows(s3, pipeline.bucket, "public/small/") == [["I", "2", "after"]]
    assert cdc_objects(s3, pipeline.bucket, "public/lobs/") == {}  # 9 came after the suspension
    stats = table_statistics(dms, arn)
    assert stats[("public", "lobs")]["TableState"] == "Table error"
    assert stats[("public", "small")]["TableState"] == "Table completed"
    assert describe_task(dms, arn)["Status"] == "running"
    dms.stop_replication_task(ReplicationTaskArn=arn)


def test_stop_task_fails_the_task_on_a_captured_long_lob_and_keeps_the_change(dms, s3, source_db):
    pipeline, arn = capture(dms, s3, source_db, ONE_KB,
                            postgres_settings={"FailTasksOnLobTruncation": True})  # fmt: skip
    before = describe_task(dms, arn).get("RecoveryCheckpoint")
    source_db.execute(OVER.format(8))
    task = wait_for_status(dms, arn, {"failed"}, timeout=60)
    assert "DataTruncationErrorPolicy is STOP_TASK" in task["LastFailureMessage"]
    assert "FailTasksOnLobTruncation" in task["LastFailureMessage"]
    assert cdc_objects(s3, pipeline.bucket, "public/lobs/") == {}
    # Nothing past the change was confirmed: a resume (after raising LobMaxSize) reads it again.
    assert describe_task(dms, arn).get("RecoveryCheckpoint") == before
