"""The flow's preflight: a DMS premigration assessment before the start, against localdms."""

from __future__ import annotations

import json

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows import dms_ingestion
from flows.exceptions import PreflightFailedError
from tests.integration.conftest import write_config
from tests.pipeline import read_objects

pytestmark = pytest.mark.integration

ROLE = {"preflight_role_arn": "arn:aws:iam::123456789012:role/dms-assessments"}


async def test_preflight_fail_starts_nothing_and_names_what_would_go_wrong(job, dms, s3):
    write_config(job, [{"schema_name": "bookings", "table_name": "%"}],
                 migration_type="full-load-and-cdc", preflight="fail", **ROLE)  # fmt: skip

    with pytest.raises(PreflightFailedError) as excinfo:
        await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    message = str(excinfo.value)
    assert "was not started" in message
    assert "postgres-check-pk failed" in message
    assert "bookings.tickets" in message
    task = dms.describe_replication_tasks()["ReplicationTasks"][0]
    assert task["Status"] == "ready"  # created, assessed, never started
    assert "ReplicationTaskStartDate" not in task
    assert not [k for k in read_objects(s3, "postgres-repo") if "LOAD" in k]
    results = read_objects(s3, "postgres-repo", "dms-assessments/")
    assert any(key.endswith("/summary.json") for key in results)


async def test_preflight_warn_reports_findings_and_loads(job, dms, s3, source_db):
    source_db.execute("CREATE TABLE bookings.notes (id int PRIMARY KEY, body text)")
    source_db.execute("INSERT INTO bookings.notes VALUES (1, repeat('n', 50000))")
    write_config(job, [{"schema_name": "bookings", "table_name": "%"}], **ROLE)

    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    assert report.succeeded, report.failure_message()
    assert report.preflight is not None
    assert report.preflight.status == "passed"  # full load: no CDC checks, a LOB warning
    findings = {f.name: f for f in report.preflight.findings}
    lob = findings["postgres-check-limited-lob-size"]
    assert lob.status == "warning"
    assert any(o.startswith("bookings.notes.body") for o in lob.objects)
    assert "postgres-check-pk" not in findings  # applies to CDC only
    exported = report.model_dump()
    assert exported["preflight"]["findings"]
    assert "Preflight (warn): **passed**; postgres-check-limited-lob-size warning" in (
        report.summary_markdown()
    )
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["dms-postgres-migration-test-preflight"])
            )
        )
    tables = [json.loads(a.data) if isinstance(a.data, str) else a.data for a in artifacts]
    assert any(row["assessment"] == "postgres-check-limited-lob-size"
               for rows in tables for row in rows)  # fmt: skip


async def test_without_a_role_the_preflight_is_skipped_saying_how_to_give_one(job):
    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    assert report.succeeded
    assert report.preflight is not None
    assert report.preflight.status == "skipped"
    assert "set preflight_role_arn" in report.preflight.detail
    with pytest.raises(
        PreflightFailedError, match="the target endpoint has no ServiceAccessRoleArn"
    ):
        await dms_ingestion(
            config_path=str(job), poll_interval_seconds=0.2, overrides={"preflight": "fail"}
        )
