"""600 tables selected by a wildcard: DMS calls per poll stay flat, every table gets one subflow."""

from __future__ import annotations

import math
import time

import pytest

from flows import dms_ingestion
from tests.integration.conftest import write_config
from tests.integration.test_flow import child_runs
from tests.pipeline import provision

pytestmark = pytest.mark.e2e

TABLES = 600


@pytest.mark.timeout(600)  # ~190 s alone; it runs beside the rest of the suite (run_suite.sh)
async def test_600_tables_by_wildcard(
    dms, s3, source_db, aws_endpoints, prefect_api, monkeypatch, tmp_path
):
    source_db.execute(
        "CREATE SCHEMA wide; DO $$ BEGIN FOR i IN 1..600 LOOP "
        "EXECUTE format('CREATE TABLE wide.t%s AS SELECT g AS id FROM generate_series(1, 3) g', i); "
        "END LOOP; END $$"
    )
    pipeline = provision(dms, s3, source_db, bucket="postgres-repo")
    monkeypatch.setenv("DMS_SOURCE_ENDPOINT_ARN", pipeline.source_arn)
    monkeypatch.setenv("DMS_TARGET_ENDPOINT_ARN", pipeline.target_arn)
    monkeypatch.setenv("DMS_REPLICATION_INSTANCE_ARN", pipeline.instance_arn)
    config = tmp_path / "dms_config.json"
    write_config(config, [{"schema_name": "wide", "table_name": "t%"}])

    started = time.monotonic()
    state = await dms_ingestion(
        config_path=str(config), poll_interval_seconds=0.5, return_state=True
    )
    report = await state.result()
    elapsed = time.monotonic() - started

    assert report.succeeded, report.failure_message()
    assert len(report.tables) == TABLES
    assert all(t.full_load_rows == 3 for t in report.tables)
    assert report.max_monitoring_calls_per_poll <= math.ceil(TABLES / 500) + 1
    children = await child_runs(state.state_details.flow_run_id)
    assert len(children) == TABLES
    assert len({run.name for run in children}) == TABLES
    assert all(run.state.is_completed() for run in children)
    print(f"\n600 tables: flow {elapsed:.1f} s, DMS task {report.task_elapsed_seconds} s, "
          f"{report.max_monitoring_calls_per_poll} DMS calls per poll")  # fmt: skip
