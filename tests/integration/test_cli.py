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
    assert "No PREFECT_API_URL: starting a temporary local Prefect API" in result.stderr
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


async def run_logs(config: Path) -> str:
    """Every log line the Prefect API holds for the CLI's run of ``config`` and its subflows."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterParentTaskRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        # The newest top-level runs: the session's server also holds other tests' runs (the
        # 600-table test alone makes 600 subflow runs).
        top_level = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )
        runs = [run for run in top_level if run.parameters.get("config_path") == str(config)]
        assert len(runs) == 1, f"{len(runs)} runs of {config}"
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[runs[0].id])
            ),
            limit=200,
        )
        ids = [runs[0].id, *(child.id for child in children)]
        messages: list[str] = []
        while page := await client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200, offset=len(messages)
        ):
            messages.extend(log.message for log in page)
    return "\n".join(messages)


BROKEN_VIEW = [{"rule-type": "selection", "rule-id": "9", "rule-name": "views", "rule-action": "include",
                "object-locator": {"schema-name": "bookings", "table-name": "broken", "table-type": "view"}}]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "code", "says"),
    [
        ("no-table-matched", 1, "No tables were found at task initialization"),
        ("table-error", 1, "Tables in error: bookings.broken (Table error)"),
        ("bucket-disagrees", 2, "s3_bucket_name is 'another-bucket', but the target endpoint"),
        ("missing-credentials-block", 2, "AwsCredentials block 'no-such-block' was not found"),
        ("timeout", 1, "within 1 s"),
    ],
)
async def test_expected_failures_print_the_reason_and_no_traceback_anywhere(
    cli_env, source_db, prefect_api, tmp_path, case, code, says
):
    config, report_path = tmp_path / "dms_config.json", tmp_path / "report.json"
    mappings = [{"schema_name": "bookings", "table_name": "tickets"}]
    extra: dict[str, object] = {}
    args = ["--config", str(config), "--poll-interval", "0.5", "--report-json", str(report_path)]
    if case == "no-table-matched":
        mappings = [{"schema_name": "bookings", "table_name": "missing_table"}]
    elif case == "table-error":
        source_db.execute(
            "CREATE VIEW bookings.broken AS SELECT 1 / (id - id) AS boom FROM bookings.tickets"
        )
        extra = {"table_mapping_rules": BROKEN_VIEW}
    elif case == "bucket-disagrees":
        extra = {"s3_bucket_name": "another-bucket"}
    elif case == "missing-credentials-block":
        args += ["--aws-credentials-block", "no-such-block"]
    elif case == "timeout":
        # A load that takes 5 s whatever the machine: each row of this view sleeps 5 ms.
        source_db.execute(
            "CREATE VIEW bookings.slow AS SELECT t.id FROM bookings.tickets t, "
            "LATERAL (SELECT pg_sleep(0.005 + 0 * t.id)) AS nap"
        )
        mappings = []
        extra = {"table_mapping_rules": [{**BROKEN_VIEW[0], "object-locator": {
            "schema-name": "bookings", "table-name": "slow", "table-type": "view"}}]}  # fmt: skip
        args += ["--timeout", "1"]
    write_config(config, mappings, **extra)
    if case == "bucket-disagrees":  # write_config sets the right bucket; this one disagrees
        config.write_text(config.read_text().replace('"postgres-repo"', '"another-bucket"'))

    result = run_cli(*args, env=cli_env)

    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    assert says in result.stderr, output[-3000:]
    assert "Traceback" not in output, output
    assert "Traceback" not in await run_logs(config)
    if case in ("no-table-matched", "table-error"):
        assert json.loads(report_path.read_text())["status"] in ("failed", "stopped")


async def test_debug_keeps_the_tracebacks_of_expected_failures(cli_env, prefect_api, tmp_path):
    """The check above can fail: with --debug the same failure logs its traceback."""
    config = tmp_path / "dms_config.json"
    write_config(config, [{"schema_name": "bookings", "table_name": "missing_table"}])

    result = run_cli("--config", str(config), "--poll-interval", "0.5", "--debug", env=cli_env)

    assert result.returncode == 1
    assert "Traceback" in result.stdout + result.stderr
    assert "Traceback" in await run_logs(config)


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
