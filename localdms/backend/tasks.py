"""Replication tasks: create, modify, describe, start, stop, delete, table statistics, reload.

Each operation checks the task's status against ``dms_spec.lifecycle`` and raises DMS's fault
otherwise; the task's own methods (``localdms/backend/resources.py``) make the transitions, and a
start hands the run to ``engine.replication_run`` with a ``TaskRunProgress`` to report through.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dms_spec.lifecycle import (
    ACTIVE,
    MODIFIABLE,
    MOVABLE,
    STARTABLE,
    UNDELETABLE,
)
from dms_spec.status import InstanceStatus, MigrationType, StartType, TaskStatus
from localdms.backend.queries import (
    default_task_settings,
    filtered,
    merge_settings,
    page_body,
    parse_task_settings,
)
from localdms.backend.resources import GONE, ReplicationTask
from localdms.backend.runs import RunBackend
from localdms.backend.shapes import Filter, Tag
from localdms.engine.capture_source import StopAt
from localdms.engine.pgoutput import parse_lsn
from localdms.exceptions import (
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
)
from localdms.identifiers import validate_identifier
from localdms.table_mappings import validate_table_mappings

log = logging.getLogger(__name__)


class TaskBackend(RunBackend):
    """The replication-task operations."""

    def create_replication_task(
        self,
        *,
        replication_task_identifier: str,
        source_endpoint_arn: str,
        target_endpoint_arn: str,
        replication_instance_arn: str,
        migration_type: str,
        table_mappings: str,
        replication_task_settings: str | None = None,
        cdc_start_time: float | None = None,
        cdc_start_position: str | None = None,
        cdc_stop_position: str | None = None,
        tags: list[Tag] | None = None,
        task_data: str | None = None,
        resource_identifier: str | None = None,
    ) -> dict[str, Any]:
        """CreateReplicationTask.

        Every request member is acted on; CdcStartTime is refused (a PostgreSQL source starts
        change capture from a WAL position, CdcStartPosition, not from a time).
        """
        with self.lock:
            self._advance()
            refuse_cdc_start_time(cdc_start_time)
            identifier = validate_identifier(
                "ReplicationTaskIdentifier", replication_task_identifier
            )
            kind = _migration_type(migration_type)
            validate_table_mappings(table_mappings)
            overrides = parse_task_settings(replication_task_settings, True)
            source = self._endpoint(source_endpoint_arn)
            target = self._endpoint(target_endpoint_arn)
            instance = self._instance(replication_instance_arn)
            if source.endpoint_type != "SOURCE" or target.endpoint_type != "TARGET":
                raise InvalidParameterValueException(
                    "SourceEndpointArn must name a source endpoint and TargetEndpointArn a target "
                    "endpoint."
                )
            if instance.status != InstanceStatus.AVAILABLE:
                raise InvalidResourceStateFault(
                    f"Replication instance {instance.arn} is {instance.status}, not available."
                )
            self._claim_identifier(self.tasks, identifier, "Replication task")
            task = ReplicationTask(
                arn=self._arn("task", resource_identifier),
                identifier=identifier,
                status=TaskStatus.CREATING,
                created=time.time(),
                source_arn=source.arn,
                target_arn=target.arn,
                instance_arn=instance.arn,
                migration_type=kind,
                table_mappings=table_mappings,
                settings=merge_settings(default_task_settings(), overrides),
                cdc_start_position=cdc_start_position,
                cdc_stop_position=cdc_stop_position,
                task_data=task_data,
            )
            check_cdc_positions(task)
            task.schedule(TaskStatus.CREATING, TaskStatus.READY, self.transition_seconds)
            self.tasks[task.arn] = task
            self._set_tags(task.arn, tags)
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def modify_replication_task(
        self,
        *,
        replication_task_arn: str,
        replication_task_identifier: str | None = None,
        migration_type: str | None = None,
        table_mappings: str | None = None,
        replication_task_settings: str | None = None,
        cdc_start_time: float | None = None,
        cdc_start_position: str | None = None,
        cdc_stop_position: str | None = None,
        task_data: str | None = None,
    ) -> dict[str, Any]:
        """ModifyReplicationTask.

        Every request member is acted on; CdcStartTime is refused as at CreateReplicationTask.
        """
        with self.lock:
            self._advance()
            refuse_cdc_start_time(cdc_start_time)
            task = self._task(replication_task_arn)
            if task.status not in MODIFIABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; it can be modified only when "
                    "ready, stopped or failed."
                )
            if (
                migration_type is not None
                and _migration_type(migration_type) != task.migration_type
            ):
                raise InvalidParameterValueException(
                    f"The MigrationType of replication task {task.identifier} cannot be changed "
                    f"(it is {task.migration_type}); create a new task instead."
                )
            if replication_task_identifier is not None:
                identifier = validate_identifier(
                    "ReplicationTaskIdentifier", replication_task_identifier
                )
                task.identifier = self._claim_identifier(
                    self.tasks, identifier, "Replication task", current=task
                )
            if table_mappings is not None:
                validate_table_mappings(table_mappings)
                task.table_mappings = table_mappings
            if replication_task_settings:
                overrides = parse_task_settings(replication_task_settings, False)
                task.settings = merge_settings(task.settings, overrides)
            if cdc_start_position is not None:
                task.cdc_start_position = cdc_start_position
            if cdc_stop_position is not None:
                task.cdc_stop_position = cdc_stop_position
            if task_data is not None:
                task.task_data = task_data
            task.schedule(TaskStatus.MODIFYING, task.status, self.transition_seconds)
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def describe_replication_tasks(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
        without_settings: bool = False,
    ) -> dict[str, Any]:
        """DescribeReplicationTasks (every request member is acted on)."""
        with self.lock:
            self._advance()
            items = filtered(
                list(self.tasks.values()),
                filters,
                {
                    "replication-task-arn": lambda t: [t.arn],
                    "replication-task-id": lambda t: [t.identifier],
                    "migration-type": lambda t: [t.migration_type],
                    "endpoint-arn": lambda t: [t.source_arn, t.target_arn],
                    "replication-instance-arn": lambda t: [t.instance_arn],
                },
                id_filters=("replication-task-id",),
                what="replication tasks",
            )
            now = time.time()
            return page_body(
                "ReplicationTasks", items, lambda t: t.to_api(now, not without_settings),
                max_records, marker,
            )  # fmt: skip

    def start_replication_task(
        self,
        *,
        replication_task_arn: str,
        start_replication_task_type: str,
        cdc_start_time: float | None = None,
        cdc_start_position: str | None = None,
        cdc_stop_position: str | None = None,
    ) -> dict[str, Any]:
        """StartReplicationTask.

        Every request member is acted on; CdcStartTime is refused as at CreateReplicationTask.
        """
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            start_type = start_replication_task_type
            if start_type not in tuple(StartType):
                raise InvalidParameterValueException(
                    f"StartReplicationTaskType {start_type!r} is not valid; valid values: "
                    f"{', '.join(StartType)}."
                )
            if task.status not in STARTABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; it can be started only when "
                    "ready, stopped or failed."
                )
            if start_type == StartType.START_REPLICATION and task.has_run:
                raise InvalidParameterCombinationException(
                    "Start Type : START_REPLICATION, valid only for tasks running for the first time"
                )
            if start_type != StartType.START_REPLICATION and not task.has_run:
                raise InvalidParameterCombinationException(
                    f"Start Type : {start_type.upper().replace('-', '_')}, valid only for tasks "
                    "that have run before; use start-replication for a first run"
                )
            if cdc_start_time is not None and cdc_start_position is not None:
                raise InvalidParameterCombinationException(
                    "CdcStartTime and CdcStartPosition cannot both be given."
                )
            refuse_cdc_start_time(cdc_start_time)
            if task.migration_type == MigrationType.FULL_LOAD and (
                cdc_start_position or cdc_stop_position
            ):
                raise InvalidParameterCombinationException(
                    "CdcStartPosition and CdcStopPosition apply to cdc and full-load-and-cdc "
                    "tasks only."
                )
            if cdc_start_position is not None:
                task.cdc_start_position = cdc_start_position
            if cdc_stop_position is not None:
                task.cdc_stop_position = cdc_stop_position
            check_cdc_positions(task)
            self._start(task, StartType(start_type))
            return {"ReplicationTask": task.to_api(time.time())}

    def move_replication_task(
        self, *, replication_task_arn: str, target_replication_instance_arn: str
    ) -> dict[str, Any]:
        """MoveReplicationTask (every request member is acted on): ``moving``, then back to the
        status it had, on the other instance. Refused unless the task is ready, stopped or
        failed and the target instance is available."""
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            target = self._instance(target_replication_instance_arn)
            if task.status not in MOVABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; it can be moved only when "
                    "ready, stopped or failed."
                )
            if target.status != InstanceStatus.AVAILABLE:
                raise InvalidResourceStateFault(
                    f"Replication instance {target.arn} is {target.status}, not available."
                )
            if target.arn == task.instance_arn:
                raise InvalidParameterValueException(
                    f"Replication task {task.identifier} already runs on {target.identifier}."
                )
            task.move_to(target.arn, self.transition_seconds)
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def stop_replication_task(self, *, replication_task_arn: str) -> dict[str, Any]:
        """StopReplicationTask (every request member is acted on)."""
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            if task.status not in ACTIVE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is currently not running (status {task.status})."
                )
            task.request_stop()
            self._save()
            run = self.runs.get(task.arn)
            if run is not None:
                run.stop()
            return {"ReplicationTask": task.to_api(time.time())}

    def delete_replication_task(self, *, replication_task_arn: str) -> dict[str, Any]:
        """DeleteReplicationTask (every request member is acted on)."""
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            if task.status in UNDELETABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; stop it (and wait for stopped) "
                    "before deleting it."
                )
            task.schedule(TaskStatus.DELETING, GONE, self.transition_seconds)
            self.runs.pop(task.arn, None)
            for run in [r for r in self.state.assessment_runs.values() if r.task_arn == task.arn]:
                del self.state.assessment_runs[run.arn]  # a task's assessment runs go with it
            self._drop_capture_later(task.source_arn, task.slot_name or "")
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}


def check_cdc_positions(task: ReplicationTask) -> None:
    """InvalidParameterValueException unless the task's CDC positions can be read."""
    try:
        if task.cdc_start_position:
            parse_lsn(task.cdc_start_position)
    except ValueError as exc:
        raise InvalidParameterValueException(
            f"CdcStartPosition {task.cdc_start_position!r} is not valid for a PostgreSQL "
            "source: give a WAL position (LSN) such as 4AF/B00000D0."
        ) from exc
    try:
        if task.cdc_stop_position:
            StopAt.parse(task.cdc_stop_position)
    except ValueError as exc:
        raise InvalidParameterValueException(str(exc)) from exc


def _migration_type(value: str) -> str:
    if value not in tuple(MigrationType):
        raise InvalidParameterValueException(
            f"MigrationType {value!r} is not valid; valid values: {', '.join(MigrationType)}."
        )
    return str(value)


def refuse_cdc_start_time(cdc_start_time: float | None) -> None:
    if cdc_start_time is not None:
        raise InvalidParameterCombinationException(
            "A PostgreSQL source cannot start change capture from a time: use "
            "CdcStartPosition (a WAL position such as 4AF/B00000D0)."
        )
