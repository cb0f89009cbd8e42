"""A run's tables: DescribeTableStatistics and ReloadTables (and the serverless ones' helpers)."""

from __future__ import annotations

import time
from typing import Any

from dms_spec import events
from dms_spec.lifecycle import RELOADABLE
from localdms.backend.base import BackendBase
from localdms.backend.queries import filtered, page_body
from localdms.backend.resources import ReplicationTask
from localdms.backend.shapes import Filter, TableToReload
from localdms.backend.table_statistics import TableStatistics, table_key
from localdms.exceptions import (
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceNotFoundFault,
)


class TableBackend(BackendBase):
    """The table operations of replication tasks."""

    def describe_table_statistics(
        self,
        *,
        replication_task_arn: str,
        max_records: int | None = None,
        marker: str | None = None,
        filters: list[Filter] | None = None,
    ) -> dict[str, Any]:
        """DescribeTableStatistics (every request member is acted on)."""
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            return self._table_statistics(
                task, filters, max_records, marker, "TableStatistics", "ReplicationTaskArn"
            )

    def _table_statistics(
        self,
        run: ReplicationTask,
        filters: list[Filter] | None,
        max_records: int | None,
        marker: str | None,
        key: str,
        arn_member: str,
    ) -> dict[str, Any]:
        """A page of a run's tables (a task's, or a serverless replication's)."""
        items = filtered(
            list(run.tables.values()),
            filters,
            {
                "schema-name": lambda t: [t.schema_name],
                "table-name": lambda t: [t.table_name],
                "table-state": lambda t: [t.state],
            },
            what=None,
        )
        return page_body(
            key, items, TableStatistics.to_api, max_records, marker,
            maximum=500, extra={arn_member: run.arn},
        )  # fmt: skip

    def reload_tables(
        self,
        *,
        replication_task_arn: str,
        tables_to_reload: list[TableToReload],
        reload_option: str = "data-reload",
    ) -> dict[str, Any]:
        """ReloadTables (every request member is acted on; ReloadOption validate-only is
        refused: localdms does not emulate data validation)."""
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            self._reload_tables(task, tables_to_reload, reload_option, "replication task")
            self._record_event(events.TASK_RELOAD_REQUESTED, task.identifier, task.arn)
            self._save()
            return {"ReplicationTaskArn": task.arn}

    def _reload_tables(
        self, run: ReplicationTask, tables: list[TableToReload], reload_option: str, what: str
    ) -> None:
        """Reload tables of a running run (a task's, or a serverless replication's)."""
        if not 1 <= len(tables) <= 10:
            raise InvalidParameterValueException("TablesToReload takes 1 to 10 tables.")
        if reload_option != "data-reload":
            raise InvalidParameterValueException(
                "localdms supports ReloadOption data-reload only (validation is not emulated)."
            )
        if run.status not in RELOADABLE:
            raise InvalidResourceStateFault(
                f"The {what} {run.arn} is {run.status}: tables can be reloaded only while it is "
                "in the RUNNING state."
            )
        keys = [(item["SchemaName"], item["TableName"]) for item in tables]
        for schema, table in keys:
            if table_key(schema, table) not in run.tables:
                raise ResourceNotFoundFault(
                    f"Table {schema}.{table} is not part of {what} {run.identifier}."
                )
        active = self.runs.get(run.arn)
        if active is None or not active.reload(keys):
            raise InvalidResourceStateFault(
                f"The {what} {run.arn} is finishing its load: tables can be reloaded only while "
                "it is in the RUNNING state. Start it with resume-processing."
            )
        now = time.time()
        for schema, table in keys:
            run.tables[table_key(schema, table)].reload(now)
