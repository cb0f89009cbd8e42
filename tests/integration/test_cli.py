"""``dms-ingestion run`` as a user runs it: a subprocess, exit codes, messages, the JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import write_config
from tests.pipeline import provision

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows", "run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def run_job(
    config: Path, report_path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "--config",
        str(config),
        "--poll-interval",
        "0.5",
        "--report-json",
        str(report_path),
        env=env,
    )


@pytest.fixture
def cli_env(dms, s3, source_db, localdms, s3_server, tmp_path):
    source_db.execute("CREATE SCHEMA bookings")
    source_db.execute(
        "CREATE TABLE bookings.tickets AS SELECT g AS id FROM generate_series(1, 1000) g"
    )
    pipeline = provision(dms, s3, source_db, bucket="postgres-repo")
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE": localdms.url,
        "AWS_ENDPOINT_URL_S3": s3_server.url,
        "SOURCE_ENDPOINT_ARN": pipeline.source_arn,
        "TARGET_ENDPOINT_ARN": pipeline.target_arn,
        "REPLICATION_INSTANCE_ARN": pipeline.instance_arn,
    }


@pytest.mark.e2e
def test_cli_runs_on_a_fresh_temporary_prefect_api(cli_env, tmp_path):
    env = {**cli_env, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    config, report_path = tmp_path / "dms_config.json", tmp_path / "report.json"
    write_config(config, [{"schema_name": "bookings", "table_name": "tickets"}])

    result = run_job(config, report_path, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "postgres-migration-test succeeded: stopped (Stop Reason FULL_LOAD_ONLY_FINISHED)"
        in result.stdout
    )
    assert "bookings             tickets" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["task_identifier"] == "postgres-migration-test"
    assert report["status"] == "stopped"
    assert report["stop_reason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    (table,) = report["tables"]
    assert (table["schema_name"], table["table_name"], table["table_state"], table["full_load_rows"]) == (
        "bookings", "tickets", "Table completed", 1000,
    )  # fmt: skip


def test_cli_failure_prints_the_reason_without_a_traceback(cli_env, prefect_api, tmp_path):
    config, report_path = tmp_path / "dms_config.json", tmp_path / "report.json"
    write_config(config, [{"schema_name": "bookings", "table_name": "missing_table"}])

    result = run_job(config, report_path, env=cli_env)

    assert result.returncode == 1
    assert "error: Replication task postgres-migration-test ended failed" in result.stderr
    assert "No tables were found at task initialization" in result.stderr
    assert "Traceback" not in result.stderr.split("error: Replication task")[-1]
    assert json.loads(report_path.read_text())["status"] == "failed"


def test_cli_refuses_bad_config_before_any_call(tmp_path):
    config = tmp_path / "dms_config.json"
    config.write_text(
        json.dumps(
            {"dms_task_name": "x", "s3_bucket_name": "postgres-repo", "migration_type": "full"}
        )
    )
    env = {
        k: v for k, v in os.environ.items() if "ENDPOINT_ARN" not in k and "INSTANCE_ARN" not in k
    }

    result = run_cli("--config", str(config), env=env)

    assert result.returncode == 2
    assert (
        "migration_type: Input should be 'full-load', 'cdc' or 'full-load-and-cdc' (got 'full')"
        in result.stderr
    )
    assert "source_endpoint_arn: missing" in result.stderr
    assert "Traceback" not in result.stderr
