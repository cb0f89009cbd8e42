"""The flow's decisions as pure functions: what to do with an existing task, what to reload, and
whether a run succeeded. The tasks in ``flows/tasks.py`` describe, act and wait; they ask these.

Example:
    >>> wanted = WantedTask("t", "arn:s", "arn:t", "arn:r", "full-load", '{"rules": []}', None)
    >>> plan_task(None, wanted).action
    <TaskAction.CREATE: 'create'>
    >>> existing = {"ReplicationTaskArn": "arn:task", "Status": "stopped", "SourceEndpointArn": "arn:s",
    ...     "TargetEndpointArn": "arn:t", "ReplicationInstanceArn": "arn:r", "MigrationType": "full-load",
    ...     "TableMappings": '{"rules": []}', "ReplicationTaskStartDate": "2026-01-01"}
    >>> plan_task(existing, wanted)
    TaskPlan(action=<TaskAction.REUSE: 'reuse'>, changes={}, previously_run=True)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dms_spec.lifecycle import ACTIVE, SETTLING
from dms_spec.status import (
    FINISHED_FULL_LOAD_REASONS,
    MigrationType,
    TableState,
    TaskStatus,
)
from flows.exceptions import ReplicationTaskConflictError

RELOAD_TABLES_LIMIT = 10
"""ReloadTables takes at most 10 tables per call."""


class TaskAction(StrEnum):
    """What ``ensure-replication-task`` does next with the task it found (or did not)."""

    CREATE = "create"
    WAIT_FOR_DELETION = "wait-for-deletion"
    """It is being deleted: wait until it is gone, then create it."""
    WAIT_TO_SETTLE = "wait-to-settle"
    """It is creating, modifying or stopping: wait, then decide again."""
    ATTACH = "attach"
    MODIFY = "modify"
    REUSE = "reuse"


class Ensured(StrEnum):
    """What ``ensure-replication-task`` did (the report and the log say it in these words)."""

    CREATED = "created"
    MODIFIED = "modified"
    REUSED = "reused"
    ATTACHED = "attached"
    """It was running: the run monitors it and starts nothing."""
    RESUMED = "resumed"
    """Started again with resume-processing to reload tables in error after the load."""


@dataclass(frozen=True)
class WantedTask:
    """The task the config asks for, in DMS's terms."""

    identifier: str
    source_endpoint_arn: str
    target_endpoint_arn: str
    replication_instance_arn: str
    migration_type: str
    table_mappings: str
    """The TableMappings JSON document."""
    task_settings: str | None
    """ReplicationTaskSettings overrides (JSON), or None for DMS's defaults."""
    if_running: str = "fail"


@dataclass(frozen=True)
class TaskPlan:
    action: TaskAction
    changes: dict[str, Any] = field(default_factory=dict)
    """For MODIFY: the ModifyReplicationTask (or ModifyReplicationConfig) parameters that
    differ."""
    previously_run: bool = False
    """Whether the task has run before (so it cannot be started with start-replication)."""


_FIXED_MEMBERS = (
    ("source_endpoint_arn", "SourceEndpointArn"),
    ("target_endpoint_arn", "TargetEndpointArn"),
    ("replication_instance_arn", "ReplicationInstanceArn"),
    ("migration_type", "MigrationType"),
)


def has_run(task: dict[str, Any]) -> bool:
    """Whether DMS has started this task before."""
    return "ReplicationTaskStartDate" in task or task["Status"] in (
        TaskStatus.STOPPED,
        TaskStatus.FAILED,
    )


def contains(current: Any, wanted: Any) -> bool:
    """Whether every value of ``wanted`` is already set in ``current`` (deeply).

    Example:
        >>> contains({"Logging": {"EnableLogging": True, "LogComponents": []}}, {"Logging": {"EnableLogging": True}})
        True
    """
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(
            contains(current.get(k), v) for k, v in wanted.items()
        )
    return bool(current == wanted)


def plan_task(existing: dict[str, Any] | None, wanted: WantedTask) -> TaskPlan:
    """Create, modify, reuse or attach to the task; never a duplicate.

    Args:
        existing: the DescribeReplicationTasks item with the wanted identifier, or None.
        wanted: what the config asks for.

    Raises:
        ReplicationTaskConflictError: the task is running (and ``if_running`` is ``fail``), or its
            endpoints, instance or migration type differ (DMS cannot change them).
    """
    if existing is None:
        return TaskPlan(TaskAction.CREATE)
    status = existing["Status"]
    if status == TaskStatus.DELETING:
        return TaskPlan(TaskAction.WAIT_FOR_DELETION)
    arn = existing["ReplicationTaskArn"]
    for attribute, member in _FIXED_MEMBERS:
        value = str(getattr(wanted, attribute))
        if existing.get(member) != value:
            raise ReplicationTaskConflictError(
                f"Replication task {wanted.identifier} exists with {member} "
                f"{existing.get(member)}, but the config asks for {value}. DMS cannot change a "
                f"task's {member}: delete the task (aws dms delete-replication-task "
                f"--replication-task-arn {arn}) or choose another dms_task_name.",
                wanted.identifier,
                status,
            )
    if status in SETTLING:
        return TaskPlan(TaskAction.WAIT_TO_SETTLE)
    if status in ACTIVE:
        if wanted.if_running == "attach":
            return TaskPlan(TaskAction.ATTACH, previously_run=True)
        raise ReplicationTaskConflictError(
            f"Replication task {wanted.identifier} is already {status}. Wait for it to finish, "
            f"stop it (aws dms stop-replication-task --replication-task-arn {arn}), or run "
            "with if_running=attach to monitor it instead.",
            wanted.identifier,
            status,
        )
    changes: dict[str, str] = {}
    if json.loads(existing.get("TableMappings") or "{}") != json.loads(wanted.table_mappings):
        changes["TableMappings"] = wanted.table_mappings
    if wanted.task_settings and not contains(
        json.loads(existing.get("ReplicationTaskSettings") or "{}"),
        json.loads(wanted.task_settings),
    ):
        changes["ReplicationTaskSettings"] = wanted.task_settings
    action = TaskAction.MODIFY if changes else TaskAction.REUSE
    return TaskPlan(action, changes, previously_run=has_run(existing))


@dataclass(frozen=True)
class WantedConfig:
    """The DMS Serverless replication config the config asks for, in DMS's terms."""

    identifier: str
    source_endpoint_arn: str
    target_endpoint_arn: str
    replication_type: str
    table_mappings: str
    replication_settings: str | None
    compute_config: dict[str, Any]
    if_running: str = "fail"


def plan_replication_config(
    existing: dict[str, Any] | None, replication: dict[str, Any] | None, wanted: WantedConfig
) -> TaskPlan:
    """Create, modify, reuse or attach to the replication config; never a duplicate.

    Unlike a task's, a config's endpoints and replication type can be changed
    (ModifyReplicationConfig), so they are modified rather than refused.

    Args:
        existing: the DescribeReplicationConfigs item with the wanted identifier, or None.
        replication: its replication as a task (``flows.dms_hook.as_task``), or None.
        wanted: what the config asks for.

    Raises:
        ReplicationTaskConflictError: its replication is starting or running (and ``if_running``
            is ``fail``).

    Example:
        >>> wanted = WantedConfig("c", "arn:s", "arn:t", "full-load", '{"rules": []}', None,
        ...                       {"MaxCapacityUnits": 4})
        >>> existing = {"ReplicationConfigArn": "arn:c", "SourceEndpointArn": "arn:s",
        ...     "TargetEndpointArn": "arn:t", "ReplicationType": "full-load",
        ...     "TableMappings": '{"rules": []}', "ComputeConfig": {"MaxCapacityUnits": 2}}
        >>> plan_replication_config(existing, {"Status": "ready"}, wanted).changes
        {'ComputeConfig': {'MaxCapacityUnits': 4}}
    """
    if existing is None:
        return TaskPlan(TaskAction.CREATE)
    status = (replication or {}).get("Status", TaskStatus.READY)
    if status == TaskStatus.DELETING:
        return TaskPlan(TaskAction.WAIT_FOR_DELETION)
    if status == TaskStatus.STOPPING:
        return TaskPlan(TaskAction.WAIT_TO_SETTLE)
    if status in ACTIVE:
        if wanted.if_running == "attach":
            return TaskPlan(TaskAction.ATTACH, previously_run=True)
        arn = existing["ReplicationConfigArn"]
        raise ReplicationTaskConflictError(
            f"The replication of config {wanted.identifier} is already "
            f"{(replication or {}).get('ReplicationStatus', status)}. Wait for it to finish, "
            f"stop it (aws dms stop-replication --replication-config-arn {arn}), or run with "
            "if_running=attach to monitor it instead.",
            wanted.identifier,
            str(status),
        )
    changes: dict[str, Any] = {}
    for attribute, member in (
        ("source_endpoint_arn", "SourceEndpointArn"),
        ("target_endpoint_arn", "TargetEndpointArn"),
        ("replication_type", "ReplicationType"),
    ):
        if existing.get(member) != getattr(wanted, attribute):
            changes[member] = getattr(wanted, attribute)
    if json.loads(existing.get("TableMappings") or "{}") != json.loads(wanted.table_mappings):
        changes["TableMappings"] = wanted.table_mappings
    if wanted.replication_settings and not contains(
        json.loads(existing.get("ReplicationSettings") or "{}"),
        json.loads(wanted.replication_settings),
    ):
        changes["ReplicationSettings"] = wanted.replication_settings
    if not contains(existing.get("ComputeConfig") or {}, wanted.compute_config):
        changes["ComputeConfig"] = wanted.compute_config
    action = TaskAction.MODIFY if changes else TaskAction.REUSE
    return TaskPlan(action, changes, previously_run=status != TaskStatus.READY)


def errored_tables(statistics: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The ``(schema, table)`` of every table in 'Table error'."""
    return [
        (s["SchemaName"], s["TableName"])
        for s in statistics
        if s.get("TableState") == TableState.ERROR
    ]


def tables_to_reload(
    task: dict[str, Any], statistics: Sequence[dict[str, Any]], reloads_left: int
) -> list[tuple[str, str]]:
    """Tables to reload now with ReloadTables while the task runs (at most 10), or none.

    ``reloads_left`` is what remains of the run's one ``reload_errored_tables`` budget; each
    ReloadTables call and each resume after the load spends one.

    Example:
        >>> stats = [{"SchemaName": "s", "TableName": "t", "TableState": "Table error"}]
        >>> tables_to_reload({"Status": "running"}, stats, 1), tables_to_reload({"Status": "running"}, stats, 0)
        ([('s', 't')], [])
    """
    if reloads_left <= 0 or task.get("Status") != TaskStatus.RUNNING:
        return []
    return errored_tables(statistics)[:RELOAD_TABLES_LIMIT]


def should_resume(
    task: dict[str, Any], statistics: Sequence[dict[str, Any]], reloads_left: int
) -> bool:
    """Whether to resume a stopped task to reload the tables its finished load left in error."""
    return (
        reloads_left > 0
        and task.get("Status") == TaskStatus.STOPPED
        and bool(errored_tables(statistics))
    )


def monitoring_finished(
    task: dict[str, Any],
    statistics: Sequence[dict[str, Any]],
    migration_type: str,
    elapsed_seconds: float,
    cdc_monitor_seconds: float | None,
) -> bool:
    """Whether to stop watching: the task ended, or (for CDC tasks) the full load is done.

    Example:
        >>> monitoring_finished({"Status": "running"}, [{"TableState": "Table completed"}],
        ...                     "full-load-and-cdc", 3.0, None)
        True
    """
    status = task.get("Status")
    if status in (TaskStatus.STOPPED, TaskStatus.FAILED, TaskStatus.DELETING):
        return True
    if status != TaskStatus.RUNNING:
        return False
    if migration_type == MigrationType.FULL_LOAD_AND_CDC:
        return bool(statistics) and all(
            s.get("TableState") in (TableState.COMPLETED, TableState.ERROR) for s in statistics
        )
    if migration_type == MigrationType.CDC:
        return elapsed_seconds >= (cdc_monitor_seconds or 0)
    return False


def task_succeeded(task: dict[str, Any], migration_type: str, table_states: Sequence[str]) -> bool:
    """Whether the task's end state is a success for its migration type.

    Example:
        >>> task_succeeded({"Status": "stopped", "StopReason": "Stop Reason FULL_LOAD_ONLY_FINISHED"},
        ...                "full-load", ["Table completed"])
        True
        >>> task_succeeded({"Status": "stopped", "StopReason": "Stop Reason NORMAL"}, "full-load", [])
        False
    """
    if any(state == TableState.ERROR for state in table_states):
        return False
    status = task.get("Status")
    finished = status == TaskStatus.STOPPED and task.get("StopReason") in FINISHED_FULL_LOAD_REASONS
    if migration_type == MigrationType.FULL_LOAD:
        return finished
    return status == TaskStatus.RUNNING or finished
