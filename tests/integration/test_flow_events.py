"""The flow's Prefect events, read back from the Prefect API as an automation or a consumer
reads them (``flows/events.py`` is the contract)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

from flows import dms_ingestion
from flows.exceptions import ReplicationTaskFailedError
from tests.integration.conftest import write_config

pytestmark = pytest.mark.integration


async def events_of_run(flow_run_id: Any, names: list[str], at_least: int) -> list[Any]:
    """The events of these names related to the flow run, once ``at_least`` have arrived
    (Prefect sends them in the background)."""
    event_filter = EventFilter(
        event=EventNameFilter(name=names),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    deadline = time.monotonic() + 30
    async with get_client() as client:
        while True:
            found = (await client.read_events(filter=event_filter, limit=50)).events
            if len(found) >= at_least or time.monotonic() > deadline:
                return sorted(found, key=lambda e: e.occurred)
            await asyncio.sleep(0.3)


async def test_a_run_emits_table_loaded_per_table_and_its_outcome(job):
    state = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2, return_state=True)
    report = await state.result()
    assert report.succeeded
    run_id = state.state_details.flow_run_id

    found = await events_of_run(run_id, ["dms.table.loaded", "dms.ingestion.succeeded"], 4)
    loaded = {e.resource.id: e for e in found if e.event == "dms.table.loaded"}
    assert set(loaded) == {
        "s3://postgres-repo/bookings/tickets/", "s3://postgres-repo/bookings/flights/",
        "s3://postgres-repo/bookings/empty_one/",
    }  # fmt: skip
    tickets = loaded["s3://postgres-repo/bookings/tickets/"]
    assert tickets.resource["prefect.resource.name"] == "bookings.tickets"
    assert (tickets.payload["rows"], tickets.payload["s3_rows"]) == (5000, 5000)
    assert tickets.payload["s3_objects"] == 1
    assert tickets.payload["s3_bytes"] > 0
    roles = {r.role: r.id for r in tickets.related}
    assert roles["dms-replication-task"] == report.task_arn
    assert roles["dms-replication"] == "dms.replication-task.postgres-migration-test"
    assert roles["flow-run"] == f"prefect.flow-run.{run_id}"  # Prefect's own context

    (succeeded,) = [e for e in found if e.event == "dms.ingestion.succeeded"]
    assert succeeded.resource.id == "dms.replication-task.postgres-migration-test"
    assert succeeded.payload["tables"] == 3
    assert succeeded.payload["rows"] == 5300
    assert succeeded.payload["stop_reason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"


async def test_a_failed_run_emits_ingestion_failed_with_the_reason(job):
    write_config(job, [{"schema_name": "nowhere", "table_name": "%"}])
    state = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2, return_state=True)
    assert state.is_failed()
    with pytest.raises(ReplicationTaskFailedError):
        await state.result()

    (failed,) = await events_of_run(
        state.state_details.flow_run_id, ["dms.ingestion.failed", "dms.table.loaded"], 1
    )
    assert failed.event == "dms.ingestion.failed"
    assert "No tables were found" in failed.payload["reason"]
    assert failed.resource.id == "dms.replication-task.postgres-migration-test"
