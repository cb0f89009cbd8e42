"""The CDC watch against localdms publishing to moto's CloudWatch, a real PostgreSQL and a real
Prefect server: each verdict from a real state, and its event read back from Prefect's API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prefect_aws.credentials import _get_client_cached

from flows import dms_ingestion
from flows.cdc_watch import dms_cdc_watch
from flows.exceptions import CdcUnhealthyError, ReplicationTaskFailedError
from localdms.server import ThreadedLocalDms
from sandbox.tcp_proxy import TcpProxy
from tests.integration.conftest import write_config
from tests.integration.test_flow_events import events_of_run

pytestmark = pytest.mark.integration

WATCH = {"cdc_metrics_period_seconds": 1, "cdc_watch_window_seconds": 20}
"""localdms publishes every second here; a minute on AWS."""


@pytest.fixture
def s3_proxy(s3_server: Any) -> Iterator[TcpProxy]:
    """A forwarder in front of moto's S3 that the test can make refuse connections."""
    with TcpProxy(int(s3_server.url.rsplit(":", 1)[1])) as proxy:
        yield proxy


@pytest.fixture
def localdms(
    tmp_path: Any, s3_server: Any, s3_proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadedLocalDms]:
    """localdms publishing its metrics every second to moto's CloudWatch."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", s3_server.url)
    with ThreadedLocalDms(
        state_dir=tmp_path / "localdms", transition_seconds=0.2, metrics_period=1
    ) as server:
        yield server


@pytest.fixture
def cdc_job(job: Any, s3_proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The flow's job as full-load-and-cdc, every S3 client (localdms's too) through the proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_proxy.url)
    _get_client_cached.cache_clear()
    write_config(job, [{"schema_name": "bookings", "table_name": "%"}],
                 migration_type="full-load-and-cdc")  # fmt: skip
    return job


async def watch(job: Any, **overrides: Any) -> tuple[Any, Any]:
    """One watch run: (its report, its flow run id)."""
    state = await dms_cdc_watch(
        config_path=str(job), overrides={**WATCH, **overrides}, return_state=True
    )
    result = await state.result(raise_on_failure=False)
    report = result.report if isinstance(result, CdcUnhealthyError) else result
    assert not isinstance(report, BaseException), report
    return report, state.state_details.flow_run_id


def write_changes(source_db: Any, first: int, count: int = 20) -> None:
    for key in range(first, first + count):
        source_db.execute("INSERT INTO bookings.flights VALUES (%s)", (key,))


async def test_healthy_while_capturing_then_lagging_while_s3_refuses_then_healthy(
    cdc_job, source_db, s3_proxy
):
    loaded = await dms_ingestion(config_path=str(cdc_job), poll_interval_seconds=0.2)
    assert loaded.succeeded, loaded.failure_message()
    write_changes(source_db, 10_000)
    time.sleep(3)  # the changes written, a few periods of metrics

    healthy, run_id = await watch(cdc_job)
    assert healthy.verdict == "healthy", healthy.reason
    assert healthy.status == "running"
    assert healthy.latency_source_seconds is not None
    assert healthy.series, "no latency series read from CloudWatch"
    flights = next(t for t in healthy.tables if t.table_name == "flights")
    assert flights.inserts == 20
    (event,) = await events_of_run(run_id, ["dms.cdc.healthy"], 1)
    assert event.resource.id == "dms.replication-task.postgres-migration-test"
    assert event.payload["verdict"] == "healthy"
    assert {r.role for r in event.related} >= {"dms-replication-task", "flow-run"}

    s3_proxy.refuse()
    write_changes(source_db, 20_000)
    time.sleep(4)  # the changes wait: CDCLatencyTarget rises
    lagging, run_id = await watch(cdc_job, max_cdc_latency_seconds=2)
    assert lagging.verdict == "lagging", lagging.reason
    assert "over max_cdc_latency_seconds (2 s)" in lagging.reason
    (event,) = await events_of_run(run_id, ["dms.cdc.lagging"], 1)
    assert event.payload["latency_target_seconds"] > 2

    s3_proxy.accept()
    deadline = time.monotonic() + 60
    while (again := (await watch(cdc_job, max_cdc_latency_seconds=2))[0]).verdict != "healthy":
        assert time.monotonic() < deadline, again.reason  # capture restarts, writes the backlog
        time.sleep(1)


async def test_stalled_when_the_metrics_stop_then_failed_after_a_fatal_error(
    cdc_job, source_db, dms, localdms
):
    loaded = await dms_ingestion(config_path=str(cdc_job), poll_interval_seconds=0.2)
    assert loaded.succeeded, loaded.failure_message()
    time.sleep(2)

    # The metrics withheld while DMS says running: what a watch sees of a task gone silent.
    assert localdms.server.metrics is not None
    localdms.server.metrics.stop()
    time.sleep(4)  # over three periods without a datapoint
    stalled, _ = await watch(cdc_job)
    assert stalled.verdict == "stalled", stalled.reason
    assert "newest CDCLatencySource datapoint is" in stalled.reason

    # The slot dropped under the running task: DMS's fatal error, the task fails.
    source_db.execute(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active_pid IS NOT NULL"
    )
    deadline = time.monotonic() + 30
    while source_db.fetchall("SELECT 1 FROM pg_replication_slots"):
        try:
            source_db.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            )
        except Exception:  # still in use for a moment
            time.sleep(0.2)
        assert time.monotonic() < deadline
    deadline = time.monotonic() + 60
    while dms.describe_replication_tasks()["ReplicationTasks"][0]["Status"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.5)

    failed, run_id = await watch(cdc_job)
    assert failed.verdict == "failed", failed.reason
    assert "does not exist on the PostgreSQL source" in failed.reason
    (event,) = await events_of_run(run_id, ["dms.cdc.failed"], 1)
    assert event.payload["status"] == "failed"


async def test_tables_suspended_while_the_task_runs(cdc_job, source_db):
    """A table DMS suspends in the full load (ARRAY columns, no primary key): the task goes on
    capturing the others, and the watch names the suspended one."""
    source_db.execute("CREATE TABLE bookings.tags (labels text[])")
    source_db.execute("INSERT INTO bookings.tags VALUES ('{a,b}')")
    with pytest.raises(ReplicationTaskFailedError, match=r"bookings\.tags"):
        await dms_ingestion(config_path=str(cdc_job), poll_interval_seconds=0.2)
    time.sleep(2)

    suspended, _ = await watch(cdc_job)
    assert suspended.verdict == "tables-suspended", suspended.reason
    assert "bookings.tags" in suspended.reason
    assert suspended.status == "running"


async def test_on_recoverable_stop_resume_starts_the_task_again(cdc_job, source_db, dms, s3_proxy):
    """RecoverableErrorCount 0 and S3 refusing: DMS fails the task with RECOVERABLE_ERROR; the
    watch reports it and, with on_recoverable_stop: resume, starts it with resume-processing."""
    write_config(cdc_job, [{"schema_name": "bookings", "table_name": "%"}],
                 migration_type="full-load-and-cdc",
                 replication_task_settings={"ErrorBehavior": {"RecoverableErrorCount": 0}})  # fmt: skip
    loaded = await dms_ingestion(config_path=str(cdc_job), poll_interval_seconds=0.2)
    assert loaded.succeeded, loaded.failure_message()
    s3_proxy.refuse()
    write_changes(source_db, 30_000)
    deadline = time.monotonic() + 90
    while dms.describe_replication_tasks()["ReplicationTasks"][0]["Status"] != "failed":
        assert time.monotonic() < deadline, "the task did not fail with S3 refusing"
        time.sleep(0.5)
    s3_proxy.accept()

    resumed, _ = await watch(cdc_job, on_recoverable_stop="resume")
    assert resumed.verdict == "failed"
    assert "RECOVERABLE_ERROR" in (resumed.stop_reason or "")
    assert resumed.resumed is True
    task = dms.describe_replication_tasks()["ReplicationTasks"][0]
    assert task["Status"] in ("starting", "running"), task
    deadline = time.monotonic() + 60
    while (again := (await watch(cdc_job))[0]).verdict != "healthy":
        assert time.monotonic() < deadline, again.reason
        time.sleep(1)


def test_the_cli_watch_prints_the_verdict_and_exits_1_unless_healthy(job, capsys, tmp_path):
    """``dms-ingestion watch`` on a task whose full load finished (so it is stopped)."""
    import asyncio

    from flows.cli import main

    loaded = asyncio.run(dms_ingestion(config_path=str(job), poll_interval_seconds=0.2))
    assert loaded.succeeded
    written = tmp_path / "watch.json"
    assert main(["watch", "--config", str(job), "--report-json", str(written)]) == 1
    out, err = capsys.readouterr()
    report = json.loads(written.read_text())
    assert (report["verdict"], report["status"]) == ("stopped", "stopped")
    assert {t["table_name"] for t in report["tables"]} == {"tickets", "flights", "empty_one"}
    assert "# CDC watch: postgres-migration-test is **stopped**" in out
    assert "error: postgres-migration-test is stopped: the task is stopped" in err
    assert "Traceback" not in err
