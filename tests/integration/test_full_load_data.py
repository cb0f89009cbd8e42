"""Full loads read back from S3: every row lands exactly once, in DMS's layout and format."""

from __future__ import annotations

import gzip
import json

import psycopg
import pytest
from psycopg import sql

from sandbox.ports import free_port
from tests.dms_csv import parse_dms_csv
from tests.pipeline import (
    create_task,
    provision,
    read_objects,
    run_task,
    select_rules,
    table_statistics,
)

pytestmark = pytest.mark.integration


def rows_of(objects: dict[str, bytes], prefix: str, **csv_options: str) -> list[list[str | None]]:
    rows: list[list[str | None]] = []
    for key in sorted(k for k in objects if k.startswith(prefix)):
        data = objects[key]
        text = (gzip.decompress(data) if key.endswith(".gz") else data).decode()
        rows.extend(parse_dms_csv(text, **csv_options))
    return rows


def expected_rows(source_db, schema: str, table: str) -> list[list[str | None]]:
    """The table as DMS text, computed independently of localdms's SQL rendering."""
    with psycopg.connect(source_db.dsn, autocommit=True) as conn:
        conn.execute("SET extra_float_digits = 1")
        columns = conn.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (sql.Identifier(schema, table).as_string(conn),),
        ).fetchall()
        select = sql.SQL(", ").join(
            sql.Identifier(name)
            if typname == "bytea"
            else sql.SQL("{}::text").format(sql.Identifier(name))
            for name, typname in columns
        )
        fetched = conn.execute(
            sql.SQL("SELECT {} FROM {}").format(select, sql.Identifier(schema, table))
        ).fetchall()
    return [
        [value.hex() if isinstance(value, bytes) else value for value in row] for row in fetched
    ]


def test_northwind_every_table_lands_exactly(dms, s3, source_db, northwind_sql):
    source_db.execute(northwind_sql)
    tables = [
        row[0]
        for row in source_db.fetchall("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    assert len(tables) == 14
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "%")))

    task = run_task(dms, arn)

    assert task["Status"] == "stopped", task.get("LastFailureMessage")
    assert task["ReplicationTaskStats"]["TablesLoaded"] == 14
    objects = read_objects(s3, pipeline.bucket)
    stats = table_statistics(dms, arn)
    for table in tables:
        expected = expected_rows(source_db, "public", table)
        loaded = rows_of(objects, f"public/{table}/")
        assert sorted(loaded, key=repr) == sorted(expected, key=repr), table
        assert stats[("public", table)]["FullLoadRows"] == len(expected)
        if expected:
            assert f"public/{table}/LOAD00000001.csv" in objects
        else:
            assert not any(k.startswith(f"public/{table}/") for k in objects), (
                "empty table wrote files"
            )


HARD_VALUES = """
CREATE TABLE public.hard (
    id int PRIMARY KEY, t text, n numeric(38,10), b bigint, ts timestamptz, tsn timestamp,
    d date, by bytea, j jsonb, arr int[], tarr text[], bo boolean, c char(5), m money,
    f double precision, u uuid, iv interval, pt point
);
INSERT INTO public.hard VALUES
 (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, '', 1234567890123456789012345678.1234567890, 9223372036854775807,
     '2024-02-29 23:59:59.123456+05:30', '1999-12-31 23:59:59', '2024-02-29', '\\xdeadbeef00',
     '{"a": [1, "x,y"], "q": "\\""}', '{1,2,NULL}', '{"a,b","c"}', true, 'ab', 12.34,
     0.1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04', '(1,2)'),
 (3, 'a,b', -0.0000000001, -9223372036854775808, '1970-01-01 00:00:00+00', '2000-01-01 00:00:00.5',
     '0001-01-01', '\\x', '[]', '{}', '{}', false, 'abcde', -1, -1.5e300, NULL, '-3 mons', NULL),
 (4, 'say "hi"', 0, 0, NULL, NULL, NULL, NULL, '"text"', NULL, NULL, NULL, ' ', NULL, NULL, NULL, NULL, NULL),
 (5, E'line1\\nline2\\r\\nline3', NULL, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (6, 'Zürich 東京 🚀 ''quoted''', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (7, E'back\\\\slash \\t tab', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (8, '  padded  ', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (9, 'NULL', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""


def test_hard_values_render_as_documented(dms, s3, source_db):
    source_db.execute(HARD_VALUES)
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "hard")))
    assert run_task(dms, arn)["Status"] == "stopped"

    rows = {row[0]: row for row in rows_of(read_objects(s3, pipeline.bucket), "public/hard/")}

    assert sorted(rows) == [str(i) for i in range(1, 10)]
    assert rows["1"] == ["1"] + [None] * 17
    assert rows["2"] == [
        "2", "", "1234567890123456789012345678.1234567890", "9223372036854775807",
        "2024-02-29 18:29:59.123456", "1999-12-31 23:59:59", "2024-02-29", "deadbeef00",
        '{"a": [1, "x,y"], "q": "\\""}', "{1,2,NULL}", '{"a,b",c}', "true", "ab", "12.34",
        "0.1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "1 day 02:03:04", "(1,2)",
    ]  # fmt: skip
    assert rows["3"][1:8] == [
        "a,b", "-0.0000000001", "-9223372036854775808", "1970-01-01 00:00:00",
        "2000-01-01 00:00:00.5", "0001-01-01", "",
    ]  # fmt: skip
    assert rows["3"][11:16] == ["false", "abcde", "-1.00", "-1.5e+300", None]
    assert rows["4"][1] == 'say "hi"'
    assert rows["4"][8] == '"text"'
    assert rows["4"][12] == ""  # char(5) of one space, trimmed: an empty string, not NULL
    assert rows["5"][1] == "line1\nline2\r\nline3"
    assert rows["6"][1] == "Zürich 東京 🚀 'quoted'"
    assert rows["7"][1] == "back\\slash \t tab"
    assert rows["8"][1] == "  padded  "
    assert rows["9"][1] == "NULL"  # the string NULL is data, not a null


def test_hostile_identifiers_copy_and_touch_nothing_else(dms, s3, source_db):
    schema, table = 'Weird "Schema"; DROP', "Tab le;-- ünï"
    source_db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    source_db.execute(
        sql.SQL('CREATE TABLE {} ({} int, "MiXeD" text)').format(
            sql.Identifier(schema, table), sql.Identifier('Col"umn; x')
        )
    )
    source_db.execute(
        sql.SQL("INSERT INTO {} VALUES (1, 'a'), (2, 'b')").format(sql.Identifier(schema, table))
    )
    source_db.execute("CREATE TABLE public.bystander (id int)")
    source_db.execute("INSERT INTO public.bystander VALUES (42)")
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules((schema, "Tab le;%")))

    task = run_task(dms, arn)

    assert task["Status"] == "stopped", task.get("LastFailureMessage")
    objects = read_objects(s3, pipeline.bucket)
    assert list(objects) == [f"{schema}/{table}/LOAD00000001.csv"]
    assert sorted(rows_of(objects, schema)) == [["1", "a"], ["2", "b"]]
    assert source_db.fetchall("SELECT id FROM public.bystander") == [(42,)]
    assert source_db.fetchall(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
    ) == [(2,)]


def test_csv_settings_shape_the_output(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.items (id int, name text, note text)")
    source_db.execute("INSERT INTO public.items VALUES (1, 'a|b', NULL), (2, E'x\\ny', 'NULL-ish')")
    settings = {
        "BucketFolder": "raw/dms",
        "CsvDelimiter": "|",
        "CsvRowDelimiter": "\r\n",
        "CsvNullValue": "NULL",
        "AddColumnName": True,
        "IncludeOpForFullLoad": True,
        "TimestampColumnName": "loaded_at",
        "CompressionType": "GZIP",
    }
    pipeline = provision(dms, s3, source_db, s3_settings=settings)
    arn = create_task(dms, pipeline, select_rules(("public", "items")))
    assert run_task(dms, arn)["Status"] == "stopped"

    objects = read_objects(s3, pipeline.bucket)
    assert list(objects) == ["raw/dms/public/items/LOAD00000001.csv.gz"]
    rows = rows_of(objects, "raw/dms/", delimiter="|", row_delimiter="\r\n", null="NULL")
    assert rows[0] == ["Op", "loaded_at", "id", "name", "note"]
    body = sorted(rows[1:])
    assert [r[0] for r in body] == ["I", "I"]
    assert body[0][2:] == ["1", "a|b", None]
    assert body[1][2:] == ["2", "x\ny", "NULL-ish"]
    assert len(body[0][1] or "") == len("2026-01-01 00:00:00.000000")  # the load time, in µs


def test_max_file_size_rolls_files_and_reload_replaces_them(dms, s3, source_db):
    source_db.execute(
        "CREATE TABLE public.items AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g"
    )
    pipeline = provision(dms, s3, source_db, s3_settings={"MaxFileSize": 64})
    arn = create_task(dms, pipeline, select_rules(("public", "items")))
    assert run_task(dms, arn)["Status"] == "stopped"
    objects = read_objects(s3, pipeline.bucket)
    keys = sorted(objects)
    assert len(keys) >= 10
    assert keys[:2] == ["public/items/LOAD00000001.csv", "public/items/LOAD00000002.csv"]
    assert "public/items/LOAD0000000A.csv" in keys  # uppercase hex numbering
    assert all(64 * 1024 <= len(objects[k]) < 64 * 1024 + 100 for k in keys[:-1])
    ids = sorted(int(row[0] or 0) for row in rows_of(objects, "public/items/"))
    assert ids == list(range(1, 20001))

    source_db.execute("DELETE FROM public.items WHERE id > 100")
    source_db.execute("INSERT INTO public.items VALUES (-1, 'new')")
    assert run_task(dms, arn, "reload-target")["Status"] == "stopped"
    objects = read_objects(s3, pipeline.bucket)
    assert list(objects) == ["public/items/LOAD00000001.csv"]
    assert sorted(int(row[0] or 0) for row in rows_of(objects, "public/")) == [-1, *range(1, 101)]
    assert table_statistics(dms, arn)[("public", "items")]["FullLoadRows"] == 101


@pytest.mark.parametrize("compression", ["NONE", "GZIP"])
def test_large_tables_use_multipart_uploads(dms, s3, source_db, compression):
    source_db.execute(
        "CREATE TABLE public.wide AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS h "
        "FROM generate_series(1, 400000) g"
    )
    pipeline = provision(dms, s3, source_db, s3_settings={"CompressionType": compression})
    arn = create_task(dms, pipeline, select_rules(("public", "wide")))

    assert run_task(dms, arn)["Status"] == "stopped"

    ((key, data),) = read_objects(s3, pipeline.bucket).items()
    assert key.endswith(".csv.gz" if compression == "GZIP" else ".csv")
    text = (gzip.decompress(data) if compression == "GZIP" else data).decode()
    assert len(text) > 20 * 1024 * 1024  # several 8 MiB parts
    ids = [line.split(",")[0] for line in text.splitlines()]
    assert len(ids) == len(set(ids)) == 400000
    # Uploaded as `aws s3 cp` uploads: S3 checked each part's CRC32 and keeps their composite.
    checked = s3.get_object(Bucket=pipeline.bucket, Key=key, ChecksumMode="ENABLED")
    assert checked["ChecksumType"] == "COMPOSITE"
    assert int(checked["ChecksumCRC32"].rsplit("-", 1)[1]) >= 2  # parts (gzip: fewer)


def test_filters_and_transformations_apply(dms, s3, source_db):
    source_db.execute(
        "CREATE TABLE public.orders (id int, customer text, secret text, amount numeric)"
    )
    source_db.execute(
        "INSERT INTO public.orders SELECT g, 'c' || g, 'pw' || g, g * 1.5 FROM generate_series(1, 100) g"
    )
    source_db.execute("CREATE TABLE public.orders_archive (id int)")
    source_db.execute("INSERT INTO public.orders_archive VALUES (1)")
    mappings = {
        "rules": [
            {"rule-type": "selection", "rule-id": "1", "rule-name": "orders", "rule-action": "include",
             "object-locator": {"schema-name": "public", "table-name": "orders"},
             "filters": [
                 {"filter-type": "source", "column-name": "id", "filter-conditions": [
                     {"filter-operator": "between", "start-value": "10", "end-value": "12"},
                     {"filter-operator": "eq", "value": "50"}]},
                 {"filter-type": "source", "column-name": "customer", "filter-conditions": [
                     {"filter-operator": "noteq", "value": "c11"}]}]},
            {"rule-type": "selection", "rule-id": "2", "rule-name": "archive", "rule-action": "include",
             "object-locator": {"schema-name": "public", "table-name": "orders%"}},
            {"rule-type": "selection", "rule-id": "3", "rule-name": "no-archive", "rule-action": "exclude",
             "object-locator": {"schema-name": "public", "table-name": "%[_]archive"}},
            {"rule-type": "transformation", "rule-id": "4", "rule-name": "schema", "rule-action": "add-prefix",
             "rule-target": "schema", "value": "src_", "object-locator": {"schema-name": "public"}},
            {"rule-type": "transformation", "rule-id": "5", "rule-name": "table", "rule-action": "rename",
             "rule-target": "table", "value": "sales",
             "object-locator": {"schema-name": "public", "table-name": "orders"}},
            {"rule-type": "transformation", "rule-id": "6", "rule-name": "drop", "rule-action": "remove-column",
             "rule-target": "column",
             "object-locator": {"schema-name": "public", "table-name": "orders", "column-name": "secret"}},
            {"rule-type": "transformation", "rule-id": "7", "rule-name": "upper", "rule-action": "convert-uppercase",
             "rule-target": "column",
             "object-locator": {"schema-name": "public", "table-name": "orders", "column-name": "%"}},
        ]
    }  # fmt: skip
    pipeline = provision(dms, s3, source_db, s3_settings={"AddColumnName": True})
    arn = create_task(dms, pipeline, json.dumps(mappings))

    assert run_task(dms, arn)["Status"] == "stopped"

    objects = read_objects(s3, pipeline.bucket)
    assert list(objects) == ["src_public/sales/LOAD00000001.csv"]
    rows = rows_of(objects, "src_public/")
    assert rows[0] == ["ID", "CUSTOMER", "AMOUNT"]
    assert sorted(rows[1:]) == [["10", "c10", "15.0"], ["12", "c12", "18.0"], ["50", "c50", "75.0"]]
    assert set(table_statistics(dms, arn)) == {("public", "orders")}


def test_unsupported_rule_fails_the_task_naming_the_rule(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.t (id int)")
    mappings = json.loads(select_rules(("public", "t")))
    mappings["rules"].append(
        {"rule-type": "transformation", "rule-id": "9", "rule-name": "mask", "rule-action": "data-masking-hash-mask",
         "rule-target": "column", "object-locator": {"schema-name": "public", "table-name": "t", "column-name": "id"}}
    )  # fmt: skip
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, json.dumps(mappings))
    task = run_task(dms, arn)
    assert task["Status"] == "failed"
    assert "rule 'mask' (rule-id 9)" in task["LastFailureMessage"]
    assert "data-masking-hash-mask" in task["LastFailureMessage"]
    assert task["LastFailureMessage"].endswith("Stop Reason FATAL_ERROR Error Level FATAL")


def test_filter_on_a_missing_column_fails_with_the_columns_listed(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.t (id int, name text)")
    mappings = json.loads(select_rules(("public", "t")))
    mappings["rules"][0]["filters"] = [
        {
            "filter-type": "source",
            "column-name": "nope",
            "filter-conditions": [{"filter-operator": "eq", "value": "1"}],
        }
    ]
    pipeline = provision(dms, s3, source_db)
    task = run_task(dms, create_task(dms, pipeline, json.dumps(mappings)))
    assert task["Status"] == "failed"
    assert "filter column 'nope' does not exist in table public.t" in task["LastFailureMessage"]
    assert "id, name" in task["LastFailureMessage"]


def test_wrong_password_fails_the_task_without_leaking_it(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.t (id int)")
    pipeline = provision(dms, s3, source_db, password="definitely-wrong")
    task = run_task(dms, create_task(dms, pipeline, select_rules(("public", "%"))))
    assert task["Status"] == "failed"
    assert "authentication failed" in task["LastFailureMessage"]
    assert "Check the endpoint's Username and Password" in task["LastFailureMessage"]
    assert "definitely-wrong" not in json.dumps(task, default=str)


def test_missing_bucket_fails_the_task_naming_it(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.t (id int)")
    pipeline = provision(dms, s3, source_db)
    s3.delete_bucket(Bucket=pipeline.bucket)
    task = run_task(dms, create_task(dms, pipeline, select_rules(("public", "%"))))
    assert task["Status"] == "failed"
    assert f"The S3 bucket '{pipeline.bucket}' does not exist" in task["LastFailureMessage"]


def test_unreachable_source_fails_the_task(dms, s3, source_db):
    pipeline = provision(dms, s3, source_db, port=free_port())
    task = run_task(dms, create_task(dms, pipeline, select_rules(("public", "%"))))
    assert task["Status"] == "failed"
    assert "Failed to connect to the PostgreSQL source" in task["LastFailureMessage"]
    assert "Check ServerName and Port" in task["LastFailureMessage"]
