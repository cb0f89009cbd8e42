"""The ``dms-ingestion`` flow: ensure → start → wait → monitor (a subflow per table) → report.

Example (a notebook; ARNs in the environment or ``.env``):
    >>> from flows import dms_ingestion
    >>> report = await dms_ingestion(config_path="config/dms_config.json")  # doctest: +SKIP
    >>> report  # renders as a table  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.client.schemas.objects import FlowRun, State

from dms_spec.status import StartType, TableState, TaskStatus
from flows import events, run_logging
from flows.aws import aws_clients
from flows.config import DmsIngestionConfig, load_config
from flows.decisions import Ensured, should_resume, task_succeeded
from flows.dms_hook import DmsHook
from flows.exceptions import ReplicationTaskFailedError
from flows.monitoring import MonitorOutcome, monitor_replication_task
from flows.preflight import run_preflight, serverless_assessment_settings, serverless_preflight
from flows.report import IngestionReport, Preflight, TableReport
from flows.table_flows import TableTracker
from flows.target import TargetEndpoint
from flows.tasks import (
    EnsuredTask,
    delete_replication_task,
    describe_target_endpoint,
    ensure_replication_config,
    ensure_replication_task,
    reconcile_s3_output,
    start_replication_task,
    stop_replication_task,
    wait_for_full_load_start,
)

run_logging.install()

DEFAULT_CONFIG_PATH = "config/dms_config.json"


def _config_from_parameters(parameters: dict[str, Any]) -> DmsIngestionConfig:
    return load_config(
        parameters.get("config_path"),
        poll_interval_seconds=parameters.get("poll_interval_seconds"),
        timeout_seconds=parameters.get("timeout_seconds"),
        **(parameters.get("overrides") or {}),
    )


async def stop_task_on_cancellation(
    flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]
) -> None:
    """Flow hook: when a run is cancelled, stop its DMS task (if ``stop_task_on_cancel``)."""
    config = _config_from_parameters(flow_run.parameters)
    if not config.stop_task_on_cancel:
        return
    hook = (await aws_clients(flow_run.parameters.get("aws_credentials_block"))).dms
    if config.serverless:
        found = await asyncio.to_thread(hook.find_config, config.dms_task_name)
        arn = found["ReplicationConfigArn"] if found else None
        task = await asyncio.to_thread(hook.describe_task, arn) if arn else None
    else:
        task = await asyncio.to_thread(hook.find_task, config.dms_task_name)
    if task is not None and task["Status"] in (TaskStatus.RUNNING, TaskStatus.STARTING):
        await asyncio.to_thread(hook.stop_task, task["ReplicationTaskArn"])
        logging.getLogger(__name__).warning(
            "Flow run cancelled: stopped %s %s",
            "DMS Serverless replication" if config.serverless else "replication task",
            config.dms_task_name,
        )


def _artifact_key(identifier: str, what: str) -> str:
    return f"dms-{identifier.lower()}-{what}"


@flow(
    name="dms-ingestion",
    description="Run an AWS DMS replication task (or DMS Serverless replication) from PostgreSQL "
    "to S3 and report per table.",
    on_cancellation=[stop_task_on_cancellation],
    persist_result=False,
)
async def dms_ingestion(
    config_path: str | None = DEFAULT_CONFIG_PATH,
    aws_credentials_block: str | None = None,
    poll_interval_seconds: float | None = None,
    timeout_seconds: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> IngestionReport:
    """Create or reuse, start, wait for and monitor a DMS replication task; report on every table.

    Args:
        config_path: the job's JSON config (``dms_config.json`` format); None for env/.env only.
        aws_credentials_block: name of a prefect-aws ``AwsCredentials`` block; None for the
            default AWS credential chain. Local endpoints come from the standard environment.
        poll_interval_seconds: overrides the config's poll interval.
        timeout_seconds: overrides the config's timeout.
        overrides: any other config keys, winning over file and environment.

    Returns:
        The report (also published as Prefect artifacts).

    Raises:
        ConfigError: invalid config (nothing was sent to AWS).
        TargetMismatchError: the config contradicts the target endpoint (nothing was started).
        ReplicationTaskFailedError: the task failed, stopped early or left tables in error, or
            the rows in S3 differ from DMS's counts; the message has the status, StopReason,
            LastFailureMessage, tables and mismatches; ``.report`` the rest.
    """
    started_at = datetime.now(UTC)
    started = time.monotonic()
    config = load_config(
        config_path,
        poll_interval_seconds=poll_interval_seconds,
        timeout_seconds=timeout_seconds,
        **(overrides or {}),
    )
    facts = _RunFacts()
    try:
        return await _ingest(config, aws_credentials_block, facts, started_at, started)
    except Exception as exc:
        if not facts.announced:  # failed before its report: the event says why
            events.emit(
                events.INGESTION_FAILED,
                events.replication_resource(config.dms_task_name, config.serverless),
                {"status": "unknown", "reason": str(exc), "tables": 0, "rows": 0,
                 "elapsed_seconds": round(time.monotonic() - started, 3)},
                events.related(facts.arn, config.serverless),
            )  # fmt: skip
        raise


@dataclass
class _RunFacts:
    """What a run has learnt, for the event of a run that fails before its report."""

    arn: str | None = None
    announced: bool = False


async def _ingest(
    config: DmsIngestionConfig,
    aws_credentials_block: str | None,
    facts: _RunFacts,
    started_at: datetime,
    started: float,
) -> IngestionReport:
    """The flow's body (``dms_ingestion`` documents it)."""
    logger = get_run_logger()
    clients = await aws_clients(aws_credentials_block)  # one block load, one hook for the run
    hook = clients.dms
    target = await describe_target_endpoint(config, hook)
    logger.info(
        "%s %s: %s of %d selection(s) to %s",
        "DMS Serverless replication" if config.serverless else "Task", config.dms_task_name,
        config.migration_type, len(config.table_mappings) or 1, target.url(),
    )  # fmt: skip

    ensure = ensure_replication_config if config.serverless else ensure_replication_task
    ensured = await ensure(config, hook)
    facts.arn = ensured.arn
    preflight = await _preflight(ensured, config, target, hook, clients.s3)
    start_type: str | None = None
    if ensured.action != Ensured.ATTACHED:
        # DMS Serverless assesses within StartReplication; a task was assessed above.
        assessment = serverless_assessment_settings(config) if config.serverless else None
        start_type = await start_replication_task(
            ensured, config.rerun_start_type, hook, assessment[0] if assessment else None
        )
        if assessment is not None:
            preflight = await serverless_preflight(
                ensured.arn, assessment[1], config, hook, clients.s3
            )
        await wait_for_full_load_start(ensured.arn, config, hook)

    outcome, reloads = await _monitor_with_resumes(ensured.arn, config, hook)
    tables = sorted(
        (TableReport.from_statistics(s) for s in outcome.statistics),
        key=lambda t: (t.schema_name, t.table_name),
    )
    # Judged on the state that ended monitoring (a running CDC task with its tables loaded).
    succeeded = task_succeeded(outcome.task, config.migration_type, [t.table_state for t in tables])
    if config.stop_after_full_load and outcome.task.get("Status") == TaskStatus.RUNNING:
        # The report describes the task as it ends up: stopped, not as last monitored.
        outcome.task = await stop_replication_task(ensured.arn, config, hook)
    verification = None
    if config.verify_s3 and succeeded:
        reconciled = await reconcile_s3_output(config, target, tables, clients.s3)
        verification, tables = reconciled.verification, reconciled.apply(tables)
    task_stats = outcome.task.get("ReplicationTaskStats", {})
    report = IngestionReport(
        task_identifier=config.dms_task_name,
        task_arn=None if config.serverless else ensured.arn,
        replication_config_arn=ensured.arn if config.serverless else None,
        migration_type=str(config.migration_type),
        target=target.url(),
        status=outcome.task.get("Status", "unknown"),
        stop_reason=outcome.task.get("StopReason"),
        last_failure_message=outcome.task.get("LastFailureMessage"),
        start_type=start_type,
        succeeded=succeeded and (verification is None or verification.ok),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        elapsed_seconds=round(time.monotonic() - started, 3),
        task_elapsed_seconds=task_stats["ElapsedTimeMillis"] / 1000
        if "ElapsedTimeMillis" in task_stats
        else None,
        full_load_progress_percent=task_stats.get("FullLoadProgressPercent"),
        tables=tables,
        s3_verification=verification,
        dms_api_calls=dict(hook.calls),
        max_monitoring_calls_per_poll=outcome.max_calls_per_poll,
        transient_errors=hook.transient_errors,
        sdk_retries=hook.sdk_retries,
        table_reloads=reloads,
        preflight=preflight,
    )
    if report.succeeded and config.delete_task_after_success:
        await delete_replication_task(ensured.arn, config, hook)
        logger.info("Deleted %s %s",
                    "replication config" if config.serverless else "replication task",
                    config.dms_task_name)  # fmt: skip
        report.dms_api_calls = dict(hook.calls)
    await _publish(report)
    _announce(report, config, target)
    facts.announced = True
    if not report.succeeded:
        raise ReplicationTaskFailedError(report.failure_message(), report)
    logger.info(
        "Done: %d tables, %s rows, %.1f s",
        len(report.tables),
        f"{report.total_rows:,}",
        report.elapsed_seconds,
    )
    return report


def _announce(report: IngestionReport, config: DmsIngestionConfig, target: TargetEndpoint) -> None:
    """The run's Prefect events (``flows/events.py``): ``dms.table.loaded`` for each table whose
    load completed (and whose S3 rows matched, when checked), then the run's outcome."""
    arn = report.replication_config_arn or report.task_arn
    for table in report.tables:
        mismatch = table.s3_rows is not None and table.s3_rows != table.full_load_rows
        if table.table_state == TableState.COMPLETED and not mismatch:
            url = target.url(table.schema_name, table.table_name)
            events.table_loaded(url, table.model_dump(), config.dms_task_name, arn,
                                config.serverless)  # fmt: skip
    payload: dict[str, Any] = {
        "status": report.status, "stop_reason": report.stop_reason,
        "tables": len(report.tables), "rows": report.total_rows,
        "elapsed_seconds": report.elapsed_seconds,
    }  # fmt: skip
    if not report.succeeded:
        payload["reason"] = report.failure_message()
    events.emit(
        events.INGESTION_SUCCEEDED if report.succeeded else events.INGESTION_FAILED,
        events.replication_resource(config.dms_task_name, config.serverless),
        payload,
        events.related(arn, config.serverless),
    )


async def _preflight(
    ensured: EnsuredTask,
    config: DmsIngestionConfig,
    target: TargetEndpoint,
    hook: DmsHook,
    s3: Any,
) -> Preflight | None:
    """A task's premigration assessment before its start (``preflight``); None when off,
    attached, or a DMS Serverless replication (assessed by its start)."""
    if config.preflight == "off" or ensured.action == Ensured.ATTACHED or config.serverless:
        return None
    return await run_preflight(ensured.arn, config, target, hook, s3)


async def _monitor_with_resumes(
    arn: str, config: DmsIngestionConfig, hook: DmsHook
) -> tuple[MonitorOutcome, int]:
    """Monitor; if a finished load left tables in error, resume while the reload budget lasts.

    ``reload_errored_tables`` is one budget for the whole run: each ReloadTables call while the
    task runs and each resume after it spends one.
    """
    reloads = 0
    while True:
        tracker = TableTracker(max_concurrent=config.max_concurrent_table_flows)
        try:
            outcome = await monitor_replication_task(
                arn, config, hook, tracker, config.reload_errored_tables - reloads
            )
            tracker.publish(outcome.statistics, final=True)
        finally:
            await tracker.close()
        reloads += outcome.table_reloads
        if not should_resume(
            outcome.task, outcome.statistics, config.reload_errored_tables - reloads
        ):
            return outcome, reloads
        reloads += 1
        get_run_logger().warning(
            "Tables in error after the load; resuming to reload them (reload %d of %d)",
            reloads,
            config.reload_errored_tables,
        )
        await start_replication_task(
            EnsuredTask(arn, config.dms_task_name, Ensured.RESUMED, previously_run=True),
            StartType.RESUME_PROCESSING,
            hook,
        )
        await wait_for_full_load_start(arn, config, hook)


async def _publish(report: IngestionReport) -> None:
    await acreate_table_artifact(
        key=_artifact_key(report.task_identifier, "tables"),
        table=report.table_rows(),
        description=f"Tables of replication task {report.task_identifier}",
    )
    await acreate_markdown_artifact(
        key=_artifact_key(report.task_identifier, "report"),
        markdown=report.summary_markdown(),
        description=f"DMS ingestion report for {report.task_identifier}",
    )
