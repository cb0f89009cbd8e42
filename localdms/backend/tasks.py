"""Replication tasks: create, modify, describe, start, stop, delete, table statistics, reload.

Each operation checks the task's status against ``dms_spec.lifecycle`` and raises DMS's fault
otherwise; the task's own methods (``localdms/backend/resources.py``) make the transitions, and a
start hands the run to ``engine.task_run`` with a ``TaskRunProgress`` to report through.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dms_spec.lifecycle import (
    ACTIVE,
    MODIFIABLE,
    RELOADABLE,
    RUNNING_STATES,
    STARTABLE,
    UNDELETABLE,
)
from dms_spec.status import InstanceStatus, MigrationType, StartType, TableState, TaskStatus
from localdms.backend.base import BackendBase
from localdms.backend.progress import TaskRunProgress
from localdms.backend.queries import (
    default_task_settings,
    filtered,
    merge_settings,
    paginate,
    parse_task_settings,
    with_marker,
)
from localdms.backend.resources import GONE, ReplicationTask, table_key
from localdms.engine.cdc import StopAt, drop_capture, on_thread, slot_name
from localdms.engine.pgoutput import parse_lsn
from localdms.engine.task_run import CdcSpec, RunSpec, TaskRun
from localdms.exceptions import (
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
)
from localdms.identifiers import validate_identifier
from localdms.table_mappings import validate_table_mappings

log = logging.getLogger(__name__)


class TaskBackend(BackendBase):
    """The replication-task operations."""

    def _resume_runs(self) -> None:
        """A task that was capturing changes when the server stopped resumes capture from its
        checkpoint: the slot kept every change after it. (One that was loading came back
        ``failed`` from ``Persistence.load``.)"""
        for task in self.tasks.values():
            if task.status in RUNNING_STATES and task.capturing:
                log.info("task %s: resuming change capture from %s", task.identifier,
                         task.recovery_checkpoint)  # fmt: skip
                self._start(task, StartType.RESUME_PROCESSING)

    def create_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateReplicationTask.

        Every request member is acted on; CdcStartTime is refused (a PostgreSQL source starts
        change capture from a WAL position, CdcStartPosition, not from a time).
        """
        with self.lock:
            self._advance()
            _refuse_cdc_start_time(params)
            identifier = validate_identifier(
                "ReplicationTaskIdentifier", params.get("ReplicationTaskIdentifier")
            )
            migration_type = _migration_type(params.get("MigrationType"))
            mappings = params.get("TableMappings")
            if not isinstance(mappings, str):
                raise InvalidParameterValueException("TableMappings is required (a JSON string).")
            validate_table_mappings(mappings)
            overrides = parse_task_settings(params.get("ReplicationTaskSettings"), True)
            source = self._endpoint(params.get("SourceEndpointArn"))
            target = self._endpoint(params.get("TargetEndpointArn"))
            instance = self._instance(params.get("ReplicationInstanceArn"))
            if source.endpoint_type != "SOURCE" or target.endpoint_type != "TARGET":
                raise InvalidParameterValueException(
                    "SourceEndpointArn must name a source endpoint and TargetEndpointArn a target "
                    "endpoint."
                )
            if instance.status != InstanceStatus.AVAILABLE:
                raise InvalidResourceStateFault(
                    f"Replication instance {instance.arn} is {instance.status}, not available."
                )
            if self._identifier_taken(self.tasks, identifier):
                raise ResourceAlreadyExistsFault(f"Replication task {identifier} already exists.")
            task = ReplicationTask(
                arn=self._arn("task", params.get("ResourceIdentifier")),
                identifier=identifier,
                status=TaskStatus.CREATING,
                created=time.time(),
                source_arn=source.arn,
                target_arn=target.arn,
                instance_arn=instance.arn,
                migration_type=migration_type,
                table_mappings=mappings,
                settings=merge_settings(default_task_settings(), overrides),
                cdc_start_position=params.get("CdcStartPosition"),
                cdc_stop_position=params.get("CdcStopPosition"),
                task_data=params.get("TaskData"),
            )
            _check_cdc_positions(task)
            task.schedule(TaskStatus.CREATING, TaskStatus.READY, self.transition_seconds)
            self.tasks[task.arn] = task
            self._set_tags(task.arn, params.get("Tags") or [])
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def modify_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """ModifyReplicationTask.

        Every request member is acted on; CdcStartTime is refused as at CreateReplicationTask.
        """
        with self.lock:
            self._advance()
            _refuse_cdc_start_time(params)
            task = self._task(params.get("ReplicationTaskArn"))
            if task.status not in MODIFIABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; it can be modified only when "
                    "ready, stopped or failed."
                )
            if (
                "MigrationType" in params
                and _migration_type(params["MigrationType"]) != task.migration_type
            ):
                raise InvalidParameterValueException(
                    f"The MigrationType of replication task {task.identifier} cannot be changed "
                    f"(it is {task.migration_type}); create a new task instead."
                )
            if "ReplicationTaskIdentifier" in params:
                identifier = validate_identifier(
                    "ReplicationTaskIdentifier", params["ReplicationTaskIdentifier"]
                )
                if identifier.lower() != task.identifier.lower() and self._identifier_taken(
                    self.tasks, identifier
                ):
                    raise ResourceAlreadyExistsFault(
                        f"Replication task {identifier} already exists."
                    )
                task.identifier = identifier
            if "TableMappings" in params:
                validate_table_mappings(params["TableMappings"])
                task.table_mappings = params["TableMappings"]
            if params.get("ReplicationTaskSettings"):
                overrides = parse_task_settings(params["ReplicationTaskSettings"], False)
                task.settings = merge_settings(task.settings, overrides)
            for key, attribute in (
                ("CdcStartPosition", "cdc_start_position"),
                ("CdcStopPosition", "cdc_stop_position"),
                ("TaskData", "task_data"),
            ):
                if key in params:
                    setattr(task, attribute, params[key])
            task.schedule(TaskStatus.MODIFYING, task.status, self.transition_seconds)
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def describe_replication_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeReplicationTasks.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            items = filtered(
                list(self.tasks.values()),
                params.get("Filters"),
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
            page, marker = paginate(items, params)
            now = time.time()
            with_settings = not params.get("WithoutSettings", False)
            return with_marker(
                {"ReplicationTasks": [t.to_api(now, with_settings) for t in page]}, marker
            )

    def start_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartReplicationTask.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            start_type = params.get("StartReplicationTaskType")
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
            if (
                params.get("CdcStartTime") is not None
                and params.get("CdcStartPosition") is not None
            ):
                raise InvalidParameterCombinationException(
                    "CdcStartTime and CdcStartPosition cannot both be given."
                )
            _refuse_cdc_start_time(params)
            if task.migration_type == MigrationType.FULL_LOAD and (
                params.get("CdcStartPosition") or params.get("CdcStopPosition")
            ):
                raise InvalidParameterCombinationException(
                    "CdcStartPosition and CdcStopPosition apply to cdc and full-load-and-cdc "
                    "tasks only."
                )
            for name, attribute in (
                ("CdcStartPosition", "cdc_start_position"),
                ("CdcStopPosition", "cdc_stop_position"),
            ):
                if params.get(name) is not None:
                    setattr(task, attribute, str(params[name]))
            _check_cdc_positions(task)
            self._start(task, StartType(start_type))
            return {"ReplicationTask": task.to_api(time.time())}

    def _start(self, task: ReplicationTask, start_type: StartType) -> None:
        resume = start_type == StartType.RESUME_PROCESSING
        skip = frozenset(
            (t.schema_name, t.table_name)
            for t in task.tables.values()
            if resume and t.state == TableState.COMPLETED
        )
        cdc = self._cdc_spec(task, start_type)
        task.begin(fresh=not resume, fresh_capture=cdc is None or cdc.fresh, now=time.time())
        self._save()
        source = self._endpoint(task.source_arn)
        target = self._endpoint(task.target_arn)
        full_load = task.settings.get("FullLoadSettings", {})
        errors = task.settings.get("ErrorBehavior", {})
        spec = RunSpec(
            task_identifier=task.identifier,
            source=source.source(),
            target=target.target(),
            rules=validate_table_mappings(task.table_mappings),
            max_subtasks=int(full_load.get("MaxFullLoadSubTasks", 8)),
            fail_on_no_tables=bool(errors.get("FailOnNoTablesCaptured", True)),
            # A fresh CDC start reloads every table in the new slot's snapshot.
            skip_tables=skip if cdc is None or not cdc.fresh else frozenset(),
            min_starting_seconds=self.transition_seconds,
            cdc=cdc,
        )
        run = TaskRun(spec, TaskRunProgress(self, task.arn), self.s3_factory)
        self.runs[task.arn] = run
        run.start()

    def _cdc_spec(self, task: ReplicationTask, start_type: StartType) -> CdcSpec | None:
        """How the run captures changes: None for full-load tasks.

        A fresh start (start-replication, reload-target, or resume-processing of a task whose
        full load never finished) creates the slot and loads the tables in its snapshot; a resume
        of a capturing task continues the slot from the RecoveryCheckpoint.
        """
        if task.migration_type == MigrationType.FULL_LOAD:
            return None
        settings = task.settings.get("FullLoadSettings", {})
        after = (
            "not-applied"
            if settings.get("StopTaskCachedChangesNotApplied")
            else "applied"
            if settings.get("StopTaskCachedChangesApplied")
            else ""
        )
        stop_at = StopAt.parse(task.cdc_stop_position) if task.cdc_stop_position else None
        endpoint_slot = self._endpoint(task.source_arn).source().slot_name
        slot = endpoint_slot or task.slot_name or slot_name(task.arn)
        own = not endpoint_slot
        if start_type == StartType.RESUME_PROCESSING and task.capturing:
            start = task.recovery_checkpoint
            return CdcSpec(
                slot, False, False, parse_lsn(start) if start else 0, stop_at, after, own
            )
        if start_type == StartType.RESUME_PROCESSING:
            task.tables = {}
        full_load = task.migration_type == MigrationType.FULL_LOAD_AND_CDC
        start = task.cdc_start_position if not full_load else None
        return CdcSpec(slot, True, full_load, parse_lsn(start) if start else 0, stop_at, after, own)

    def stop_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """StopReplicationTask.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
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

    def delete_replication_task(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteReplicationTask.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            if task.status in UNDELETABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; stop it (and wait for stopped) "
                    "before deleting it."
                )
            task.schedule(TaskStatus.DELETING, GONE, self.transition_seconds)
            self.runs.pop(task.arn, None)
            if task.slot_name and task.source_arn in self.endpoints:
                source, slot = self._endpoint(task.source_arn).source(), task.slot_name
                on_thread(lambda: drop_capture(source, slot), f"drop-slot-{slot}")
            self._save()
            return {"ReplicationTask": task.to_api(time.time())}

    def describe_table_statistics(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeTableStatistics.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            items = filtered(
                list(task.tables.values()),
                params.get("Filters"),
                {
                    "schema-name": lambda t: [t.schema_name],
                    "table-name": lambda t: [t.table_name],
                    "table-state": lambda t: [t.state],
                },
                what=None,
            )
            page, marker = paginate(items, params, maximum=500)
            return with_marker(
                {"ReplicationTaskArn": task.arn, "TableStatistics": [t.to_api() for t in page]},
                marker,
            )

    def reload_tables(self, params: dict[str, Any]) -> dict[str, Any]:
        """ReloadTables.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            task = self._task(params.get("ReplicationTaskArn"))
            tables = params.get("TablesToReload") or []
            if not 1 <= len(tables) <= 10:
                raise InvalidParameterValueException("TablesToReload takes 1 to 10 tables.")
            if params.get("ReloadOption", "data-reload") != "data-reload":
                raise InvalidParameterValueException(
                    "localdms supports ReloadOption data-reload only (validation is not emulated)."
                )
            if task.status not in RELOADABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}: tables can be reloaded only "
                    "while the task is in the RUNNING state."
                )
            keys = [(str(item.get("SchemaName")), str(item.get("TableName"))) for item in tables]
            for schema, table in keys:
                if table_key(schema, table) not in task.tables:
                    raise ResourceNotFoundFault(
                        f"Table {schema}.{table} is not part of replication task {task.identifier}."
                    )
            run = self.runs.get(task.arn)
            if run is None or not run.reload(keys):
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is finishing its load: tables can be reloaded "
                    "only while the task is in the RUNNING state. Start it with resume-processing."
                )
            now = time.time()
            for schema, table in keys:
                task.tables[table_key(schema, table)].reload(now)
            self._save()
            return {"ReplicationTaskArn": task.arn}


def _check_cdc_positions(task: ReplicationTask) -> None:
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


def _migration_type(value: Any) -> str:
    if value not in tuple(MigrationType):
        raise InvalidParameterValueException(
            f"MigrationType {value!r} is not valid; valid values: {', '.join(MigrationType)}."
        )
    return str(value)


def _refuse_cdc_start_time(params: dict[str, Any]) -> None:
    if params.get("CdcStartTime") is not None:
        raise InvalidParameterCombinationException(
            "A PostgreSQL source cannot start change capture from a time: use "
            "CdcStartPosition (a WAL position such as 4AF/B00000D0)."
        )
