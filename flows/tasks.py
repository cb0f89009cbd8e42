"""The flow's Prefect tasks: describe the target, ensure (a task, or a DMS Serverless replication
config), start, wait, reconcile, delete (monitoring is in ``flows/monitoring.py``). After the
ensure step both kinds go through the same tasks: ``DmsHook`` answers a replication config's ARN
with the Serverless operations.

Every task is async and runs boto3 calls with ``asyncio.to_thread`` (a blocking call would stall
every concurrent subflow). Tasks retry with backoff only on transient errors (throttling, 5xx, lost
connections); anything else fails at once with its reason. They take the run's one ``DmsHook``
(which counts every call) and ask ``flows.decisions`` what to do.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from dms_spec.status import StartType, TableState
from dms_spec.table_mappings import renames_schemas_or_tables
from flows.config import DmsIngestionConfig
from flows.decisions import (
    Ensured,
    TaskAction,
    WantedConfig,
    WantedTask,
    plan_replication_config,
    plan_task,
)
from flows.dms_hook import DmsHook, as_task, is_serverless
from flows.exceptions import (
    DmsApiError,
    ReplicationTaskConflictError,
    ReplicationTimeoutError,
    S3AccessError,
    TargetMismatchError,
    is_transient,
    waiter_timed_out,
)
from flows.reconcile import TableObjects, table_objects
from flows.report import S3Verification, TableReport
from flows.target import TargetEndpoint

SETTLE_TIMEOUT_SECONDS = 1800


def retry_on_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry only throttling, 5xx and connection errors."""
    # In an async task Prefect dispatches ``result`` to a coroutine; ``_sync`` reads it in place.
    exception = state.result(raise_on_failure=False, _sync=True)  # type: ignore[call-overload]
    return isinstance(exception, BaseException) and is_transient(exception)


RETRYABLE: dict[str, Any] = {
    "retries": 5,
    "retry_delay_seconds": [1, 2, 4, 8, 16],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
    "cache_policy": NONE,
}


@task(name="describe-target-endpoint", **RETRYABLE)
async def describe_target_endpoint(config: DmsIngestionConfig, hook: DmsHook) -> TargetEndpoint:
    """Read the target endpoint's bucket, folder and formats from DMS, and check the config.

    Raises:
        TargetMismatchError: the endpoint is not S3, or ``s3_bucket_name`` / ``s3_bucket_folder``
            disagree with it (nothing has been created or started).
    """
    arn = str(config.target_endpoint_arn)
    endpoint = await asyncio.to_thread(hook.describe_endpoint, arn)
    try:
        target = TargetEndpoint.from_endpoint(endpoint)
    except ValueError as exc:
        raise TargetMismatchError(str(exc)) from None
    problems = target.disagreements(config.s3_bucket_name, config.s3_bucket_folder)
    if problems:
        raise TargetMismatchError(
            "The config disagrees with the target endpoint; nothing was created or started.\n- "
            + "\n- ".join(problems)
        )
    get_run_logger().info(
        "Target endpoint writes %s files to %s", target.settings.extension.lstrip("."), target.url()
    )
    return target


@dataclass(frozen=True)
class EnsuredTask:
    """The replication task the run will use."""

    arn: str
    identifier: str
    action: Ensured
    """What ensuring it did: created, modified, reused, attached (or resumed, by the flow)."""
    previously_run: bool


@task(name="ensure-replication-task", **RETRYABLE)
async def ensure_replication_task(config: DmsIngestionConfig, hook: DmsHook) -> EnsuredTask:
    """Find the task by identifier; create it, or modify it to match the config. Never a duplicate.

    ``flows.decisions.plan_task`` decides; this task describes, acts and waits.

    Raises:
        ReplicationTaskConflictError: the task is running (and ``if_running`` is ``fail``), or its
            endpoints, instance or migration type differ from the config (DMS cannot change them).
    """
    logger = get_run_logger()
    name = config.dms_task_name
    delay = min(config.poll_interval_seconds, 15.0)
    wanted = WantedTask(
        identifier=name,
        source_endpoint_arn=str(config.source_endpoint_arn),
        target_endpoint_arn=str(config.target_endpoint_arn),
        replication_instance_arn=str(config.replication_instance_arn),
        migration_type=str(config.migration_type),
        table_mappings=config.table_mappings_document(),
        task_settings=config.task_settings_document(),
        if_running=config.if_running,
    )
    while True:
        existing = await asyncio.to_thread(hook.find_task, name)
        plan = plan_task(existing, wanted)
        if plan.action == TaskAction.WAIT_FOR_DELETION:
            assert existing is not None
            logger.info("Task %s is being deleted; waiting before creating it again", name)
            await asyncio.to_thread(
                hook.wait_deleted, existing["ReplicationTaskArn"], delay, SETTLE_TIMEOUT_SECONDS
            )
            continue
        if plan.action == TaskAction.WAIT_TO_SETTLE:
            assert existing is not None
            logger.info("Task %s is %s; waiting for it to settle", name, existing["Status"])
            await _settle(hook, existing["ReplicationTaskArn"], delay)
            continue
        break

    if plan.action == TaskAction.CREATE:
        parameters: dict[str, Any] = {
            "ReplicationTaskIdentifier": name,
            "SourceEndpointArn": wanted.source_endpoint_arn,
            "TargetEndpointArn": wanted.target_endpoint_arn,
            "ReplicationInstanceArn": wanted.replication_instance_arn,
            "MigrationType": wanted.migration_type,
            "TableMappings": wanted.table_mappings,
            "Tags": [{"Key": "created-by", "Value": "dms-ingestion"}],
        }
        if wanted.task_settings:
            parameters["ReplicationTaskSettings"] = wanted.task_settings
        created = await asyncio.to_thread(hook.create_task, **parameters)
        arn = created["ReplicationTaskArn"]
        logger.info("Created replication task %s (%s); waiting until it is ready", name, arn)
        await _settle(hook, arn, delay)
        return EnsuredTask(arn, name, Ensured.CREATED, previously_run=False)

    assert existing is not None
    arn = existing["ReplicationTaskArn"]
    if plan.action == TaskAction.ATTACH:
        logger.info("Task %s is already %s; attaching to it", name, existing["Status"])
        return EnsuredTask(arn, name, Ensured.ATTACHED, previously_run=True)
    if plan.action == TaskAction.MODIFY:
        logger.info(
            "Task %s differs from the config (%s); modifying it", name, ", ".join(plan.changes)
        )
        await asyncio.to_thread(hook.modify_task, arn, **plan.changes)
        await _settle(hook, arn, delay)
        return EnsuredTask(arn, name, Ensured.MODIFIED, previously_run=plan.previously_run)
    logger.info("Reusing replication task %s (%s, %s)", name, arn, existing["Status"])
    return EnsuredTask(arn, name, Ensured.REUSED, previously_run=plan.previously_run)


@task(name="ensure-replication-config", **RETRYABLE)
async def ensure_replication_config(config: DmsIngestionConfig, hook: DmsHook) -> EnsuredTask:
    """DMS Serverless: find the replication config by identifier; create it, or modify it to
    match the config. Never a duplicate.

    ``flows.decisions.plan_replication_config`` decides; this task describes, acts and waits.

    Raises:
        ReplicationTaskConflictError: its replication is starting or running (and ``if_running``
            is ``fail``).
    """
    logger = get_run_logger()
    name = config.dms_task_name
    delay = min(config.poll_interval_seconds, 15.0)
    assert config.compute_config is not None
    wanted = WantedConfig(
        identifier=name,
        source_endpoint_arn=str(config.source_endpoint_arn),
        target_endpoint_arn=str(config.target_endpoint_arn),
        replication_type=str(config.migration_type),
        table_mappings=config.table_mappings_document(),
        replication_settings=config.task_settings_document(),
        compute_config=config.compute_config.document(),
        if_running=config.if_running,
    )
    while True:
        existing = await asyncio.to_thread(hook.find_config, name)
        replication = (
            as_task(
                await asyncio.to_thread(hook.describe_replication, existing["ReplicationConfigArn"])
            )
            if existing is not None
            else None
        )
        plan = plan_replication_config(existing, replication, wanted)
        if plan.action not in (TaskAction.WAIT_FOR_DELETION, TaskAction.WAIT_TO_SETTLE):
            break
        assert existing is not None
        arn = existing["ReplicationConfigArn"]
        logger.info("The replication of config %s is %s; waiting", name,
                    (replication or {}).get("ReplicationStatus"))  # fmt: skip
        if plan.action == TaskAction.WAIT_FOR_DELETION:
            await asyncio.to_thread(hook.wait_deleted, arn, delay, SETTLE_TIMEOUT_SECONDS)
        else:
            await asyncio.to_thread(
                hook.wait, "ReplicationTaskStoppedAfterStop", arn, delay, SETTLE_TIMEOUT_SECONDS
            )

    if plan.action == TaskAction.CREATE:
        parameters: dict[str, Any] = {
            "ReplicationConfigIdentifier": name,
            "SourceEndpointArn": wanted.source_endpoint_arn,
            "TargetEndpointArn": wanted.target_endpoint_arn,
            "ComputeConfig": wanted.compute_config,
            "ReplicationType": wanted.replication_type,
            "TableMappings": wanted.table_mappings,
            "Tags": [{"Key": "created-by", "Value": "dms-ingestion"}],
        }
        if wanted.replication_settings:
            parameters["ReplicationSettings"] = wanted.replication_settings
        created = await asyncio.to_thread(hook.create_config, **parameters)
        arn = created["ReplicationConfigArn"]
        logger.info("Created DMS Serverless replication config %s (%s)", name, arn)
        return EnsuredTask(arn, name, Ensured.CREATED, previously_run=False)
    assert existing is not None
    arn = existing["ReplicationConfigArn"]
    if plan.action == TaskAction.ATTACH:
        logger.info("The replication of config %s is already running; attaching to it", name)
        return EnsuredTask(arn, name, Ensured.ATTACHED, previously_run=True)
    if plan.action == TaskAction.MODIFY:
        logger.info("Replication config %s differs from the config (%s); modifying it", name,
                    ", ".join(plan.changes))  # fmt: skip
        await asyncio.to_thread(hook.modify_config, arn, **plan.changes)
        return EnsuredTask(arn, name, Ensured.MODIFIED, previously_run=plan.previously_run)
    logger.info("Reusing replication config %s (%s)", name, arn)
    return EnsuredTask(arn, name, Ensured.REUSED, previously_run=plan.previously_run)


async def _settle(hook: DmsHook, arn: str, delay: float) -> None:
    """Wait until a created or modified task is ready, stopped or failed."""
    try:
        await asyncio.to_thread(
            hook.wait, "ReplicationTaskSettled", arn, delay, SETTLE_TIMEOUT_SECONDS
        )
    except botocore.exceptions.WaiterError as exc:
        response: dict[str, Any] = dict(exc.last_response or {})
        tasks = response.get("ReplicationTasks") or [{}]
        status = str(tasks[0].get("Status", "not found"))
        if waiter_timed_out(exc):
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
    ensured: EnsuredTask,
    rerun_start_type: str,
    hook: DmsHook,
    premigration_settings: str | None = None,
) -> str:
    """Start the task: ``start-replication`` on its first run, else ``rerun_start_type``.

    DMS accepts ``start-replication`` only once per task, and the other start types only after
    one: when DMS refuses the start type chosen (InvalidParameterCombinationException), the start
    falls back to the other (``reload-target``, or ``start-replication`` for a replication whose
    only start was refused by its premigration assessment), and DMS's first refusal is raised if
    it refuses that too. A DMS Serverless replication's start may carry its premigration
    assessment (``premigration_settings``).

    Returns:
        The StartReplicationTaskType used.
    """
    logger = get_run_logger()
    start_type = rerun_start_type if ensured.previously_run else StartType.START_REPLICATION
    try:
        await asyncio.to_thread(
            hook.start_task, ensured.arn, str(start_type), premigration_settings
        )
    except DmsApiError as exc:
        if exc.code != "InvalidParameterCombinationException":
            raise
        first = start_type == StartType.START_REPLICATION
        start_type = StartType.RELOAD_TARGET if first else StartType.START_REPLICATION
        logger.info("DMS refused %s (%s); using %s", "start-replication" if first
                    else rerun_start_type, exc, start_type)  # fmt: skip
        try:
            await asyncio.to_thread(
                hook.start_task, ensured.arn, str(start_type), premigration_settings
            )
        except DmsApiError:
            raise exc from None
    kind = "DMS Serverless replication" if is_serverless(ensured.arn) else "replication task"
    logger.info("Started %s %s with %s", kind, ensured.identifier, start_type)
    return str(start_type)


@task(name="wait-for-full-load-start", **RETRYABLE)
async def wait_for_full_load_start(arn: str, config: DmsIngestionConfig, hook: DmsHook) -> str:
    """Wait until the task runs, or has already finished its load (a success, not a race).

    Polls on a growing delay (1 s, 1.5 s, ...) up to the poll interval: a start takes seconds.

    Returns:
        The status reached (the monitor reports failures with their reasons).
    """
    logger = get_run_logger()
    seen: list[str] = []

    def progress(response: dict[str, Any]) -> None:
        """Log each status the start goes through (a Serverless one has seven)."""
        items = response.get("Replications") or response.get("ReplicationTasks") or [{}]
        status = str(items[0].get("Status", ""))
        if status and status not in seen:
            seen.append(status)
            state = items[0].get("ProvisionData", {}).get("ProvisionState")
            logger.info("%s is %s%s", config.dms_task_name, status,
                        f" (capacity {state})" if state else "")  # fmt: skip

    try:
        await asyncio.to_thread(
            hook.wait, "FullLoadStarted", arn, config.poll_interval_seconds,
            config.timeout_seconds, progress,
        )  # fmt: skip
    except botocore.exceptions.WaiterError as exc:
        if waiter_timed_out(exc):
            raise ReplicationTimeoutError(
                f"Replication task {config.dms_task_name} did not start within {config.timeout_seconds:.0f} s."
            ) from exc
    task_description = await asyncio.to_thread(hook.describe_task, arn)
    return str(task_description["Status"])


@dataclass(frozen=True)
class Reconciliation:
    """What ``reconcile-s3-output`` found: the verdict, and each reconciled table's objects."""

    verification: S3Verification
    found: dict[tuple[str, str], TableObjects] = field(default_factory=dict)
    """(schema, table) → its LOAD objects, rows and bytes in S3."""

    def apply(self, tables: list[TableReport]) -> list[TableReport]:
        """``tables`` with ``s3_objects``, ``s3_rows`` and ``s3_bytes`` from what was found."""
        return [
            table.model_copy(
                update={"s3_objects": found.objects, "s3_rows": found.rows, "s3_bytes": found.bytes}
            )
            if (found := self.found.get((table.schema_name, table.table_name)))
            else table
            for table in tables
        ]


@task(name="reconcile-s3-output", **RETRYABLE)
async def reconcile_s3_output(
    config: DmsIngestionConfig, target: TargetEndpoint, tables: list[TableReport], s3: Any
) -> Reconciliation:
    """Count the rows of every completed table's LOAD objects and compare with DMS's FullLoadRows.

    Tables are read ``verify_s3_concurrency`` at a time (each in a worker thread, in bounded
    memory); what was found per table is returned (``Reconciliation.apply`` puts it in the
    report's tables). Skipped when a transformation renames a schema or table: DMS reports the
    source names, and the S3 folder is named after the target.
    """
    if renames_schemas_or_tables(config.table_mappings_document()):
        return Reconciliation(
            S3Verification(
                checked=False,
                detail="A transformation rule renames schemas or tables: S3 folders are named "
                "after the targets, DMS's statistics after the sources; not reconciled.",
            )
        )
    started = time.monotonic()
    slots = asyncio.Semaphore(config.verify_s3_concurrency)
    completed = [t for t in tables if t.table_state == TableState.COMPLETED]

    async def count(table: TableReport) -> TableObjects:
        async with slots:
            try:
                found = await asyncio.to_thread(
                    table_objects, s3, target, table.schema_name, table.table_name
                )
            except botocore.exceptions.ClientError as exc:
                if is_transient(exc):
                    raise  # retried by the task
                error = exc.response.get("Error", {})
                raise S3AccessError(
                    exc.operation_name,
                    str(error.get("Code", "")),
                    str(error.get("Message", "")),
                    target.url(table.schema_name, table.table_name),
                ) from exc
        return found

    counts = await asyncio.gather(*(count(t) for t in completed))
    found = {(t.schema_name, t.table_name): c for t, c in zip(completed, counts, strict=True)}
    mismatched = [
        t for t in completed if found[t.schema_name, t.table_name].rows != t.full_load_rows
    ]
    verification = S3Verification(
        checked=True,
        ok=not mismatched,
        tables=len(completed),
        objects=sum(c.objects for c in counts),
        rows=sum(c.rows for c in counts),
        bytes=sum(c.bytes for c in counts),
        seconds=round(time.monotonic() - started, 3),
        mismatched_tables=[f"{t.schema_name}.{t.table_name}" for t in mismatched],
    )
    if mismatched:
        verification.detail = "; ".join(
            f"{t.schema_name}.{t.table_name}: DMS loaded {t.full_load_rows:,} rows, "
            f"{target.url(t.schema_name, t.table_name)} holds "
            f"{found[t.schema_name, t.table_name].rows:,} in "
            f"{found[t.schema_name, t.table_name].objects} LOAD objects"
            for t in mismatched
        )
    else:
        verification.detail = (
            f"{verification.tables} tables, {verification.rows:,} rows in "
            f"{verification.objects} LOAD objects under {target.url()} match DMS's counts "
            f"({verification.seconds:.1f} s)"
        )
    return Reconciliation(verification, found)


@task(name="delete-replication-task", **RETRYABLE)
async def delete_replication_task(arn: str, config: DmsIngestionConfig, hook: DmsHook) -> None:
    """Delete the task and wait until DMS no longer lists it."""
    await asyncio.to_thread(hook.delete_task, arn)
    await asyncio.to_thread(
        hook.wait_deleted, arn, min(config.poll_interval_seconds, 15.0), SETTLE_TIMEOUT_SECONDS
    )


@task(name="stop-replication-task", **RETRYABLE)
async def stop_replication_task(
    arn: str, config: DmsIngestionConfig, hook: DmsHook
) -> dict[str, Any]:
    """Stop the task, wait for it to be stopped, and return its description then."""
    await asyncio.to_thread(hook.stop_task, arn)
    await asyncio.to_thread(
        hook.wait,
        "ReplicationTaskStoppedAfterStop",
        arn,
        min(config.poll_interval_seconds, 15.0),
        SETTLE_TIMEOUT_SECONDS,
    )
    return await asyncio.to_thread(hook.describe_task, arn)
