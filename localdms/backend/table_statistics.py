"""A task's table as DescribeTableStatistics reports it: its state, counts and times (the only
writer of them), keyed by ``table_key``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dms_spec.status import TableState


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

    def capture_started(self, now: float) -> None:
        """The task captures changes: a table with no load to wait for (a ``cdc`` task's) is
        complete from now on."""
        if self.state == TableState.BEFORE_LOAD:
            self.state = TableState.COMPLETED
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


def table_key(schema: str, table: str) -> str:
    """The key of a table in ``ReplicationTask.tables`` (names may hold any character but NUL)."""
    return f"{schema}\x00{table}"
