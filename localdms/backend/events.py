"""The events of instances and tasks and the task logs: DescribeEvents,
DescribeEventCategories, DescribeReplicationInstanceTaskLogs.

Events are recorded by ``BackendBase._note_changes`` as statuses change (the mapping of a
status change to a DMS event is ``dms_spec.events``), and by ReloadTables. A task's log here is
the lines of its events, so its size grows with each start, stop and failure.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from dms_spec import events
from localdms.backend.base import BackendBase
from localdms.backend.queries import page_body
from localdms.backend.records import Event
from localdms.backend.shapes import Filter
from localdms.exceptions import InvalidParameterValueException


def _epoch(value: float | str | None) -> float | None:
    """A timestamp member as seconds since the epoch (boto3 sends numbers; the CLI may send
    ISO 8601 text)."""
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _no_filters(filters: list[Filter] | None, operation: str) -> None:
    if filters:
        raise InvalidParameterValueException(
            f"localdms's {operation} takes no Filters; select with its other parameters "
            "(SourceType, SourceIdentifier, EventCategories, StartTime, EndTime, Duration)."
        )


class EventBackend(BackendBase):
    """The event and task-log operations."""

    def describe_events(
        self,
        *,
        source_identifier: str | None = None,
        source_type: str | None = None,
        start_time: float | str | None = None,
        end_time: float | str | None = None,
        duration: int | None = None,
        event_categories: list[str] | None = None,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeEvents, oldest first.

        ``Duration`` is minutes before ``EndTime`` (or now); with no time given, every event
        kept (the newest 1,000). Filters are refused (the API names none for events).
        """
        with self.lock:
            self._advance()
            _no_filters(filters, "DescribeEvents")
            if source_type is not None and source_type not in events.CATEGORIES:
                raise InvalidParameterValueException(
                    f"SourceType {source_type!r} is not valid: use "
                    f"{' or '.join(events.CATEGORIES)}."
                )
            end = _epoch(end_time)
            start = _epoch(start_time)
            if duration is not None:
                start = (end or time.time()) - 60 * duration
            categories = {c.lower() for c in event_categories or ()}

            def wanted(event: Event) -> bool:
                return (
                    (source_type is None or event.source_type == source_type)
                    and source_identifier in (None, event.source_identifier)
                    and (not categories or event.category in categories)
                    and (start is None or event.date >= start)
                    and (end is None or event.date <= end)
                )

            items = [event for event in self.state.events if wanted(event)]
            return page_body("Events", items, Event.to_api, max_records, marker)

    def describe_event_categories(
        self, *, source_type: str | None = None, filters: list[Filter] | None = None
    ) -> dict[str, Any]:
        """DescribeEventCategories: the categories of the guide's event tables."""
        _no_filters(filters, "DescribeEventCategories")
        groups = [
            {"SourceType": kind, "EventCategories": list(categories)}
            for kind, categories in events.CATEGORIES.items()
            if source_type in (None, kind)
        ]
        return {"EventCategoryGroupList": groups}

    def describe_replication_instance_task_logs(
        self,
        *,
        replication_instance_arn: str,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationInstanceTaskLogs: each task of the instance and its log's size."""
        with self.lock:
            self._advance()
            instance = self._instance(replication_instance_arn)
            sizes: dict[str, int] = {}
            for event in self.state.events:
                sizes[event.source_arn] = sizes.get(event.source_arn, 0) + len(
                    event.log_line().encode()
                )
            tasks = [t for t in self.tasks.values() if t.instance_arn == instance.arn]
            return page_body(
                "ReplicationInstanceTaskLogs",
                tasks,
                lambda task: {
                    "ReplicationTaskName": task.identifier,
                    "ReplicationTaskArn": task.arn,
                    "ReplicationInstanceTaskLogSize": sizes.get(task.arn, 0),
                },
                max_records,
                marker,
                extra={"ReplicationInstanceArn": instance.arn},
            )
