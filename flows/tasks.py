"""The flow's Prefect tasks: ensure, start, wait, monitor, verify, delete.

Every task is async and runs boto3 calls with ``asyncio.to_thread`` (a blocking call would stall
every concurrent subflow). Tasks retry with backoff only on transient errors (throttling, 5xx, lost
connections); anything else fails at once with its reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
from prefect import get_run_logger, task
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import TaskRunContext
from prefect.tasks import Task

from dms_spec.status import (
    MigrationType,
    StartType,
    TableState,
    TaskStatus,
)
from flows.aws import dms_hook, s3_client
from flows.config import DmsIngestionConfig
from flows.exceptions import (
    DmsApiError,
    ReplicationTaskConflictError,
    ReplicationTimeoutError,
    is_transient,
)
from flows.report import S3Verification, TableReport
from flows.table_flows import TableTracker

TRANSIENT_ERRORS: Counter[str] = Counter()
"""Transient errors retried, per flow run id (read by the flow for its report)."""

SETTLE_TIMEOUT_SECONDS = 1800


def retry_on_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry only throttling, 5xx and connection errors."""
    # In an async task Prefect dispatches ``result`` to a coroutine; ``_sync`` reads it in place.
    exception = state.result(raise_on_failure=False, _sync=True)  # type: ignore[call-overload]
    if isinstance(exception, BaseException) and is_transient(exception):
        TRANSIENT_ERRORS[str(task_run.flow_run_id)] += 1
        return True
    return False


RETRYABLE: dict[str, Any] = {
    "retries": 5,
    "retry_delay_seconds": [1, 2, 4, 8, 16],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
    "cache_policy": NONE,
}


@dataclass(frozen=True)
class EnsuredTask:
    """The replication task the run will use."""

    arn: str
    identifier: str
    action: str
    """created, modified, reused or attached."""
    previously_run: bool


def _has_run(task: dict[str, Any]) -> bool:
    return "ReplicationTaskStartDate" in task or task["Status"] in (
        TaskStatus.STOPPED,
        TaskStatus.FAILED,
    )


def _contains(current: Any, wanted: Any) -> bool:
    """Whether every value of ``wanted`` is already set in ``current`` (deeply)."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(
            _contains(current.get(k), v) for k, v in wanted.items()
        )
    return bool(current == wanted)


@task(name="ensure-replication-task", **RETRYABLE)
async def ensure_replication_task(
    config: DmsIngestionConfig, aws_credentials_block: str | None
) -> EnsuredTask:
    """Find the task by identifier; create it, or modify it to match the config. Never a duplicate.

    Raises:
        ReplicationTaskConflictError: the task is running (and ``if_running`` is ``fail``), or its
            endpoints, instance or migration type differ from the config (DMS cannot change them).
    """
    logger = get_run_logger()
    hook = await dms_hook(aws_credentials_block)
    name = config.dms_task_name
    delay = min(config.poll_interval_seconds, 15.0)
    mappings = config.table_mappings_document()
    settings = config.task_settings_document()
    existing = await asyncio.to_thread(hook.find_task, name)

    if existing is not None and existing["Status"] == TaskStatus.DELETING:
        logger.info("Task %s is being deleted; waiting before creating it again", name)
        await asyncio.to_thread(
            hook.wait_deleted, existing["ReplicationTaskArn"], delay, SETTLE_TIMEOUT_SECONDS
        )
        existing = None

    if existing is None:
        parameters: dict[str, Any] = {
            "ReplicationTaskIdentifier": name,
            "SourceEndpointArn": config.source_endpoint_arn,
            "TargetEndpointArn": config.target_endpoint_arn,
            "ReplicationInstanceArn": config.replication_instance_arn,
            "MigrationType": str(config.migration_type),
            "TableMappings": mappings,
            "Tags": [{"Key": "created-by", "Value": "dms-ingestion"}],
        }
        if settings:
            parameters["ReplicationTaskSettings"] = settings
        created = await asyncio.to_thread(hook.create_task, **parameters)
        arn = created["ReplicationTaskArn"]
        logger.info("Created replication task %s (%s); waiting until it is ready", name, arn)
        await _settle(hook, arn, delay)
        return EnsuredTask(arn, name, "created", previously_run=False)

    arn = existing["ReplicationTaskArn"]
    for field_name, key in (
        ("source_endpoint_arn", "SourceEndpointArn"),
        ("target_endpoint_arn", "TargetEndpointArn"),
        ("replication_instance_arn", "ReplicationInstanceArn"),
        ("migration_type", "MigrationType"),
    ):
        wanted = str(getattr(config, field_name))
        if existing.get(key) != wanted:
            raise ReplicationTaskConflictError(
                f"Replication task {name} exists with {key} {existing.get(key)}, but the config "
                f"asks for {wanted}. DMS cannot change a task's {key}: delete the task "
                f"(aws dms delete-replication-task --replication-task-arn {arn}) or choose another "
                "dms_task_name.",
                name,
                existing["Status"],
            )

    status = existing["Status"]
    if status in (TaskStatus.CREATING, TaskStatus.MODIFYING, TaskStatus.STOPPING):
        logger.info("Task %s is %s; waiting for it to settle", name, status)
        await _settle(hook, arn, delay)
        existing = await asyncio.to_thread(hook.find_task, name) or existing
        status = existing["Status"]
    if status in (TaskStatus.RUNNING, TaskStatus.STARTING):
        if config.if_running == "attach":
            logger.info("Task %s is already %s; attaching to it", name, status)
            return EnsuredTask(arn, name, "attached", previously_run=True)
        raise ReplicationTaskConflictError(
            f"Replication task {name} is already {status}. Wait for it to finish, stop it "
            f"(aws dms stop-replication-task --replication-task-arn {arn}), or run with "
            "if_running=attach to monitor it instead.",
            name,
            status,
        )

    changes: dict[str, Any] = {}
    if json.loads(existing.get("TableMappings") or "{}") != json.loads(mappings):
        changes["TableMappings"] = mappings
    if settings and not _contains(
        json.loads(existing.get("ReplicationTaskSettings") or "{}"), json.loads(settings)
    ):
        changes["ReplicationTaskSettings"] = settings
    if changes:
        logger.info("Task %s differs from the config (%s); modifying it", name, ", ".join(changes))
        await asyncio.to_thread(hook.modify_task, arn, **changes)
        await _settle(hook, arn, delay)
        return EnsuredTask(arn, name, "modified", previously_run=_has_run(existing))
    logger.info("Reusing replication task %s (%s, %s)", name, arn, status)
    return EnsuredTask(arn, name, "reused", previously_run=_has_run(existing))


async def _settle(hook: Any, arn: str, delay: float) -> None:
    """Wait until a created or modified task is ready, stopped or failed."""
    try:
        await asyncio.to_thread(
            hook.wait, "ReplicationTaskSettled", arn, delay, SETTLE_TIMEOUT_SECONDS
        )
    except botocore.exceptions.WaiterError as exc:
        response: dict[str, Any] = dict(exc.last_response or {})
        tasks = response.get("ReplicationTasks") or [{}]
        status = str(tasks[0].get("Status", "not found"))
        if "Max attempts exceeded" in str(exc):
            raise ReplicationTimeoutError(
                f"Replication task {arn} was still {status} after {SETTLE_TIMEOUT_SECONDS} s. Check "
                f"it with `aws dms describe-replication-tasks --filters Name=replication-task-arn,Values={arn}`."
            ) from exc
        raise ReplicationTaskConflictError(
            f"Replication task {arn} became {status} instead of ready after it was created or "
            "modified (someone is deleting it, or it vanished). Let the deletion finish and run the "
            "flow again: it will create the task anew.",
            arn,
            status,
        ) from exc


@task(name="start-replication-task", **RETRYABLE)
async def start_replication_task(
    ensured: EnsuredTask, rerun_start_type: str, aws_credentials_block: str | None
) -> str:
    """Start the task: ``start-replication`` on its first run, else ``rerun_start_type``.

    DMS accepts ``start-replication`` only once per task; if the task turns out to have run
    already, the start falls back to ``reload-target`` on DMS's exact refusal.

    Returns:
        The StartReplicationTaskType used.
    """
    logger = get_run_logger()
    hook = await dms_hook(aws_credentials_block)
    start_type = rerun_start_type if ensured.previously_run else StartType.START_REPLICATION
    try:
        await asyncio.to_thread(hook.start_task, ensured.arn, str(start_type))
    except DmsApiError as exc:
        if (
            exc.code != "InvalidParameterCombinationException"
            or start_type != StartType.START_REPLICATION
        ):
            raise
        logger.info("DMS refused start-replication (the task has run before); using reload-target")
        start_type = StartType.RELOAD_TARGET
        await asyncio.to_thread(hook.start_task, ensured.arn, str(start_type))
    logger.info("Started replication task %s with %s", ensured.identifier, start_type)
    return str(start_type)


@task(name="wait-for-full-load-start", **RETRYABLE)
async def wait_for_full_load_start(
    arn: str, config: DmsIngestionConfig, aws_credentials_block: str | None
) -> str:
    """Wait until the task runs, or has already finished its load (a success, not a race).

    Returns:
        The status reached (the monitor reports failures with their reasons).
    """
    hook = await dms_hook(aws_credentials_block)
    try:
        await asyncio.to_thread(
            hook.wait, "FullLoadStarted", arn, config.poll_interval_seconds, config.timeout_seconds
        )
    except botocore.exceptions.WaiterError as exc:
        if "Max attempts exceeded" in str(exc):
            raise ReplicationTimeoutError(
                f"Replication task {config.dms_task_name} did not start within {config.timeout_seconds:.0f} s."
            ) from exc
    task_description = await asyncio.to_thread(hook.describe_task, arn)
    return str(task_description["Status"])


@dataclass
class MonitorOutcome:
    """The task and its tables at the end of monitoring, with the cost of watching."""

    task: dict[str, Any]
    statistics: list[dict[str, Any]]
    calls: dict[str, int] = field(default_factory=dict)
    max_calls_per_poll: int = 0
    polls: int = 0
    table_reloads: int = 0


def monitoring_finished(
    task: dict[str, Any],
    statistics: list[dict[str, Any]],
    config: DmsIngestionConfig,
    started: float,
) -> bool:
    """Whether to stop watching: the task ended, or (for CDC tasks) the full load is done."""
    status = task.get("Status")
    if status in (TaskStatus.STOPPED, TaskStatus.FAILED, TaskStatus.DELETING):
        return True
    if status != TaskStatus.RUNNING:
        return False
    if config.migration_type == MigrationType.FULL_LOAD_AND_CDC:
        return bool(statistics) and all(
            s.get("TableState") in (TableState.COMPLETED, TableState.ERROR) for s in statistics
        )
    if config.migration_type == MigrationType.CDC:
        return time.monotonic() - started >= (config.cdc_monitor_seconds or 0)
    return False


@task(name="monitor-replication-task", cache_policy=NONE)
async def monitor_replication_task(
    arn: str, config: DmsIngestionConfig, aws_credentials_block: str | None, tracker: TableTracker
) -> MonitorOutcome:
    """Poll the task and all its tables once per interval until it finishes, feeding the subflows.

    Each poll is one DescribeReplicationTasks plus one DescribeTableStatistics per 500 tables.
    A transient error skips that poll (counted); the timeout bounds everything.

    Raises:
        ReplicationTimeoutError: not finished within ``timeout_seconds`` (the task is left as is).
    """
    logger = get_run_logger()
    hook = await dms_hook(aws_credentials_block)
    flow_run = str(task_run_flow_id())
    started = time.monotonic()
    outcome = MonitorOutcome(task={}, statistics=[])
    progress_artifact = await acreate_progress_artifact(
        0.0, description=f"{config.dms_task_name}: starting"
    )
    last_line = ""
    reloads_left = config.reload_errored_tables
    while True:
        before = sum(hook.calls.values())
        try:
            task_description = await asyncio.to_thread(hook.describe_task, arn)
            statistics = await asyncio.to_thread(hook.table_statistics, arn)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if not is_transient(exc):
                raise
            TRANSIENT_ERRORS[flow_run] += 1
            logger.warning("Transient DMS error while polling (%s); retrying next interval", exc)
        else:
            outcome.polls += 1
            outcome.max_calls_per_poll = max(
                outcome.max_calls_per_poll, sum(hook.calls.values()) - before
            )
            outcome.task, outcome.statistics = task_description, statistics
            tracker.publish(statistics)
            line = _progress_line(task_description, statistics)
            if line != last_line:
                logger.info("%s", line)
                stats = task_description.get("ReplicationTaskStats", {})
                await aupdate_progress_artifact(
                    progress_artifact,
                    float(stats.get("FullLoadProgressPercent", 0)),
                    description=line,
                )
                last_line = line
            if monitoring_finished(task_description, statistics, config, started):
                break
            errored = [
                (s["SchemaName"], s["TableName"])
                for s in statistics
                if s.get("TableState") == TableState.ERROR
            ]
            if errored and reloads_left and task_description.get("Status") == TaskStatus.RUNNING:
                reloads_left -= 1
                logger.warning(
                    "Reloading tables in error: %s", ", ".join(f"{s}.{t}" for s, t in errored[:10])
                )
                try:
                    await asyncio.to_thread(hook.reload_tables, arn, errored[:10])
                    outcome.table_reloads += 1
                except DmsApiError as exc:
                    if exc.code != "InvalidResourceStateFault":
                        raise
                    # The load ended between the poll and the call; the flow resumes it instead.
                    logger.info(
                        "The task stopped before ReloadTables; its errors are handled after the load"
                    )
        if time.monotonic() - started > config.timeout_seconds:
            raise ReplicationTimeoutError(
                f"Replication task {config.dms_task_name} did not finish within "
                f"{config.timeout_seconds:.0f} s (last status: {outcome.task.get('Status', 'unknown')}). "
                "It was left as it is: check it in the DMS console, stop it, or raise timeout_seconds."
            )
        await asyncio.sleep(config.poll_interval_seconds)
    outcome.calls = dict(hook.calls)
    return outcome


def task_run_flow_id() -> Any:
    context = TaskRunContext.get()
    return context.task_run.flow_run_id if context else None


def _progress_line(task: dict[str, Any], statistics: list[dict[str, Any]]) -> str:
    states = Counter(s.get("TableState") for s in statistics)
    stats = task.get("ReplicationTaskStats", {})
    rows = sum(int(s.get("FullLoadRows", 0)) for s in statistics)
    return (
        f"{task.get('Status')}: {stats.get('FullLoadProgressPercent', 0)}% | "
        f"{states.get(TableState.COMPLETED, 0)}/{len(statistics)} tables loaded, "
        f"{states.get(TableState.FULL_LOAD, 0)} loading, {states.get(TableState.BEFORE_LOAD, 0)} queued, "
        f"{states.get(TableState.ERROR, 0)} errored | {rows:,} rows"
    )


@task(name="verify-s3-output", **RETRYABLE)
async def verify_s3_output(
    config: DmsIngestionConfig, tables: list[TableReport], aws_credentials_block: str | None
) -> S3Verification:
    """List each completed non-empty table's prefix: it must hold LOAD objects.

    Skipped when transformation rules may rename the target schema or table (the S3 path then
    differs from the source names).
    """
    if (
        config.table_mapping_rules
        and any(r.get("rule-type") == "transformation" for r in config.table_mapping_rules)
    ) or config.table_mappings_file:
        return S3Verification(
            checked=False, detail="Transformation rules may rename targets; not checked."
        )
    s3 = await s3_client(aws_credentials_block)
    folder = config.s3_bucket_folder.strip("/")
    missing: list[str] = []
    checked = 0
    for table in tables:
        if table.table_state != TableState.COMPLETED or table.full_load_rows == 0:
            continue
        prefix = f"{folder + '/' if folder else ''}{table.schema_name}/{table.table_name}/LOAD"
        response = await asyncio.to_thread(
            s3.list_objects_v2, Bucket=config.s3_bucket_name, Prefix=prefix
        )
        table.s3_objects = int(response.get("KeyCount", 0))
        checked += 1
        if not table.s3_objects:
            missing.append(f"{table.schema_name}.{table.table_name}")
    detail = (
        f"{checked} tables have LOAD objects in s3://{config.s3_bucket_name}/{folder}"
        if not missing
        else f"no LOAD objects for {', '.join(missing)} under s3://{config.s3_bucket_name}/{folder}"
    )
    return S3Verification(checked=True, ok=not missing, detail=detail, missing_tables=missing)


@task(name="delete-replication-task", **RETRYABLE)
async def delete_replication_task(
    arn: str, config: DmsIngestionConfig, aws_credentials_block: str | None
) -> None:
    """Delete the task and wait until DMS no longer lists it."""
    hook = await dms_hook(aws_credentials_block)
    await asyncio.to_thread(hook.delete_task, arn)
    await asyncio.to_thread(
        hook.wait_deleted, arn, min(config.poll_interval_seconds, 15.0), SETTLE_TIMEOUT_SECONDS
    )


@task(name="stop-replication-task", **RETRYABLE)
async def stop_replication_task(
    arn: str, config: DmsIngestionConfig, aws_credentials_block: str | None
) -> dict[str, Any]:
    """Stop the task, wait for it to be stopped, and return its description then."""
    hook = await dms_hook(aws_credentials_block)
    await asyncio.to_thread(hook.stop_task, arn)
    await asyncio.to_thread(
        hook.wait,
        "ReplicationTaskStoppedAfterStop",
        arn,
        min(config.poll_interval_seconds, 15.0),
        SETTLE_TIMEOUT_SECONDS,
    )
    return await asyncio.to_thread(hook.describe_task, arn)
