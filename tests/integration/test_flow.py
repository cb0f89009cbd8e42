"""The dms_ingestion flow against localdms, moto's S3 and PostgreSQL, on a temporary Prefect API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)

from flows import dms_ingestion
from flows.exceptions import ReplicationTaskConflictError, ReplicationTaskFailedError
from tests.integration.conftest import write_config
from tests.pipeline import provision, read_objects

pytestmark = pytest.mark.integration


async def child_runs(parent_id) -> list[Any]:
    """Every child flow run of ``parent_id`` (the API returns pages of 200)."""
    flow_run_filter = FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])
    )
    runs: list[Any] = []
    async with get_client() as client:
        while page := await client.read_flow_runs(
            flow_run_filter=flow_run_filter, limit=200, offset=len(runs)
        ):
            runs.extend(page)
    return runs


async def test_first_run_loads_every_table_with_a_subflow_each_and_a_report(job, s3, dms):
    config = job

    state = await dms_ingestion(
        config_path=str(config), poll_interval_seconds=0.2, return_state=True
    )
    report = await state.result()

    assert report.succeeded, report.failure_message()
    assert report.start_type == "start-replication"
    assert report.status == "stopped"
    assert report.stop_reason == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    tables = {(t.schema_name, t.table_name): t for t in report.tables}
    assert set(tables) == {
        ("bookings", "tickets"),
        ("bookings", "flights"),
        ("bookings", "empty_one"),
    }
    assert tables[("bookings", "tickets")].full_load_rows == 5000
    assert tables[("bookings", "tickets")].table_state == "Table completed"
    assert report.s3_verification is not None
    assert report.s3_verification.ok
    assert sorted(read_objects(s3, "postgres-repo")) == [
        "bookings/flights/LOAD00000001.csv", "bookings/tickets/LOAD00000001.csv",
    ]  # fmt: skip
    assert report.max_monitoring_calls_per_poll == 2

    children = await child_runs(state.state_details.flow_run_id)
    assert sorted(run.name for run in children) == [
        "bookings.empty_one",
        "bookings.flights",
        "bookings.tickets",
    ]
    assert all(run.state.is_completed() for run in children)
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    keys = {a.key for a in artifacts}
    assert {"dms-postgres-migration-test-tables", "dms-postgres-migration-test-report"} <= keys
    summary = next(a for a in artifacts if a.key == "dms-postgres-migration-test-report")
    assert "succeeded" in summary.data
    exported = json.loads(report.model_dump_json())  # what --report-json writes
    assert {"task_identifier", "task_arn", "status", "stop_reason", "tables"} <= set(exported)
    assert {(t["schema_name"], t["table_name"], t["table_state"], t["full_load_rows"]) for t in exported["tables"]} == {
        ("bookings", "tickets", "Table completed", 5000), ("bookings", "flights", "Table completed", 300),
        ("bookings", "empty_one", "Table completed", 0),
    }  # fmt: skip


async def test_second_run_reloads_the_same_task_without_stale_files(job, s3, dms, source_db):
    config = job
    first = await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)
    source_db.execute("DELETE FROM bookings.tickets WHERE id > 10")
    source_db.execute("INSERT INTO bookings.tickets VALUES (-1, 'new passenger')")

    second = await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)

    assert second.task_arn == first.task_arn
    assert second.start_type == "reload-target"
    assert len(dms.describe_replication_tasks()["ReplicationTasks"]) == 1
    tickets = read_objects(s3, "postgres-repo", "bookings/tickets/")
    assert list(tickets) == ["bookings/tickets/LOAD00000001.csv"]
    lines = tickets["bookings/tickets/LOAD00000001.csv"].decode().splitlines()
    assert len(lines) == 11
    assert "-1,new passenger" in lines


async def test_changed_mappings_modify_the_existing_task(job, dms, tmp_path):
    config = job
    await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)
    write_config(config, [{"schema_name": "bookings", "table_name": "flights"}])

    report = await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)

    assert [t.table_name for t in report.tables] == ["flights"]
    (task,) = dms.describe_replication_tasks()["ReplicationTasks"]
    assert (
        json.loads(task["TableMappings"])["rules"][0]["object-locator"]["table-name"] == "flights"
    )


async def test_missing_table_fails_the_flow_with_dms_reason(job, tmp_path):
    config = job
    write_config(config, [{"schema_name": "bookings", "table_name": "no_such_table"}])

    with pytest.raises(ReplicationTaskFailedError) as excinfo:
        await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)

    message = str(excinfo.value)
    assert "ended failed" in message
    assert "No tables were found at task initialization" in message
    assert excinfo.value.report.status == "failed"


async def test_wrong_password_fails_with_the_reason(
    dms, s3, source_db, aws_endpoints, prefect_api, monkeypatch, tmp_path
):
    source_db.execute("CREATE TABLE public.t (id int)")
    pipeline = provision(dms, s3, source_db, bucket="postgres-repo", password="wrong-password")
    for name, value in (("SOURCE", pipeline.source_arn), ("TARGET", pipeline.target_arn)):
        monkeypatch.setenv(f"DMS_{name}_ENDPOINT_ARN", value)
    monkeypatch.setenv("DMS_REPLICATION_INSTANCE_ARN", pipeline.instance_arn)
    config = tmp_path / "c.json"
    write_config(config, [{"schema_name": "public", "table_name": "t"}])

    with pytest.raises(ReplicationTaskFailedError, match="authentication failed"):
        await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)


@pytest.fixture
async def reloading_task(job, dms, source_db) -> tuple[Any, str]:
    """A finished first run, then the task restarted by hand with a table big enough to be running."""
    source_db.execute(
        "CREATE TABLE bookings.big AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 1500000) g"
    )
    first = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)
    dms.start_replication_task(
        ReplicationTaskArn=first.task_arn, StartReplicationTaskType="reload-target"
    )
    return job, first.task_arn


async def test_running_task_is_refused_or_attached(reloading_task):
    config, _ = reloading_task

    with pytest.raises(ReplicationTaskConflictError, match=r"is already (starting|running)"):
        await dms_ingestion(config_path=str(config), poll_interval_seconds=0.2)
    attached = await dms_ingestion(
        config_path=str(config), poll_interval_seconds=0.2, overrides={"if_running": "attach"}
    )

    assert attached.succeeded
    assert attached.start_type is None
    assert {t.table_name: t.full_load_rows for t in attached.tables}["big"] == 1_500_000


async def test_cancellation_hook_stops_the_running_task(reloading_task, dms):
    from flows.dms_ingestion import stop_task_on_cancellation

    config, task_arn = reloading_task
    flow_run = type("FlowRun", (), {"parameters": {"config_path": str(config)}})()

    await stop_task_on_cancellation(dms_ingestion, flow_run, None)  # type: ignore[arg-type]

    from tests.pipeline import wait_until_finished

    assert wait_until_finished(dms, task_arn)["StopReason"] == "Stop Reason NORMAL"


async def test_a_table_error_fails_the_flow_after_the_configured_reloads(job, dms, source_db, s3):
    source_db.execute(
        "CREATE VIEW bookings.broken AS SELECT id, 1 / (id - id) AS boom FROM bookings.flights"
    )
    rules = [{"rule-type": "selection", "rule-id": "9", "rule-name": "views", "rule-action": "include",
              "object-locator": {"schema-name": "bookings", "table-name": "broken", "table-type": "view"}}]  # fmt: skip

    with pytest.raises(ReplicationTaskFailedError) as excinfo:
        await dms_ingestion(
            config_path=str(job), poll_interval_seconds=0.2,
            overrides={"table_mapping_rules": rules, "reload_errored_tables": 2},
        )  # fmt: skip

    report = excinfo.value.report
    assert "Tables in error: bookings.broken (Table error)" in str(excinfo.value)
    assert "division by zero" in str(excinfo.value)
    assert report.table_reloads == 2
    states = {t.table_name: t.table_state for t in report.tables}
    assert states == {"broken": "Table error", "tickets": "Table completed", "flights": "Table completed",
                      "empty_one": "Table completed"}  # fmt: skip
    assert "bookings/tickets/LOAD00000001.csv" in read_objects(s3, "postgres-repo")
    assert not read_objects(s3, "postgres-repo", "bookings/broken/")


async def test_delete_task_after_success(job, dms):
    report = await dms_ingestion(
        config_path=str(job),
        poll_interval_seconds=0.2,
        overrides={"delete_task_after_success": True},
    )
    assert report.succeeded
    assert dms.describe_replication_tasks()["ReplicationTasks"] == []


async def test_full_load_and_cdc_returns_once_loaded_and_keeps_capturing(job, s3, dms, source_db):
    """The flow drives a full-load-and-cdc task: it returns when the load is done, the task goes
    on capturing, and a change made afterwards reaches S3 as a CDC file."""
    source_db.execute("ALTER TABLE bookings.tickets ADD PRIMARY KEY (id)")
    write_config(
        job, [{"schema_name": "bookings", "table_name": "%"}], migration_type="full-load-and-cdc"
    )
    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    assert report.succeeded, report.failure_message()
    assert report.status == "running"
    assert {t.table_state for t in report.tables} == {"Table completed"}
    source_db.execute("UPDATE bookings.tickets SET name = 'changed' WHERE id = 7")
    task = dms.describe_replication_tasks()["ReplicationTasks"][0]
    for _ in range(150):
        cdc = [k for k in read_objects(s3, "postgres-repo", "bookings/tickets/") if "LOAD" not in k]
        if cdc:
            break
        await asyncio.sleep(0.2)
    body = read_objects(s3, "postgres-repo", cdc[0])[cdc[0]].decode()
    assert body == "U,7,changed\n"
    dms.stop_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"])


async def test_cdc_task_is_monitored_for_the_configured_time(job, dms):
    write_config(
        job, [{"schema_name": "bookings", "table_name": "%"}],
        migration_type="cdc", cdc_monitor_seconds=2,
    )  # fmt: skip
    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    assert report.succeeded, report.failure_message()
    task = dms.describe_replication_tasks()["ReplicationTasks"][0]
    assert task["MigrationType"] == "cdc"
    assert report.elapsed_seconds >= 2
    dms.stop_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"])


async def test_stop_after_full_load_stops_a_full_load_and_cdc_task(job, dms):
    write_config(
        job, [{"schema_name": "bookings", "table_name": "%"}],
        migration_type="full-load-and-cdc", stop_after_full_load=True,
    )  # fmt: skip
    report = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)

    assert report.succeeded, report.failure_message()
    assert report.status == "stopped"
    assert report.stop_reason == "Stop Reason NORMAL"
    assert {t.table_state for t in report.tables} == {"Table completed"}
