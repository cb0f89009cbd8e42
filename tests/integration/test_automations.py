"""What ships to act on the flows' events, fired on a real Prefect server (its triggers and
actions services): the deployment trigger of prefect.yaml starting the downstream flow per landed
table, and the CDC alerts of ``automations/`` notifying a webhook (a local HTTP server) when the
watch says unhealthy and when the watch goes silent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.exceptions import ObjectAlreadyExists

import automations
from flows import dms_ingestion
from flows.cdc_watch import dms_cdc_watch
from flows.exceptions import CdcUnhealthyError
from flows.lake import dms_lake
from flows.landed_table import query_landed_table

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Webhook:
    """An HTTP server on loopback keeping the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, subject: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.received:
                if body.get("subject", "").startswith(subject):
                    return body
            time.sleep(0.2)
        raise AssertionError(f"no notification {subject!r}; received {self.received}")


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


async def test_the_cdc_alerts_notify_a_webhook_then_say_the_watch_went_silent(job, webhook):
    block_name = f"dms-alerts-{secrets.token_hex(3)}"
    await CustomWebhookNotificationBlock(
        name="dms-alerts", url=webhook.url, method="POST", allow_private_urls=True,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    ).save(block_name)  # fmt: skip
    ids = await automations.create(block_name, silence_seconds=10)
    try:
        loaded = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)
        assert loaded.succeeded  # a full load: the task ends stopped
        with pytest.raises(CdcUnhealthyError):
            await dms_cdc_watch(config_path=str(job))

        alert = await asyncio.to_thread(
            webhook.wait_for, "DMS CDC stopped: postgres-migration-test"
        )
        assert (
            "is stopped: the task is stopped: Stop Reason FULL_LOAD_ONLY_FINISHED" in alert["body"]
        )
        # No watch after that one: the proactive automation says so once its window passed.
        silent = await asyncio.to_thread(webhook.wait_for, "DMS CDC watch silent")
        assert "the CDC watch is not running" in silent["body"]
    finally:
        async with get_client() as client:
            for automation_id in ids:
                await client.delete_automation(automation_id)


@contextlib.asynccontextmanager
async def deployed(name: str, full_name: str) -> AsyncIterator[Any]:
    """``prefect deploy --name <name>`` from prefect.yaml (on the dms-process pool), as a user
    deploys it; the deployment is deleted afterwards, so its trigger fires for no other test."""
    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):  # another test made it
            await client.create_work_pool(WorkPoolCreate(name="dms-process", type="process"))
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--name", name],
        cwd=ROOT, env={**os.environ, "DMS_INGESTION_HOME": str(ROOT)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(full_name)
    try:
        yield deployment
    finally:
        async with get_client() as client:
            await client.delete_deployment(deployment.id)


async def runs_of(deployment: Any, at_least: int, timeout: float = 60) -> list[Any]:
    """The deployment's flow runs, once ``at_least`` exist (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )
            if len(runs) >= at_least or time.monotonic() > deadline:
                return list(runs)
            await asyncio.sleep(0.5)


async def test_the_deployment_trigger_runs_the_downstream_flow_for_each_landed_table(job):
    async with deployed("landed-table-local", "dms-landed-table/landed-table-local") as deployment:
        loaded = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)
        assert loaded.succeeded

        runs = await runs_of(deployment, 3)
        parameters = sorted((r.parameters["schema_name"], r.parameters["table_name"],
                             r.parameters["url"]) for r in runs)  # fmt: skip
        assert parameters == [
            ("bookings", "empty_one", "s3://postgres-repo/bookings/empty_one/"),
            ("bookings", "flights", "s3://postgres-repo/bookings/flights/"),
            ("bookings", "tickets", "s3://postgres-repo/bookings/tickets/"),
        ]
        assert {r.parameters["aws_credentials_block"] for r in runs} == {"dms-local"}
        # What such a run does (here with this test's credentials, not the dms-local block).
        landed = await query_landed_table(
            url="s3://postgres-repo/bookings/tickets/", schema_name="bookings",
            table_name="tickets",
        )  # fmt: skip
        assert (landed["objects"], landed["rows"]) == (1, 5000)


async def test_the_lake_deployment_runs_for_each_landed_table_and_applies_it(job, tmp_path):
    """prefect.yaml's lake-local trigger: one dms-lake run per table loaded, with that table as
    its parameter; such a run (here with this test's credentials) applies the table."""
    async with deployed("lake-local", "dms-lake/lake-local") as deployment:
        assert deployment.parameters["config_path"] == "config/dms_config_lake.json"
        loaded = await dms_ingestion(config_path=str(job), poll_interval_seconds=0.2)
        assert loaded.succeeded

        runs = await runs_of(deployment, 3)
        assert sorted(tuple(r.parameters["tables"]) for r in runs) == [
            ("bookings.empty_one",), ("bookings.flights",), ("bookings.tickets",),
        ]  # fmt: skip
        (tickets,) = [r for r in runs if r.parameters["tables"] == ["bookings.tickets"]]
        lake = await dms_lake(
            config_path=str(job), tables=tickets.parameters["tables"],
            overrides={"lake_catalog_uri": f"sqlite:///{tmp_path}/catalog.db", "lake_tables": {
                "bookings.tickets": {"key": ["id"], "column_types": {"id": "int", "name": "string"}}}},
        )  # fmt: skip
        assert [(t.table_name, t.rows) for t in lake.tables] == [("tickets", 5000)]
