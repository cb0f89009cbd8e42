"""Parquet LOAD files (DataFormat=parquet): the DMS type map, the Parquet settings, bounded files,
read back with pyarrow, compared with the source value by value."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from tests.pipeline import create_task, provision, read_objects, run_task, select_rules

pytestmark = pytest.mark.integration

EXPECTED_TYPES = {
    "id": pa.int64(), "small": pa.int16(), "regular": pa.int32(), "real4": pa.float32(),
    "real8": pa.float64(), "price": pa.decimal128(12, 2), "loose": pa.decimal128(28, 6),
    "huge": pa.string(), "cash": pa.decimal128(38, 4), "day": pa.date32(), "clock": pa.time32("ms"),
    "stamp": pa.timestamp("us"), "stamptz": pa.timestamp("us", tz="UTC"), "blob": pa.binary(),
    "flag": pa.string(), "code": pa.string(), "label": pa.string(), "doc": pa.string(),
    "tags": pa.string(), "span": pa.string(),
}  # fmt: skip


def make_values(source_db, rows: int = 3) -> None:
    source_db.execute("CREATE SCHEMA kinds")
    source_db.execute(
        "CREATE TABLE kinds.everything (id bigint PRIMARY KEY, small smallint, regular int, "
        "real4 real, real8 double precision, price numeric(12,2), loose numeric, "
        "huge numeric(50,10), cash money, day date, clock time, stamp timestamp, "
        "stamptz timestamptz, blob bytea, flag boolean, code char(5), label varchar(20), doc jsonb, "
        "tags int[], span interval)"
    )
    source_db.execute(
        "INSERT INTO kinds.everything VALUES (1, -32768, 2147483647, 1.5, -2.25, 1234567890.12, "
        "3.14159265358979, 12345678901234567890123456789.0123456789, 12.34, '2024-02-29', "
        "'23:59:59.123456', '2024-01-01 12:00:00.654321', '2024-06-01 12:00:00+02', "
        "'\\x00ff', true, 'ab', 'quote \" and, comma', '{\"k\": [1, null]}', '{1,2,NULL}', "
        "'1 day 02:00:00')"
    )
    source_db.execute("INSERT INTO kinds.everything (id) VALUES (2)")  # every other column NULL
    source_db.execute(
        "INSERT INTO kinds.everything (id, label, blob) "
        "SELECT g, 'row ' || g, '\\x01' FROM generate_series(3, %s) g",
        (rows,),
    )


def test_parquet_types_and_values_round_trip(dms, s3, source_db):
    make_values(source_db)
    pipeline = provision(dms, s3, source_db, s3_settings={"DataFormat": "parquet"})
    arn = create_task(dms, pipeline, select_rules(("kinds", "everything")))
    task = run_task(dms, arn)
    assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED", task

    objects = read_objects(s3, pipeline.bucket)
    assert list(objects) == ["kinds/everything/LOAD00000001.parquet"]
    table = pq.read_table(io.BytesIO(objects["kinds/everything/LOAD00000001.parquet"]))
    assert {f.name: f.type for f in table.schema} == EXPECTED_TYPES
    rows = {row["id"]: row for row in table.to_pylist()}
    first = rows[1]
    assert first["small"] == -32768
    assert first["regular"] == 2147483647
    assert first["real4"] == 1.5
    assert first["real8"] == -2.25
    assert first["price"] == Decimal("1234567890.12")
    assert first["loose"] == Decimal("3.141593")  # DMS maps unconstrained numeric to NUMERIC(28,6)
    assert first["huge"] == "12345678901234567890123456789.0123456789"
    assert first["cash"] == Decimal("12.34")
    assert first["day"] == dt.date(2024, 2, 29)
    assert first["clock"] == dt.time(23, 59, 59, 123000)
    assert first["stamp"] == dt.datetime(2024, 1, 1, 12, 0, 0, 654321)
    assert first["stamptz"] == dt.datetime(2024, 6, 1, 10, 0, tzinfo=dt.UTC)
    assert first["blob"] == b"\x00\xff"
    assert first["flag"] == "true"
    assert first["code"] == "ab"
    assert first["label"] == 'quote " and, comma'
    assert json.loads(first["doc"]) == {"k": [1, None]}
    assert first["tags"] == "{1,2,NULL}"
    assert first["span"] == "1 day 02:00:00"
    assert all(value is None for key, value in rows[2].items() if key != "id")


def test_parquet_settings_row_groups_and_file_size(dms, s3, source_db):
    make_values(source_db, rows=60_000)
    settings = {
        "DataFormat": "parquet", "RowGroupLength": 7_000, "ParquetVersion": "parquet-2-0",
        "CompressionType": "gzip", "EnableStatistics": False, "ParquetTimestampInMillisecond": True,
        "MaxFileSize": 300, "IncludeOpForFullLoad": True,
    }  # fmt: skip
    pipeline = provision(dms, s3, source_db, s3_settings=settings)
    arn = create_task(dms, pipeline, select_rules(("kinds", "everything")))
    assert run_task(dms, arn)["Status"] == "stopped"

    objects = read_objects(s3, pipeline.bucket)
    names = sorted(objects)
    assert len(names) > 1
    assert names[0].endswith("LOAD00000001.parquet")
    total = 0
    for name in names:
        parquet = pq.ParquetFile(io.BytesIO(objects[name]))
        metadata = parquet.metadata
        assert metadata.format_version == "2.6"
        assert all(metadata.row_group(i).num_rows <= 7_000 for i in range(metadata.num_row_groups))
        column = metadata.row_group(0).column(0)
        assert column.compression == "GZIP"
        assert not column.is_stats_set
        assert parquet.schema_arrow.field("stamp").type == pa.timestamp("ms")
        assert parquet.schema_arrow.names[0] == "Op"
        total += metadata.num_rows
    assert total == 60_000
    ids = pa.concat_arrays(
        [
            pq.read_table(io.BytesIO(objects[n]), columns=["id"])["id"].combine_chunks()
            for n in names
        ]
    )
    assert sorted(ids.to_pylist()) == list(range(1, 60_001))


def test_northwind_to_parquet_matches_the_source(dms, s3, source_db, northwind_sql):
    source_db.execute(northwind_sql)
    pipeline = provision(dms, s3, source_db, s3_settings={"DataFormat": "parquet"})
    arn = create_task(dms, pipeline, select_rules(("public", "%")))
    task = run_task(dms, arn)
    assert task["ReplicationTaskStats"]["TablesLoaded"] == 14, task.get("LastFailureMessage")

    objects = read_objects(s3, pipeline.bucket)
    with psycopg.connect(source_db.dsn, autocommit=True) as conn:
        for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            cursor = conn.execute(
                sql.SQL("SELECT * FROM {}").format(sql.Identifier("public", table))
            )
            names = [column.name for column in cursor.description or []]
            expected = sorted((tuple(normal(v) for v in row) for row in cursor), key=repr)
            keys = [k for k in objects if k.startswith(f"public/{table}/")]
            if not expected:
                assert not keys, table
                continue
            loaded = pa.concat_tables(pq.read_table(io.BytesIO(objects[k])) for k in sorted(keys))
            assert loaded.schema.names == names, table
            got = sorted(
                (tuple(normal(v) for v in row.values()) for row in loaded.to_pylist()), key=repr
            )
            assert got == expected, table


def normal(value: object) -> object:
    """Compare across the two readers: real as float32, char(n) without its padding."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, str):
        return value.rstrip(" ")
    if isinstance(value, memoryview):
        return bytes(value)
    return value
