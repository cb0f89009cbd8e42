"""The flow trusts the target endpoint DMS describes, and reconciles S3 with DMS's row counts.

Endpoints here have a BucketFolder, as users' endpoints made with Terraform or the console
usually do: an endpoint without one would hide a flow that looks in the wrong place.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest
from prefect_aws import AwsCredentials

from flows import dms_ingestion
from flows.exceptions import ReplicationTaskFailedError, TargetMismatchError
from tests.integration.conftest import write_config
from tests.pipeline import provision, read_objects

pytestmark = pytest.mark.integration

TRICKY_ROWS = 1200
"""Rows of ``bookings.notes``: values with newlines, quotes, delimiters and NULLs."""


def target_job(dms, s3, source_db, monkeypatch, tmp_path, **s3_settings: Any):
    """Two tables (one with values that span lines), DMS resources with ``s3_settings``, a config."""
    source_db.execute("CREATE SCHEMA bookings")
    source_db.execute(
        "CREATE TABLE bookings.tickets AS SELECT g AS id, 'passenger ' || g AS name "
        "FROM generate_series(1, 5000) g"
    )
    source_db.execute(
        "CREATE TABLE bookings.notes AS SELECT g AS id, CASE g % 4 "
        "WHEN 0 THEN E'line one\\nline two' WHEN 1 THEN 'say \"hi\", twice' "
        f"WHEN 2 THEN E'a\\r\\nb' END AS body FROM generate_series(1, {TRICKY_ROWS}) g"
    )
    pipeline = provision(dms, s3, source_db, bucket="postgres-repo", s3_settings=s3_settings)
    monkeypatch.setenv("DMS_SOURCE_ENDPOINT_ARN", pipeline.source_arn)
    monkeypatch.setenv("DMS_TARGET_ENDPOINT_ARN", pipeline.target_arn)
    monkeypatch.setenv("DMS_REPLICATION_INSTANCE_ARN", pipeline.instance_arn)
    config = tmp_path / "dms_config.json"
    write_config(config, [{"schema_name": "bookings", "table_name": "%"}])  # the seed format
    return config


def rows_in_s3(s3, key: str, body: bytes) -> int:
    """An independent count: parse the object fully (Parquet with pyarrow, CSV with gzip+splitting
    on the quote-aware csv module)."""
    if key.endswith(".parquet"):
        return int(pq.read_table(io.BytesIO(body)).num_rows)
    import csv

    text = (gzip.decompress(body) if key.endswith(".gz") else body).decode()
    return sum(1 for _ in csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize(
    "s3_settings",
    [
        {"BucketFolder": "raw", "MaxFileSize": 16},
        {"BucketFolder": "raw/chinook/", "CompressionType": "GZIP", "AddColumnName": True},
        {"BucketFolder": "raw", "DataFormat": "parquet", "RowGroupLength": 1000},
    ],
    ids=["csv-several-files", "gzip-csv-with-header", "parquet"],
)
async def test_a_target_with_a_bucket_folder_is_read_from_the_endpoint_and_reconciled(
    dms, s3, source_db, aws_endpoints, prefect_api, monkeypatch, tmp_path, s3_settings
):
    config = target_job(dms, s3, source_db, monkeypatch, tmp_path, **s3_settings)

    report = await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)

    folder = s3_settings["BucketFolder"].strip("/")
    assert report.succeeded, report.failure_message()
    assert report.target == f"s3://postgres-repo/{folder}/"
    verification = report.s3_verification
    assert verification is not None
    assert verification.checked
    assert verification.ok
    tables = {t.table_name: t for t in report.tables}
    objects = read_objects(s3, "postgres-repo", f"{folder}/")
    for name, rows in (("tickets", 5000), ("notes", TRICKY_ROWS)):
        table = tables[name]
        keys = [k for k in objects if k.startswith(f"{folder}/bookings/{name}/LOAD")]
        assert table.full_load_rows == table.s3_rows == rows
        assert table.s3_objects == len(keys) >= 1
        assert table.s3_bytes == sum(len(objects[k]) for k in keys)
        header_rows = len(keys) if s3_settings.get("AddColumnName") else 0
        assert sum(rows_in_s3(s3, k, objects[k]) for k in keys) - header_rows == rows
    if "MaxFileSize" in s3_settings:
        assert tables["tickets"].s3_objects > 3  # the count spans several files
    assert verification.rows == 5000 + TRICKY_ROWS
    exported = json.loads(report.model_dump_json())
    assert {"s3_rows", "s3_objects", "s3_bytes"} <= set(exported["tables"][0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"s3_bucket_name": "another-bucket"},
         "s3_bucket_name is 'another-bucket', but the target endpoint writes to bucket "
         "'postgres-repo'"),
        ({"s3_bucket_folder": "curated"},
         "s3_bucket_folder is 'curated', but the target endpoint's BucketFolder is 'raw'"),
    ],
    ids=["bucket", "folder"],
)  # fmt: skip
async def test_a_config_that_disagrees_with_the_endpoint_starts_nothing(
    dms, s3, source_db, aws_endpoints, prefect_api, monkeypatch, tmp_path, overrides, message
):
    config = target_job(dms, s3, source_db, monkeypatch, tmp_path, BucketFolder="raw")

    with pytest.raises(TargetMismatchError) as excinfo:
        await dms_ingestion(config_path=str(config), overrides=overrides)

    assert message in str(excinfo.value)
    assert "nothing was created or started" in str(excinfo.value)
    assert dms.describe_replication_tasks(Filters=[])["ReplicationTasks"] == []
    assert read_objects(s3, "postgres-repo") == {}


async def test_a_load_object_deleted_behind_dms_fails_the_run_with_both_counts(
    dms, s3, source_db, aws_endpoints, prefect_api, monkeypatch, tmp_path
):
    """Between the load and the reconciliation, someone deletes one of tickets' LOAD files."""
    config = target_job(
        dms, s3, source_db, monkeypatch, tmp_path, BucketFolder="raw", MaxFileSize=16
    )
    deleted: list[str] = []

    def delete_one_ticket_file(params, **kwargs):  # botocore "before-parameter-build"
        if deleted or not params.get("Prefix", "").startswith("raw/bookings/tickets/"):
            return
        deleted.append("raw/bookings/tickets/LOAD00000002.csv")
        s3.delete_object(Bucket="postgres-repo", Key=deleted[0])

    flow_s3 = AwsCredentials().get_client("s3")  # the client the flow gets without a block
    flow_s3.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", delete_one_ticket_file, unique_id="vandal"
    )
    try:
        with pytest.raises(ReplicationTaskFailedError) as excinfo:
            await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)
    finally:
        flow_s3.meta.events.unregister(
            "before-parameter-build.s3.ListObjectsV2", unique_id="vandal"
        )

    assert deleted
    report = excinfo.value.report
    tickets = next(t for t in report.tables if t.table_name == "tickets")
    assert tickets.table_state == "Table completed"  # DMS says it loaded them all
    assert 0 < tickets.s3_rows < 5000
    assert report.s3_verification.mismatched_tables == ["bookings.tickets"]
    assert (
        f"bookings.tickets: DMS loaded 5,000 rows, s3://postgres-repo/raw/bookings/tickets/ holds "
        f"{tickets.s3_rows:,} in {tickets.s3_objects} LOAD objects"
    ) in str(excinfo.value)
    assert not report.succeeded
