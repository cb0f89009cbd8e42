"""The only code that talks to DMS: a thin layer over a boto3 client.

It serialises what DMS wants (JSON strings), owns post-conditions ("created" means "ready"),
waits with declarative botocore waiters (``waiters.json``, and botocore's own), and turns terminal
API errors into ``DmsApiError`` while letting transient ones (throttling, 5xx, lost connections)
propagate to the callers' retries. The flow makes one hook per run: it counts every call the run
makes, boto3's own retries and the transient errors that reached the flow, for the report.

Waiting for a lifecycle transition (created → ready, started → running) polls on a short, growing
delay (``lifecycle_delays``) up to the caller's interval: DMS often settles in a second or two, and
a fixed 15 s delay would spend the rest asleep.

Example:
    >>> import boto3
    >>> import itertools
    >>> hook = DmsHook(boto3.client("dms", region_name="us-east-1"))  # doctest: +SKIP
    >>> hook.find_task("postgres-migration-test")  # doctest: +SKIP
    >>> list(itertools.islice(lifecycle_delays(15), 6))
    [1.0, 1.5, 2.25, 3.38, 5.06, 7.59]
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.waiter

from flows.exceptions import TRANSIENT_ERROR_CODES, DmsApiError, is_transient

WAITERS_FILE = Path(__file__).with_name("waiters.json")
TABLE_STATISTICS_PAGE = 500
FIRST_LIFECYCLE_DELAY = 1.0
LIFECYCLE_DELAY_GROWTH = 1.5


@cache
def _waiter_model() -> botocore.waiter.WaiterModel:
    return botocore.waiter.WaiterModel(json.loads(WAITERS_FILE.read_text()))


def lifecycle_delays(max_delay: float) -> Iterator[float]:
    """Delays between polls of a transition: 1 s, then 1.5 times longer each time, up to
    ``max_delay`` (and never more than it)."""
    delay = min(FIRST_LIFECYCLE_DELAY, max_delay)
    while True:
        yield round(delay, 2)
        delay = min(delay * LIFECYCLE_DELAY_GROWTH, max_delay)


def _transient_response(response: dict[str, Any]) -> bool:
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in TRANSIENT_ERROR_CODES or status >= 500


class DmsHook:
    """DMS operations the flow needs, on one boto3 ``dms`` client.

    Args:
        client: a boto3 ``dms`` client.

    Attributes:
        calls: DMS API calls made, by operation (a waiter's polls included).
        sdk_retries: throttling/5xx answers boto3 retried by itself, within one call.
        transient_errors: transient errors that outlasted boto3's retries and reached the flow
            (its tasks retry them, a monitoring poll or a wait tries again).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        self.sdk_retries = 0
        self.transient_errors = 0

    def _count_retries(self, response: dict[str, Any]) -> None:
        self.sdk_retries += int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self.calls[operation] += 1
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**kwargs)
            self._count_retries(response)
        except botocore.exceptions.ClientError as exc:
            self._count_retries(dict(exc.response))
            if is_transient(exc):
                self.transient_errors += 1
                raise
            error = exc.response.get("Error", {})
            raise DmsApiError(
                operation, error.get("Code", "Unknown"), error.get("Message", "")
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            if is_transient(exc):
                self.transient_errors += 1
            raise
        return response

    def describe_endpoint(self, arn: str) -> dict[str, Any]:
        """The endpoint with this ARN (DMS answers ResourceNotFoundFault when there is none)."""
        endpoints = self._call(
            "describe_endpoints", Filters=[{"Name": "endpoint-arn", "Values": [arn]}]
        )["Endpoints"]
        endpoint: dict[str, Any] = endpoints[0]
        return endpoint

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

    def wait(self, waiter_name: str, arn: str, max_delay: float, timeout: float) -> None:
        """Run one of ``waiters.json``'s waiters on the task, polling on ``lifecycle_delays``.

        Raises:
            botocore.exceptions.WaiterError: a failure acceptor matched, or time ran out.
        """
        waiter = botocore.waiter.create_waiter_with_client(
            waiter_name, _waiter_model(), self.client
        )
        self._poll(waiter, arn, max_delay, timeout, WithoutSettings=True)

    def wait_deleted(self, arn: str, max_delay: float, timeout: float) -> None:
        """botocore's own ``replication_task_deleted`` waiter, polling on ``lifecycle_delays``."""
        self._poll(self.client.get_waiter("replication_task_deleted"), arn, max_delay, timeout)

    def _poll(self, waiter: Any, arn: str, max_delay: float, timeout: float, **kwargs: Any) -> None:
        """Run ``waiter`` one attempt at a time, so its acceptors decide and the delay can grow.

        A transient error answer (throttling, 5xx) is counted and polled again, where botocore's
        waiter would stop with "An error occurred".
        """
        deadline = time.monotonic() + timeout
        for delay in lifecycle_delays(max_delay):
            self.calls["describe_replication_tasks"] += 1
            try:
                waiter.wait(
                    Filters=[{"Name": "replication-task-arn", "Values": [arn]}],
                    WaiterConfig={"Delay": 0, "MaxAttempts": 1},
                    **kwargs,
                )
                return
            except botocore.exceptions.WaiterError as exc:
                response: dict[str, Any] = dict(exc.last_response or {})
                self._count_retries(response)
                if _transient_response(response):
                    self.transient_errors += 1
                elif exc.kwargs.get("reason") != "Max attempts exceeded":
                    raise
                if time.monotonic() + delay > deadline:
                    raise botocore.exceptions.WaiterError(
                        name=exc.kwargs.get("name", "waiter"),
                        reason="Max attempts exceeded",
                        last_response=response,  # type: ignore[arg-type]
                    ) from exc
            time.sleep(delay)
