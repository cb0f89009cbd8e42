"""The resources localdms keeps, each the only writer of its own status fields.

A resource's transitions are its methods (``schedule``/``advance`` for the short-lived statuses
DMS shows while it works; a task's ``begin``, ``request_stop``, ``mark_running``, ``finish_load``,
``stop``, ``fail`` and ``interrupt``), so a task's ``Status``, ``StopReason`` and
``LastFailureMessage`` change in this file only, with the statuses each operation needs taken
from ``dms_spec.lifecycle``. ``to_api`` renders a resource as DescribeX returns it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dms_spec.lifecycle import RUNNING_STATES, last_error
from dms_spec.status import (
    ConnectionStatus,
    MigrationType,
    StopReason,
    TableState,
    TaskStatus,
)
from localdms.endpoint_settings import PostgresSource, S3Target

GONE = "__gone__"
"""The status a deletion ends in: the resource is then dropped."""
RESTART_TEXT = (
    "localdms stopped while the task was {status}: the server process ended before the task "
    "finished. Start it again with reload-target (or resume-processing to load only the tables "
    "not yet completed)."
)


@dataclass
class Resource:
    """Common lifecycle: a status that may be due to change at ``pending_at``."""

    arn: str
    identifier: str
    status: str
    created: float
    pending_status: str | None = None
    pending_at: float = 0.0

    def schedule(self, status: str, next_status: str, delay: float) -> None:
        self.status = status
        self.pending_status = next_status
        self.pending_at = time.time() + delay

    def advance(self, now: float) -> bool:
        """Apply a due transition; True if one happened."""
        if self.pending_status is not None and now >= self.pending_at:
            self.status, self.pending_status = self.pending_status, None
            return True
        return False


@dataclass
class Endpoint(Resource):
    endpoint_type: str = "SOURCE"
    engine_name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    password: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "EndpointIdentifier": self.identifier,
            "EndpointType": self.endpoint_type,
            "EngineName": self.engine_name,
            "EngineDisplayName": "PostgreSQL" if self.engine_name != "s3" else "Amazon S3",
            "Status": self.status,
            "EndpointArn": self.arn,
            "SslMode": self.fields.get("SslMode", "none"),
            **{k: v for k, v in self.fields.items() if k != "SslMode"},
        }
        if self.engine_name == "s3":
            body["S3Settings"] = dict(self.settings)
        else:
            body["PostgreSQLSettings"] = dict(self.settings)
        return body

    def source(self) -> PostgresSource:
        secret = {"Password": self.password} if self.password else {}
        return PostgresSource.from_endpoint({**self.fields, **secret}, self.settings)

    def target(self) -> S3Target:
        return S3Target.from_settings(self.settings)


@dataclass
class ReplicationInstance(Resource):
    instance_class: str = ""
    allocated_storage: int = 50
    engine_version: str = "3.5.3"
    publicly_accessible: bool = False
    multi_az: bool = False

    def to_api(self) -> dict[str, Any]:
        return {
            "ReplicationInstanceIdentifier": self.identifier,
            "ReplicationInstanceClass": self.instance_class,
            "ReplicationInstanceStatus": self.status,
            "AllocatedStorage": self.allocated_storage,
            "InstanceCreateTime": self.created,
            "ReplicationInstanceArn": self.arn,
            "EngineVersion": self.engine_version,
            "PubliclyAccessible": self.publicly_accessible,
            "MultiAZ": self.multi_az,
            "AvailabilityZone": "localdms-1a",
            "AutoMinorVersionUpgrade": True,
        }


@dataclass
class Connection(Resource):
    endpoint_arn: str = ""
    instance_arn: str = ""
    endpoint_identifier: str = ""
    instance_identifier: str = ""
    last_failure_message: str = ""
    result: str = ConnectionStatus.SUCCESSFUL

    def to_api(self) -> dict[str, Any]:
        body = {
            "ReplicationInstanceArn": self.instance_arn,
            "EndpointArn": self.endpoint_arn,
            "Status": self.status,
            "EndpointIdentifier": self.endpoint_identifier,
            "ReplicationInstanceIdentifier": self.instance_identifier,
        }
        if self.status == ConnectionStatus.FAILED:
            body["LastFailureMessage"] = self.last_failure_message
        return body


@dataclass
class TableStatistics:
    """One table's statistics; the API fields plus the row estimate used for progress."""

    schema_name: str
    table_name: str
    state: str = TableState.BEFORE_LOAD
    full_load_rows: int = 0
    start_time: float | None = None
    end_time: float | None = None
    reloaded: bool = False
    last_update: float = 0.0
    estimated_rows: int = 0
    error: str = ""
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    ddls: int = 0
    applied_inserts: int = 0
    applied_updates: int = 0
    applied_deletes: int = 0
    applied_ddls: int = 0

    def queue(self, estimated_rows: int, now: float) -> None:
        """A run is about to load it (a completed table of a resumed run stays completed)."""
        self.estimated_rows = estimated_rows
        if self.state != TableState.COMPLETED:
            self.reloaded = self.state != TableState.BEFORE_LOAD
            self.state = TableState.BEFORE_LOAD
            self.full_load_rows = 0
            self.start_time = self.end_time = None
        self.last_update = now

    def start_load(self, now: float) -> None:
        self.state = TableState.FULL_LOAD
        self.start_time = self.last_update = now

    def rows_loaded(self, rows: int, now: float) -> None:
        self.full_load_rows = rows
        self.last_update = now

    def complete(self, rows: int, now: float) -> None:
        self.state = TableState.COMPLETED
        self.full_load_rows = rows
        self.end_time = self.last_update = now

    def fail(self, message: str, now: float) -> None:
        self.state = TableState.ERROR
        self.error = message
        self.end_time = self.last_update = now

    def reload(self, now: float) -> None:
        """ReloadTables accepted it: it loads again within the running task."""
        self.state = TableState.RELOADING
        self.reloaded = True
        self.full_load_rows = 0
        self.error = ""
        self.last_update = now

    def interrupt(self, message: str) -> None:
        """Its load stopped half way: an error (after a crash) or queued again (after a stop)."""
        if self.state == TableState.FULL_LOAD:
            if message:
                self.state, self.error = TableState.ERROR, message
            else:
                self.state, self.full_load_rows = TableState.BEFORE_LOAD, 0

    def add_changes(self, numbers: Mapping[str, int], applied: bool, now: float) -> None:
        """Add I/U/D/DDL counts to ``inserts``... (captured) or ``applied_inserts``... (in S3)."""
        prefix = "applied_" if applied else ""
        for name, op in (("inserts", "I"), ("updates", "U"), ("deletes", "D"), ("ddls", "DDL")):
            setattr(self, prefix + name, getattr(self, prefix + name) + numbers[op])
        self.last_update = now

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "SchemaName": self.schema_name,
            "TableName": self.table_name,
            "Inserts": self.inserts,
            "Deletes": self.deletes,
            "Updates": self.updates,
            "Ddls": self.ddls,
            "AppliedInserts": self.applied_inserts,
            "AppliedDeletes": self.applied_deletes,
            "AppliedUpdates": self.applied_updates,
            "AppliedDdls": self.applied_ddls,
            "FullLoadRows": self.full_load_rows,
            "FullLoadCondtnlChkFailedRows": 0,
            "FullLoadErrorRows": 0,
            "FullLoadReloaded": self.reloaded,
            "LastUpdateTime": self.last_update,
            "TableState": self.state,
            "ValidationPendingRecords": 0,
            "ValidationFailedRecords": 0,
            "ValidationSuspendedRecords": 0,
            "ValidationState": "Not enabled",
        }
        if self.start_time is not None:
            body["FullLoadStartTime"] = self.start_time
        if self.end_time is not None:
            body["FullLoadEndTime"] = self.end_time
        return body


@dataclass
class ReplicationTask(Resource):
    source_arn: str = ""
    target_arn: str = ""
    instance_arn: str = ""
    migration_type: str = MigrationType.FULL_LOAD
    table_mappings: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    last_failure_message: str | None = None
    stop_reason: str | None = None
    has_run: bool = False
    start_date: float | None = None
    fresh_start_date: float | None = None
    stop_date: float | None = None
    full_load_start: float | None = None
    full_load_finish: float | None = None
    cdc_start_position: str | None = None
    cdc_stop_position: str | None = None
    task_data: str | None = None
    slot_name: str | None = None
    """The CDC replication slot localdms created on the source for this task."""
    recovery_checkpoint: str | None = None
    capturing: bool = False
    """The full load is over (or there is none) and the task captures changes."""
    tables: dict[str, TableStatistics] = field(default_factory=dict)

    # ------------------------------------------------------------- transitions of a run
    def begin(self, fresh: bool, fresh_capture: bool, now: float) -> None:
        """StartReplicationTask accepted: ``starting``. ``fresh`` forgets the tables' statistics
        (all but resume-processing); ``fresh_capture`` forgets where capture was."""
        if fresh:
            self.tables = {}
            self.fresh_start_date = now
        self.status, self.pending_status = TaskStatus.STARTING, None
        self.has_run = True
        self.start_date = now
        self.stop_reason = self.last_failure_message = None
        self.stop_date = None
        if fresh_capture:
            self.full_load_start = self.full_load_finish = None
            self.capturing = False
            self.recovery_checkpoint = None

    def request_stop(self) -> None:
        """StopReplicationTask accepted: ``stopping`` until the run has stopped."""
        self.status = TaskStatus.STOPPING

    def mark_running(self, now: float) -> None:
        """The run has its tables and loads them."""
        if self.status == TaskStatus.STARTING:
            self.status = TaskStatus.RUNNING
        self.full_load_start = now

    def start_capture(self, now: float) -> None:
        """The full load is over (or there is none): the task captures changes."""
        if self.migration_type == MigrationType.FULL_LOAD_AND_CDC and not self.capturing:
            self.full_load_finish = now
        self.capturing = True
        for table in self.tables.values():
            if table.state == TableState.BEFORE_LOAD:  # cdc tasks have no load
                table.state = TableState.COMPLETED
            table.last_update = now

    def finish_load(self, now: float) -> None:
        """A full-load task loaded every table (tables in error say why in LastFailureMessage)."""
        self.status = TaskStatus.STOPPED
        self.stop_reason = StopReason.FULL_LOAD_ONLY_FINISHED
        self.stop_date = self.full_load_finish = now
        errors = [t.error for t in self.tables.values() if t.state == TableState.ERROR]
        if errors:
            self.last_failure_message = "Last Error  " + "; ".join(errors)

    def stop(self, reason: StopReason, now: float) -> None:
        """The run stopped (asked to, or at a stop point): tables half loaded are queued again."""
        self.status = TaskStatus.STOPPED
        self.stop_reason = reason
        self.stop_date = now
        for table in self.tables.values():
            table.interrupt("")

    def fail(self, message: str, now: float) -> None:
        """The run failed; ``message`` is in DMS's form (``dms_spec.lifecycle.last_error``)."""
        self.status = TaskStatus.FAILED
        self.last_failure_message = self.stop_reason = message
        self.stop_date = now

    def interrupt(self, now: float) -> None:
        """localdms died while the task ran its load: ``failed``, ready to be started again."""
        message = last_error(RESTART_TEXT.format(status=self.status), StopReason.RECOVERABLE_ERROR)
        self.status, self.pending_status = TaskStatus.FAILED, None
        self.last_failure_message = message
        self.stop_reason = StopReason.RECOVERABLE_ERROR
        self.stop_date = now
        for table in self.tables.values():
            table.interrupt("The load was interrupted when localdms stopped.")

    def stats(self, now: float) -> dict[str, Any]:
        """ReplicationTaskStats, derived from the tables."""
        states = [t.state for t in self.tables.values()]
        done = sum(s in (TableState.COMPLETED, TableState.ERROR) for s in states)
        if self.capturing or (
            self.status == TaskStatus.STOPPED
            and self.stop_reason == StopReason.FULL_LOAD_ONLY_FINISHED
        ):
            percent = 100
        elif not self.tables:
            percent = 100 if self.status == TaskStatus.FAILED else 0
        else:
            weights = [max(t.estimated_rows, 1) for t in self.tables.values()]
            loaded = [
                w
                if t.state in (TableState.COMPLETED, TableState.ERROR)
                else min(t.full_load_rows, int(w * 0.99))
                for t, w in zip(self.tables.values(), weights, strict=True)
            ]
            percent = min(100, int(100 * sum(loaded) / sum(weights))) if done < len(states) else 100
        end = self.stop_date if self.status not in RUNNING_STATES and self.stop_date else now
        stats: dict[str, Any] = {
            "FullLoadProgressPercent": percent,
            "ElapsedTimeMillis": int(1000 * (end - (self.start_date or end))),
            "TablesLoaded": states.count(TableState.COMPLETED),
            "TablesLoading": states.count(TableState.FULL_LOAD),
            "TablesQueued": states.count(TableState.BEFORE_LOAD),
            "TablesErrored": states.count(TableState.ERROR),
        }
        for key, value in (
            ("FreshStartDate", self.fresh_start_date),
            ("StartDate", self.start_date),
            ("StopDate", self.stop_date if self.status not in RUNNING_STATES else None),
            ("FullLoadStartDate", self.full_load_start),
            ("FullLoadFinishDate", self.full_load_finish),
        ):
            if value is not None:
                stats[key] = value
        return stats

    def to_api(self, now: float, with_settings: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ReplicationTaskIdentifier": self.identifier,
            "SourceEndpointArn": self.source_arn,
            "TargetEndpointArn": self.target_arn,
            "ReplicationInstanceArn": self.instance_arn,
            "MigrationType": self.migration_type,
            "TableMappings": self.table_mappings,
            "Status": self.status,
            "ReplicationTaskCreationDate": self.created,
            "ReplicationTaskArn": self.arn,
        }
        if with_settings:
            body["ReplicationTaskSettings"] = json.dumps(self.settings)
        optional = {
            "LastFailureMessage": self.last_failure_message,
            "StopReason": self.stop_reason,
            "ReplicationTaskStartDate": self.start_date,
            "CdcStartPosition": self.cdc_start_position,
            "CdcStopPosition": self.cdc_stop_position,
            "RecoveryCheckpoint": self.recovery_checkpoint,
            "TaskData": self.task_data,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if self.has_run:
            body["ReplicationTaskStats"] = self.stats(now)
        return body


def table_key(schema: str, table: str) -> str:
    return f"{schema}\x00{table}"
