"""The dms_ingestion flow on DMS Serverless: a replication config instead of a task, against
localdms, moto's S3 and PostgreSQL, on a temporary Prefect API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from flows import dms_ingestion
from flows.exceptions import (
    PreflightFailedError,
    ReplicationTaskConflictError,
    ReplicationTaskFailedError,
)
from tests.integration.conftest import write_config
from tests.pipeline import read_objects

pytestmark = pytest.mark.integration

COMPUTE = {"MaxCapacityUnits": 4, "MinCapacityUnits": 2}


@pytest.fixture
def serverless_job(job, monkeypatch) -> Any:
    """The tasks' job (three tables, endpoints in the environment) with a compute_config and no
    replication instance."""
    monkeypatch.delenv("DMS_REPLICATION_INSTANCE_ARN")
    write_config(job, [{"schema_name": "bookings", "table_name": "%"}], compute_config=COMPUTE)
    return job


def configs(dms: Any) -> list[dict[str, Any]]:
    return list(dms.describe_replication_configs()["ReplicationConfigs"])


async def test_first_and_second_runs_create_then_reuse_one_replication_config(
    serverless_job, dms, s3, source_db
):
    first = await dms_ingestion(config_path=str(serverless_job), poll_interval_seconds=0.2)

    assert first.succeeded, first.failure_message()
    assert first.task_arn is None
    assert first.replication_config_arn is not None
    assert ":replication-config:" in first.replication_config_arn
    assert (first.start_type, first.status) == ("start-replication", "stopped")
    assert first.stop_reason == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    rows = {t.table_name: t.full_load_rows for t in first.tables}
    assert rows == {"tickets": 5000, "flights": 300, "empty_one": 0}
    assert first.s3_verification is not None
    assert first.s3_verification.ok
    assert first.max_monitoring_calls_per_poll == 2  # DescribeReplications + one statistics page
    assert first.dms_api_calls["describe_replications"] >= 2
    assert "describe_replication_tasks" not in first.dms_api_calls
    assert dms.describe_replication_tasks()["ReplicationTasks"] == []
    exported = json.loads(first.model_dump_json())
    assert {"replication_config_arn", "status", "stop_reason", "tables"} <= set(exported)
    assert exported["replication_config_arn"] == first.replication_config_arn

    source_db.execute("DELETE FROM bookings.tickets WHERE id > 10")
    second = await dms_ingestion(
        config_path=str(serverless_job), poll_interval_seconds=0.2,
        overrides={"compute_config": {**COMPUTE, "MaxCapacityUnits": 8}},
    )  # fmt: skip
    assert second.succeeded, second.failure_message()
    assert second.replication_config_arn == first.replication_config_arn
    assert second.start_type == "reload-target"
    assert len(configs(dms)) == 1
    assert configs(dms)[0]["ComputeConfig"]["MaxCapacityUnits"] == 8  # modified, not duplicated
    tickets = read_objects(s3, "postgres-repo", "bookings/tickets/")
    assert len(tickets["bookings/tickets/LOAD00000001.csv"].decode().splitlines()) == 10


async def test_no_table_matched_fails_the_flow_with_dms_reason(serverless_job):
    write_config(serverless_job, [{"schema_name": "bookings", "table_name": "no_such_table"}],
                 compute_config=COMPUTE)  # fmt: skip
    with pytest.raises(ReplicationTaskFailedError) as excinfo:
        await dms_ingestion(config_path=str(serverless_job), poll_interval_seconds=0.2)
    message = str(excinfo.value)
    assert "DMS Serverless replication postgres-migration-test ended failed" in message
    assert "No tables were found at task initialization" in message
    assert excinfo.value.report.replication_config_arn is not None


async def test_a_running_replication_is_refused_attached_or_stopped_on_cancellation(
    serverless_job, dms, source_db
):
    from flows.dms_ingestion import stop_task_on_cancellation

    source_db.execute("CREATE TABLE bookings.big AS SELECT g AS id, repeat('x', 100) AS pad "
                      "FROM generate_series(1, 1500000) g")  # fmt: skip
    first = await dms_ingestion(config_path=str(serverless_job), poll_interval_seconds=0.2)
    arn = first.replication_config_arn
    dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="reload-target")

    with pytest.raises(ReplicationTaskConflictError, match="is already"):
        await dms_ingestion(config_path=str(serverless_job), poll_interval_seconds=0.2)
    flow_run = type("FlowRun", (), {"parameters": {"config_path": str(serverless_job)}})()
    await stop_task_on_cancellation(dms_ingestion, flow_run, None)  # type: ignore[arg-type]
    for _ in range(300):
        replication = dms.describe_replications()["Replications"][0]
        if replication["Status"] == "stopped":
            break
        await asyncio.sleep(0.1)
    assert replication["StopReason"] == "Stop Reason NORMAL"

    dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="reload-target")
    attached = await dms_ingestion(
        config_path=str(serverless_job), poll_interval_seconds=0.2,
        overrides={"if_running": "attach", "delete_task_after_success": True},
    )  # fmt: skip
    assert attached.succeeded, attached.failure_message()
    assert attached.start_type is None
    assert {t.table_name: t.full_load_rows for t in attached.tables}["big"] == 1_500_000
    assert configs(dms) == []  # deleted after success


async def test_full_load_and_cdc_on_serverless_returns_once_loaded_and_keeps_capturing(
    serverless_job, s3, dms, source_db
):
    source_db.execute("ALTER TABLE bookings.tickets ADD PRIMARY KEY (id)")
    write_config(serverless_job, [{"schema_name": "bookings", "table_name": "%"}],
                 migration_type="full-load-and-cdc", compute_config=COMPUTE)  # fmt: skip
    report = await dms_ingestion(config_path=str(serverless_job), poll_interval_seconds=0.2)

    assert report.succeeded, report.failure_message()
    assert report.status == "running"
    source_db.execute("UPDATE bookings.tickets SET name = 'changed' WHERE id = 7")
    for _ in range(150):
        cdc = [k for k in read_objects(s3, "postgres-repo", "bookings/tickets/") if "LOAD" not in k]
        if cdc:
            break
        await asyncio.sleep(0.2)
    assert read_objects(s3, "postgres-repo", cdc[0])[cdc[0]].decode() == "U,7,changed\n"
    dms.stop_replication(ReplicationConfigArn=report.replication_config_arn)


async def test_the_preflight_of_a_serverless_replication_is_dms_serverless_own(
    serverless_job, dms, s3
):
    """``preflight: fail``: StartReplication carries the assessment with FailOnAssessmentFailure,
    DMS Serverless does not start the replication, and the flow says which check failed and on
    what; ``warn`` (the default) reports the same findings and loads."""
    write_config(serverless_job, [{"schema_name": "bookings", "table_name": "%"}],
                 compute_config=COMPUTE, migration_type="full-load-and-cdc",
                 preflight="fail")  # fmt: skip
    with pytest.raises(PreflightFailedError) as excinfo:
        await dms_ingestion(config_path=str(serverless_job), poll_interval_seconds=0.2)

    message = str(excinfo.value)
    assert "DMS Serverless did not start replication" in message
    assert "postgres-check-pk failed" in message
    assert "bookings.tickets" in message  # read from the result file DMS Serverless wrote
    replication = dms.describe_replications()["Replications"][0]
    assert replication["PremigrationAssessmentStatuses"][0]["FailOnAssessmentFailure"] is True
    assert not [k for k in read_objects(s3, "postgres-repo") if "LOAD" in k]

    report = await dms_ingestion(
        config_path=str(serverless_job), poll_interval_seconds=0.2,
        overrides={"preflight": "warn", "migration_type": "full-load", "stop_after_full_load": True},
    )  # fmt: skip
    assert report.succeeded, report.failure_message()
    assert report.preflight is not None
    assert report.preflight.status == "passed"  # a full load: no CDC checks
    assert {f.name for f in report.preflight.findings} >= {"postgres-check-dbversion"}
    assert report.preflight.result_location.startswith("s3://dms-serverless-")


async def test_the_lake_applies_a_serverless_replications_tables(serverless_job, tmp_path):
    """dms-lake on a DMS Serverless replication config: its tables from
    DescribeReplicationTableStatistics, its target endpoint from the config, the files applied."""
    from flows.lake import dms_lake

    assert (
        await dms_ingestion(config_path=str(serverless_job), poll_interval_seconds=0.2)
    ).succeeded
    report = await dms_lake(config_path=str(serverless_job), tables=["bookings.tickets"], overrides={
        "lake_catalog_uri": f"sqlite:///{tmp_path}/catalog.db",
        "lake_tables": {"bookings.tickets": {
            "key": ["id"], "column_types": {"id": "int", "name": "string"}}},
    })  # fmt: skip
    assert [(t.table_name, t.rebuilt, t.rows) for t in report.tables] == [("tickets", True, 5000)]
    assert report.tables[0].objects == ["bookings/tickets/LOAD00000001.csv"]
