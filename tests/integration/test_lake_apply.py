"""The lake's apply engine against localdms's real LOAD and CDC files: the Iceberg table, read
back as a consumer reads it (a pyiceberg scan into Arrow), equals the source table."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog

from dms_spec.s3_target import S3Target
from lake.apply import (
    APPLIED_OBJECTS,
    COMMIT,
    LAST_CDC_OBJECT,
    LakeTable,
    SchemaChangeError,
    TableSpec,
)
from lake.catalogs import file_io, open_catalog
from lake.dms_files import list_table_objects
from tests.integration.test_localdms_cdc import (
    ACCOUNTS,
    capturing_task,
    change_accounts,
    make_accounts,
    replay_parquet,
    source_state,
    wait_for_sentinel,
)
from tests.pipeline import create_task, provision, run_task, select_rules, table_statistics

pytestmark = pytest.mark.integration


def catalog_for(s3_server: Any, tmp_path: Any, bucket: str) -> Catalog:
    session = boto3.Session(**{k: v for k, v in s3_server.client_arguments().items()
                               if k != "endpoint_url"})  # fmt: skip
    return open_catalog("sql", "test", f"s3://{bucket}/iceberg", session, s3_server.url,
                        uri=f"sqlite:///{tmp_path}/catalog.db")  # fmt: skip


def lake_rows(catalog: Catalog) -> dict[int, tuple[Any, ...]]:
    """The Iceberg table as a consumer reads it, in the source's Python values."""
    rows = catalog.load_table(("app", "accounts")).scan().to_arrow().to_pylist()
    return {
        row["id"]: (
            row["name"],
            row["balance"],
            row["updated"],
            None if row["active"] is None else row["active"] in (True, "true"),
            None if row["doc"] is None else json.loads(row["doc"]),
        )
        for row in rows
    }


@pytest.mark.parametrize("data_format", ["parquet", "csv"])
def test_the_table_equals_the_source_after_load_and_changes(
    dms, s3, s3_server, source_db, tmp_path, data_format
):
    make_accounts(source_db, 2_000)
    settings = {"DataFormat": data_format, "AddColumnName": True, "BucketFolder": "raw"}
    pipeline, arn = capturing_task(dms, s3, source_db, s3_settings=settings)
    change_accounts(source_db, 100_001, 25)
    source_db.execute("INSERT INTO app.accounts VALUES (999990, 's', 0, now(), true, '{}')")

    target = S3Target.from_settings({"BucketName": pipeline.bucket, **settings})
    catalog = catalog_for(s3_server, tmp_path, pipeline.bucket)
    spec = TableSpec("app", "accounts", ("app", "accounts"), key=("id",), column_types={
        "id": "int", "balance": "decimal(12,2)", "updated": "timestamptz", "active": "boolean",
    })  # fmt: skip
    lake = LakeTable(catalog, spec, target, file_io(catalog), pipeline.bucket)
    results = []
    deadline = time.monotonic() + 60
    while not results or 999_990 not in lake_rows(catalog):
        assert time.monotonic() < deadline, "the last change never reached the lake"
        objects = list_table_objects(s3, pipeline.bucket, f"raw/{ACCOUNTS}")
        results.append(lake.sync(objects))
        time.sleep(0.5)

    assert results[0].rebuilt
    assert results[0].rows_loaded == 2_000
    assert not any(r.rebuilt for r in results[1:])
    assert sum(r.cdc_objects for r in results) == len([o for o in objects if o.kind == "cdc"])
    counts = [sum(getattr(r, op) for r in results) for op in ("inserts", "updates", "deletes")]
    dms_counts = table_statistics(dms, arn)[("app", "accounts")]
    assert counts == [dms_counts["Inserts"], dms_counts["Updates"], dms_counts["Deletes"]]
    assert counts[0] == 26
    assert lake_rows(catalog) == source_state(source_db)
    snapshot = catalog.load_table(("app", "accounts")).current_snapshot()
    assert snapshot is not None
    assert snapshot.summary is not None
    assert snapshot.summary[APPLIED_OBJECTS].splitlines()[-1] == objects[-1].key

    again = lake.sync(list_table_objects(s3, pipeline.bucket, f"raw/{ACCOUNTS}"))
    assert again.applied == []
    assert again.commits == 0
    assert catalog.load_table(("app", "accounts")).current_snapshot() == snapshot


def accounts_lake(s3_server: Any, tmp_path: Any, bucket: str, settings: dict[str, Any],
                  batch_files: int = 100) -> tuple[Catalog, LakeTable]:  # fmt: skip
    target = S3Target.from_settings({"BucketName": bucket, **settings})
    catalog = catalog_for(s3_server, tmp_path, bucket)
    spec = TableSpec("app", "accounts", ("app", "accounts"), key=("id",))
    return catalog, LakeTable(catalog, spec, target, file_io(catalog), bucket, batch_files)


def test_a_reload_rebuilds_the_table_in_one_commit_while_readers_see_old_or_new(
    dms, s3, s3_server, source_db, tmp_path
):
    make_accounts(source_db, 6_000)
    # Several LOAD files per load: files roll over at a row group past MaxFileSize (KB).
    settings = {"DataFormat": "parquet", "MaxFileSize": 20, "RowGroupLength": 500}
    pipeline = provision(dms, s3, source_db, s3_settings=settings)
    arn = create_task(dms, pipeline, select_rules(("app", "accounts")))
    run_task(dms, arn)
    catalog, lake = accounts_lake(s3_server, tmp_path, pipeline.bucket, settings)
    first = lake.sync(list_table_objects(s3, pipeline.bucket, ACCOUNTS))
    assert first.load_objects > 2
    assert first.rows == 6_000

    source_db.execute("DELETE FROM app.accounts WHERE id > 4000")
    run_task(dms, arn, "reload-target")
    seen: list[int] = []
    done = threading.Event()

    def read_while_rebuilding() -> None:
        while not done.is_set():
            seen.append(catalog.load_table(("app", "accounts")).scan().to_arrow().num_rows)

    reader = threading.Thread(target=read_while_rebuilding)
    reader.start()
    try:
        while not seen:  # reading before the rebuild starts
            time.sleep(0.05)
        second = lake.sync(list_table_objects(s3, pipeline.bucket, ACCOUNTS))
        deadline = time.monotonic() + 30
        while 4_000 not in seen and time.monotonic() < deadline:  # and once it is committed
            time.sleep(0.05)
    finally:
        done.set()
        reader.join()

    assert second.rebuilt
    assert second.commits == 1
    assert (second.rows, second.rows_loaded) == (4_000, 4_000)
    assert set(seen) == {6_000, 4_000}, "a reader saw a table that was neither old nor new"
    assert lake_rows(catalog) == source_state(source_db)


def sync_in_child(bucket: str, tmp_path: str, client_arguments: dict[str, str]) -> None:
    """The child of the kill test: sync one CDC object per commit, saying so after each."""
    s3 = boto3.client("s3", **client_arguments)
    session = boto3.Session(**{k: v for k, v in client_arguments.items() if k != "endpoint_url"})
    catalog = open_catalog("sql", "test", f"s3://{bucket}/iceberg", session,
                           client_arguments["endpoint_url"], uri=f"sqlite:///{tmp_path}/catalog.db")  # fmt: skip
    target = S3Target.from_settings({"BucketName": bucket, **KILL_SETTINGS})
    spec = TableSpec("app", "accounts", ("app", "accounts"), key=("id",))
    lake = LakeTable(catalog, spec, target, file_io(catalog), bucket, batch_files=1)
    lake.sync(list_table_objects(s3, bucket, ACCOUNTS),
              lambda r: print(f"COMMIT {r.commits}", flush=True))  # fmt: skip


KILL_SETTINGS = {"DataFormat": "parquet"}


def test_a_sync_killed_mid_way_resumes_and_applies_each_file_once(
    dms, s3, s3_server, source_db, tmp_path
):
    make_accounts(source_db, 1_000)
    pipeline, _ = capturing_task(dms, s3, source_db, s3_settings=KILL_SETTINGS)
    for burst in range(6):  # a CDC file a second: one per burst
        change_accounts(source_db, 200_000 + burst * 10, 10)
        time.sleep(1.2)
    source_db.execute("INSERT INTO app.accounts VALUES (999991, 's', 0, now(), true, '{}')")
    wait_for_sentinel(s3, pipeline.bucket, 999_991, replayer=replay_parquet)
    objects = list_table_objects(s3, pipeline.bucket, ACCOUNTS)
    cdc = [o.key for o in objects if o.kind == "cdc"]

    child = subprocess.Popen(
        [sys.executable, "-c", "from tests.integration.test_lake_apply import sync_in_child; "
         f"sync_in_child({pipeline.bucket!r}, {str(tmp_path)!r}, {s3_server.client_arguments()!r})"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "COMMIT 3":  # the LOAD and two CDC files are in; it goes on
            child.kill()
            break
    child.wait()
    catalog, lake = accounts_lake(s3_server, tmp_path, pipeline.bucket, KILL_SETTINGS)
    assert catalog.load_table(("app", "accounts")).properties[LAST_CDC_OBJECT] in cdc[1:-1]

    resumed = lake.sync(objects)
    assert not resumed.rebuilt
    assert resumed.applied == cdc[cdc.index(resumed.applied[0]) :]
    assert lake_rows(catalog) == source_state(source_db)
    commits_of: dict[str, set[str]] = {}
    for snapshot in catalog.load_table(("app", "accounts")).snapshots():
        summary = snapshot.summary
        assert summary is not None
        for key in summary.get(APPLIED_OBJECTS, "").splitlines():
            commits_of.setdefault(key, set()).add(summary[COMMIT])
    assert set(commits_of) == {o.key for o in objects}
    assert all(len(ids) == 1 for ids in commits_of.values()), "an object was applied twice"


def test_a_column_added_in_the_source_is_added_to_the_table(dms, s3, s3_server, source_db,
                                                            tmp_path):  # fmt: skip
    make_accounts(source_db, 500)
    settings = {"DataFormat": "parquet"}
    pipeline, _ = capturing_task(dms, s3, source_db, s3_settings=settings)
    catalog, lake = accounts_lake(s3_server, tmp_path, pipeline.bucket, settings)
    assert lake.sync(list_table_objects(s3, pipeline.bucket, ACCOUNTS)).rows == 500

    source_db.execute("ALTER TABLE app.accounts ADD COLUMN note text")
    source_db.execute("INSERT INTO app.accounts VALUES (999992, 's', 0, now(), true, '{}', 'hi')")
    source_db.execute("UPDATE app.accounts SET note = 'later' WHERE id = 7")
    deadline = time.monotonic() + 60
    added: list[str] = []
    while True:
        result = lake.sync(list_table_objects(s3, pipeline.bucket, ACCOUNTS))
        added += result.columns_added
        rows = {
            r["id"]: r
            for r in catalog.load_table(("app", "accounts")).scan().to_arrow().to_pylist()
        }
        if rows.get(7, {}).get("note") == "later":
            break
        assert time.monotonic() < deadline, "the update never reached the lake"
        time.sleep(0.5)

    assert added == ["note"]
    assert rows[999992]["note"] == "hi"
    assert rows[8]["note"] is None  # rows from before the column: NULL, as in the source
    assert len(rows) == 501


KINDS = {"id": "int", "n": "decimal(38,10)", "ts": "timestamptz", "j": "string", "b": "binary",
         "t": "string", "d": "date", "flag": "boolean"}  # fmt: skip
"""app.kinds's columns as Iceberg types, for CSV (Parquet files carry DMS's own)."""


def make_kinds(source: Any) -> None:
    source.execute("CREATE SCHEMA IF NOT EXISTS app")
    source.execute(
        "CREATE TABLE app.kinds (id int PRIMARY KEY, n numeric(38,10), ts timestamptz, j jsonb, "
        "b bytea, t text, d date, flag boolean)"
    )
    source.execute(
        "INSERT INTO app.kinds SELECT g, g * 12345678901234.0123456789, "
        "timestamptz '2024-02-29 23:59:59.123456+00' + g * interval '1 second', "
        "jsonb_build_object('k', g, 's', 'a \"q\"'), decode(lpad(to_hex(g), 8, '0'), 'hex'), "
        "CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'line one' || chr(10) || 'two, \"quoted\"' "
        "ELSE 'plain' END, date '2000-01-01' + g, g % 3 = 0 FROM generate_series(1, 300) g"
    )


def kinds_rows(source: Any) -> dict[int, tuple[Any, ...]]:
    rows = source.fetchall("SELECT id, n, ts, j::text, b, t, d, flag FROM app.kinds")
    return {r[0]: (r[1], r[2], json.loads(r[3]) if r[3] else None,
                   bytes(r[4]) if r[4] is not None else None, *r[5:]) for r in rows}  # fmt: skip


@pytest.mark.parametrize("data_format", ["parquet", "csv"])
def test_every_kind_of_value_comes_through_exactly(dms, s3, s3_server, source_db, tmp_path,
                                                   data_format):  # fmt: skip
    """NULLs, empty strings, quotes, newlines, numeric(38,10), timestamptz, jsonb, bytea, date,
    boolean: after the load and after inserts, updates and deletes of them."""
    make_kinds(source_db)
    settings = {"DataFormat": data_format, "AddColumnName": True}
    pipeline, _ = capturing_task(dms, s3, source_db, tables=("app", "kinds"),
                                 s3_settings=settings)  # fmt: skip
    source_db.execute("UPDATE app.kinds SET t = 'upd, \"x\"' || chr(10), n = -0.0000000001, "
                      "b = NULL, j = NULL WHERE id % 10 = 0")  # fmt: skip
    source_db.execute("DELETE FROM app.kinds WHERE id % 7 = 0")
    source_db.execute("INSERT INTO app.kinds VALUES (1000, 99999999999999999999999999.9999999999, "
                      "'1970-01-01 00:00:00+00', '[]', '\\x00ff', NULL, NULL, NULL)")  # fmt: skip
    target = S3Target.from_settings({"BucketName": pipeline.bucket, **settings})
    catalog = catalog_for(s3_server, tmp_path, pipeline.bucket)
    spec = TableSpec("app", "kinds", ("app", "kinds"), key=("id",), column_types=KINDS)
    lake = LakeTable(catalog, spec, target, file_io(catalog), pipeline.bucket)
    deadline = time.monotonic() + 60
    while True:
        lake.sync(list_table_objects(s3, pipeline.bucket, "app/kinds/"))
        rows = catalog.load_table(("app", "kinds")).scan().to_arrow().to_pylist()
        if any(r["id"] == 1000 for r in rows):
            break
        assert time.monotonic() < deadline, "the last insert never reached the lake"
        time.sleep(0.5)

    def value(row: dict[str, Any]) -> tuple[Any, ...]:
        flag = row["flag"]
        return (row["n"], row["ts"], json.loads(row["j"]) if row["j"] else None, row["b"],
                row["t"], row["d"], flag if flag is None or isinstance(flag, bool) else flag == "true")  # fmt: skip

    assert {r["id"]: value(r) for r in rows} == kinds_rows(source_db)


def put_parquet(s3: Any, bucket: str, key: str, table: pa.Table) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    s3.put_object(Bucket=bucket, Key=key, Body=sink.getvalue())


@pytest.mark.parametrize(
    ("cdc_file", "message"),
    [
        (pa.table({"Op": ["U"], "id": [1]}), r"no longer have column\(s\) v"),
        (pa.table({"Op": ["U"], "id": [1], "v": [2.5]}), r"column type changed: v \(string"),
    ],
    ids=["dropped", "retyped"],
)
def test_a_dropped_or_retyped_column_is_refused_and_nothing_is_applied(
    s3, s3_server, tmp_path, cdc_file, message
):
    """DMS's files as S3 holds them (here written directly): a CDC file without a column the
    table has, or with another type, is refused with what to do, and the table is unchanged."""
    s3.create_bucket(Bucket="lake")
    put_parquet(s3, "lake", "app/t/LOAD00000001.parquet",
                pa.table({"id": [1, 2], "v": ["a", "b"]}))  # fmt: skip
    put_parquet(s3, "lake", "app/t/20260101-000000000.parquet", cdc_file)
    catalog = catalog_for(s3_server, tmp_path, "lake")
    target = S3Target.from_settings({"BucketName": "lake", "DataFormat": "parquet"})
    lake = LakeTable(catalog, TableSpec("app", "t", ("app", "t"), key=("id",)), target,
                     file_io(catalog), "lake")  # fmt: skip
    objects = list_table_objects(s3, "lake", "app/t/")
    lake.sync([o for o in objects if o.kind == "load"])
    before = catalog.load_table(("app", "t")).current_snapshot()

    with pytest.raises(SchemaChangeError, match=message):
        lake.sync(objects)
    table = catalog.load_table(("app", "t"))
    assert table.current_snapshot() == before
    assert table.properties[LAST_CDC_OBJECT] == ""


def test_a_cdc_only_task_builds_the_table_from_its_first_cdc_file(s3, s3_server, tmp_path):
    """A ``cdc`` task writes no LOAD files: the table takes its columns from the first CDC file
    (without Op) and holds what the changes leave; with no file at all, nothing is created."""
    s3.create_bucket(Bucket="lake")
    catalog = catalog_for(s3_server, tmp_path, "lake")
    target = S3Target.from_settings({"BucketName": "lake", "DataFormat": "parquet"})
    lake = LakeTable(catalog, TableSpec("app", "t", ("app", "t"), key=("id",)), target,
                     file_io(catalog), "lake")  # fmt: skip
    assert lake.sync([]).applied == []
    assert not catalog.table_exists(("app", "t"))

    put_parquet(s3, "lake", "app/t/20260101-000000000.parquet",
                pa.table({"Op": ["I", "I", "U"], "id": [1, 2, 1], "v": ["a", "b", "c"]}))  # fmt: skip
    put_parquet(s3, "lake", "app/t/20260101-000001000.parquet",
                pa.table({"Op": ["D", "I"], "id": [2, 3], "v": [None, "d"]}))  # fmt: skip
    result = lake.sync(list_table_objects(s3, "lake", "app/t/"))

    assert result.cdc_objects == 2
    assert (result.inserts, result.updates, result.deletes) == (3, 1, 1)
    table = catalog.load_table(("app", "t"))
    assert table.schema().column_names == ["id", "v"]
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "v": "c"}, {"id": 3, "v": "d"},
    ]  # fmt: skip
