"""The only code that talks to DMS: a thin layer over a boto3 client.

It serialises what DMS wants (JSON strings), owns post-conditions ("created" means "ready"),
waits with declarative botocore waiters (``waiters.json``), and turns terminal API errors into
``DmsApiError`` while letting transient ones (throttling, 5xx, lost connections) propagate to the
callers' retries. It counts the calls it makes, so monitoring cost can be measured.

Example:
    >>> import boto3
    >>> hook = DmsHook(boto3.client("dms", region_name="us-east-1"))  # doctest: +SKIP
    >>> hook.find_task("postgres-migration-test")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.waiter

from flows.exceptions import DmsApiError, is_transient

WAITERS_FILE = Path(__file__).with_name("waiters.json")
TABLE_STATISTICS_PAGE = 500


@cache
def _waiter_model() -> botocore.waiter.WaiterModel:
    return botocore.waiter.WaiterModel(json.loads(WAITERS_FILE.read_text()))


class DmsHook:
    """DMS operations the flow needs, on one boto3 ``dms`` client.

    Args:
        client: a boto3 ``dms`` client.
        on_sdk_retries: told how many times boto3 itself retried a call (throttling, 5xx), when
            it did.
    """

    def __init__(self, client: Any, on_sdk_retries: Callable[[int], None] | None = None) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        self.on_sdk_retries = on_sdk_retries

    def _count_retries(self, response: dict[str, Any]) -> None:
        retries = int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        if retries and self.on_sdk_retries is not None:
            self.on_sdk_retries(retries)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self.calls[operation] += 1
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**kwargs)
            self._count_retries(response)
        except botocore.exceptions.ClientError as exc:
            self._count_retries(dict(exc.response))
            if is_transient(exc):
                raise
            error = exc.response.get("Error", {})
            raise DmsApiError(
                operation, error.get("Code", "Unknown"), error.get("Message", "")
            ) from exc
        return response

    def find_task(self, identifier: str) -> dict[str, Any] | None:
        """The task with this identifier, or None (DMS answers ResourceNotFoundFault)."""
        try:
            tasks = self._call(
                "describe_replication_tasks",
                Filters=[{"Name": "replication-task-id", "Values": [identifier]}],
            )["ReplicationTasks"]
        except DmsApiError as exc:
            if exc.code == "ResourceNotFoundFault":
                return None
            raise
        return tasks[0] if tasks else None

    def describe_task(self, arn: str) -> dict[str, Any]:
        """The task with this ARN (without its settings document)."""
        tasks = self._call(
            "describe_replication_tasks",
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}],
            WithoutSettings=True,
        )["ReplicationTasks"]
        task: dict[str, Any] = tasks[0]
        return task

    def create_task(self, **parameters: Any) -> dict[str, Any]:
        """CreateReplicationTask with the AWS parameter names; returns the task (``creating``)."""
        task: dict[str, Any] = self._call("create_replication_task", **parameters)[
            "ReplicationTask"
        ]
        return task

    def modify_task(self, arn: str, **parameters: Any) -> dict[str, Any]:
        task: dict[str, Any] = self._call(
            "modify_replication_task", ReplicationTaskArn=arn, **parameters
        )["ReplicationTask"]
        return task

    def start_task(self, arn: str, start_type: str) -> dict[str, Any]:
        task: dict[str, Any] = self._call(
            "start_replication_task", ReplicationTaskArn=arn, StartReplicationTaskType=start_type
        )["ReplicationTask"]
        return task

    def stop_task(self, arn: str) -> dict[str, Any]:
        task: dict[str, Any] = self._call("stop_replication_task", ReplicationTaskArn=arn)[
            "ReplicationTask"
        ]
        return task

    def delete_task(self, arn: str) -> None:
        self._call("delete_replication_task", ReplicationTaskArn=arn)

    def reload_tables(self, arn: str, tables: list[tuple[str, str]]) -> None:
        self._call(
            "reload_tables",
            ReplicationTaskArn=arn,
            TablesToReload=[{"SchemaName": s, "TableName": t} for s, t in tables],
            ReloadOption="data-reload",
        )

    def table_statistics(self, arn: str) -> list[dict[str, Any]]:
        """Every table's statistics, in pages of 500 (one call per 500 tables)."""
        statistics: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = self._call(
                "describe_table_statistics",
                ReplicationTaskArn=arn,
                MaxRecords=TABLE_STATISTICS_PAGE,
                **({"Marker": marker} if marker else {}),
            )
            statistics.extend(page.get("TableStatistics", []))
            marker = page.get("Marker")
            if not marker:
                return statistics

    def wait(self, waiter_name: str, arn: str, delay: float, timeout: float) -> None:
        """Run one of ``waiters.json``'s waiters on the task.

        Raises:
            botocore.exceptions.WaiterError: a failure acceptor matched, or time ran out.
        """
        waiter = botocore.waiter.create_waiter_with_client(
            waiter_name, _waiter_model(), self.client
        )
        self.calls["describe_replication_tasks"] += 1  # at least one; a close enough count
        waiter.wait(
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}],
            WithoutSettings=True,
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))},
        )

    def wait_deleted(self, arn: str, delay: float, timeout: float) -> None:
        """botocore's own ``replication_task_deleted`` waiter."""
        self.client.get_waiter("replication_task_deleted").wait(
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}],
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))},
        )
