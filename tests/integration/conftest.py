"""Fixtures of the integration tests that run the flow."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.pipeline import provision


@pytest.fixture
def job(dms, s3, source_db, aws_endpoints, prefect_api, monkeypatch, tmp_path):
    """Three source tables, the DMS resources, ARNs in the environment, and a config file."""
    source_db.execute("CREATE SCHEMA bookings")
    source_db.execute(
        "CREATE TABLE bookings.tickets AS SELECT g AS id, 'passenger ' || g AS name FROM generate_series(1, 5000) g"
    )
    source_db.execute(
        "CREATE TABLE bookings.flights AS SELECT g AS id FROM generate_series(1, 300) g"
    )
    source_db.execute("CREATE TABLE bookings.empty_one (id int)")
    # CDC files every second (the default is 60 s); full-load tasks ignore it.
    pipeline = provision(
        dms, s3, source_db, bucket="postgres-repo", s3_settings={"CdcMaxBatchInterval": 1}
    )
    monkeypatch.setenv("DMS_SOURCE_ENDPOINT_ARN", pipeline.source_arn)
    monkeypatch.setenv("TARGET_ENDPOINT_ARN", pipeline.target_arn)  # the unprefixed name works too
    monkeypatch.setenv("DMS_REPLICATION_INSTANCE_ARN", pipeline.instance_arn)
    config = tmp_path / "dms_config.json"
    write_config(config, [{"schema_name": "bookings", "table_name": "%"}])
    return config


def write_config(path, table_mappings: list[dict[str, str]], **extra: Any) -> None:
    path.write_text(
        json.dumps(
            {"dms_task_name": "postgres-migration-test", "s3_bucket_name": "postgres-repo",
             "table_mappings": table_mappings, "migration_type": "full-load", **extra}
        )
    )  # fmt: skip
