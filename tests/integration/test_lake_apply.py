"""The lake's apply engine against localdms's real LOAD and CDC files: the Iceberg table, read
back as a consumer reads it (a pyiceberg scan into Arrow), equals the source table."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from pyiceberg.catalog import Catalog

from dms_spec.s3_target import S3Target
from lake.apply import APPLIED_OBJECTS, LakeTable, TableSpec
from lake.catalogs import file_io, open_catalog
from lake.dms_files import list_table_objects
from tests.integration.test_localdms_cdc import (
    ACCOUNTS,
    capturing_task,
    change_accounts,
    make_accounts,
    source_state,
)
from tests.pipeline import table_statistics

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
