"""The only code that talks to DMS: a thin layer over a boto3 client.

It serialises what DMS wants (JSON strings), waits with declarative botocore waiters
(``waiters.json``, and botocore's own), and turns terminal API errors into ``DmsApiError``
while letting transient ones (throttling, 5xx, lost connections) propagate to the callers'
retries. The flow makes one hook per run: it counts every call the run
makes, boto3's own retries and the transient errors that reached the flow, for the report.

Waiting for a lifecycle transition (created → ready, started → running; the tasks of
``flows/tasks.py`` decide when to wait, ``_settle`` after a create or modify) polls on a short,
growing delay (``lifecycle_delays``) up to the caller's interval: DMS often settles in a second
or two, and a fixed 15 s delay would spend the rest asleep.

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
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.waiter
from botocore import xform_name

from dms_spec.serverless import task_status
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


SERVERLESS_WAITERS = {
    "FullLoadStarted": "ReplicationFullLoadStarted",
    "ReplicationTaskStoppedAfterStop": "ReplicationStoppedAfterStop",
}
"""For a replication config: the ``waiters.json`` waiter that means what the task waiter means."""


def is_serverless(arn: str) -> bool:
    """Whether ``arn`` is a DMS Serverless replication config's (the flow's other ARNs are
    tasks').

    Example:
        >>> is_serverless("arn:aws:dms:us-east-1:123456789012:replication-config:ABC")
        True
    """
    return ":replication-config:" in arn


def as_task(replication: dict[str, Any]) -> dict[str, Any]:
    """A DescribeReplications item in the shape of a DescribeReplicationTasks one, so that the
    flow's decisions and report read either: ``Status`` as the task status it corresponds to
    (``dms_spec.serverless.task_status``; the replication's own is kept as
    ``ReplicationStatus``), ``ReplicationTaskStats`` from ``ReplicationStats``,
    ``LastFailureMessage`` from ``FailureMessages``.

    Example:
        >>> as_task({"ReplicationConfigArn": "arn:c", "Status": "fetching_metadata"})["Status"]
        'starting'
    """
    status = str(replication.get("Status", ""))
    view = {
        **replication,
        "ReplicationTaskArn": replication.get("ReplicationConfigArn"),
        "ReplicationTaskIdentifier": replication.get("ReplicationConfigIdentifier"),
        "MigrationType": replication.get("ReplicationType"),
        "Status": task_status(status),
        "ReplicationStatus": status,
    }
    if "ReplicationStats" in replication:
        view["ReplicationTaskStats"] = replication["ReplicationStats"]
    if "ReplicationStats" in replication and "StartDate" in replication["ReplicationStats"]:
        view["ReplicationTaskStartDate"] = replication["ReplicationStats"]["StartDate"]
    if replication.get("FailureMessages"):
        view["LastFailureMessage"] = "; ".join(replication["FailureMessages"])
    return view


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

    def instance_identifier(self, arn: str) -> str | None:
        """The ReplicationInstanceIdentifier of the instance with this ARN (None when gone)."""
        try:
            instances = self._call(
                "describe_replication_instances",
                Filters=[{"Name": "replication-instance-arn", "Values": [arn]}],
            )["ReplicationInstances"]
        except DmsApiError as exc:
            if exc.code == "ResourceNotFoundFault":
                return None
            raise
        return str(instances[0]["ReplicationInstanceIdentifier"]) if instances else None

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
        """The task with this ARN (without its settings document); for a replication config's
        ARN, its replication seen as a task (``as_task``)."""
        if is_serverless(arn):
            return as_task(self.describe_replication(arn))
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

    def start_task(
        self, arn: str, start_type: str, premigration_settings: str | None = None
    ) -> dict[str, Any]:
        """StartReplicationTask, or StartReplication for a replication config's ARN (with its
        PremigrationAssessmentSettings, when given)."""
        if is_serverless(arn):
            extra = (
                {"PremigrationAssessmentSettings": premigration_settings}
                if premigration_settings
                else {}
            )
            return as_task(
                self._call(
                    "start_replication", ReplicationConfigArn=arn, StartReplicationType=start_type,
                    **extra,
                )["Replication"]
            )  # fmt: skip
        task: dict[str, Any] = self._call(
            "start_replication_task", ReplicationTaskArn=arn, StartReplicationTaskType=start_type
        )["ReplicationTask"]
        return task

    def stop_task(self, arn: str) -> dict[str, Any]:
        """StopReplicationTask, or StopReplication for a replication config's ARN."""
        if is_serverless(arn):
            return as_task(self._call("stop_replication", ReplicationConfigArn=arn)["Replication"])
        task: dict[str, Any] = self._call("stop_replication_task", ReplicationTaskArn=arn)[
            "ReplicationTask"
        ]
        return task

    def delete_task(self, arn: str) -> None:
        """DeleteReplicationTask, or DeleteReplicationConfig for a replication config's ARN."""
        if is_serverless(arn):
            self._call("delete_replication_config", ReplicationConfigArn=arn)
        else:
            self._call("delete_replication_task", ReplicationTaskArn=arn)

    def reload_tables(self, arn: str, tables: list[tuple[str, str]]) -> None:
        """ReloadTables, or ReloadReplicationTables for a replication config's ARN."""
        operation, member = (
            ("reload_replication_tables", "ReplicationConfigArn")
            if is_serverless(arn)
            else ("reload_tables", "ReplicationTaskArn")
        )
        self._call(
            operation,
            **{member: arn},
            TablesToReload=[{"SchemaName": s, "TableName": t} for s, t in tables],
            ReloadOption="data-reload",
        )

    def table_statistics(self, arn: str) -> list[dict[str, Any]]:
        """Every table's statistics, in pages of 500 (one call per 500 tables); a replication
        config's from DescribeReplicationTableStatistics (the same members)."""
        operation, member, key = (
            ("describe_replication_table_statistics", "ReplicationConfigArn",
             "ReplicationTableStatistics")
            if is_serverless(arn)
            else ("describe_table_statistics", "ReplicationTaskArn", "TableStatistics")
        )  # fmt: skip
        statistics: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = self._call(
                operation,
                **{member: arn},
                MaxRecords=TABLE_STATISTICS_PAGE,
                **({"Marker": marker} if marker else {}),
            )
            statistics.extend(page.get(key, []))
            marker = page.get("Marker")
            if not marker:
                return statistics

    # ------------------------------------------------------------------ assessments
    def start_assessment_run(self, **parameters: Any) -> dict[str, Any]:
        """StartReplicationTaskAssessmentRun with the AWS parameter names; returns the run."""
        run: dict[str, Any] = self._call("start_replication_task_assessment_run", **parameters)[
            "ReplicationTaskAssessmentRun"
        ]
        return run

    def describe_assessment_run(self, arn: str) -> dict[str, Any]:
        runs = self._call(
            "describe_replication_task_assessment_runs",
            Filters=[{"Name": "replication-task-assessment-run-arn", "Values": [arn]}],
        )["ReplicationTaskAssessmentRuns"]
        run: dict[str, Any] = runs[0]
        return run

    def individual_assessments(self, run_arn: str) -> list[dict[str, Any]]:
        """Every individual assessment of a run (all pages)."""
        found: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = self._call(
                "describe_replication_task_individual_assessments",
                Filters=[{"Name": "replication-task-assessment-run-arn", "Values": [run_arn]}],
                **({"Marker": marker} if marker else {}),
            )
            found.extend(page.get("ReplicationTaskIndividualAssessments", []))
            marker = page.get("Marker")
            if not marker:
                return found

    # ------------------------------------------------------------------ DMS Serverless
    def find_config(self, identifier: str) -> dict[str, Any] | None:
        """The replication config with this identifier, or None."""
        try:
            configs = self._call(
                "describe_replication_configs",
                Filters=[{"Name": "replication-config-id", "Values": [identifier]}],
            )["ReplicationConfigs"]
        except DmsApiError as exc:
            if exc.code == "ResourceNotFoundFault":
                return None
            raise
        return configs[0] if configs else None

    def find_replication(
        self, identifier: str, serverless: bool
    ) -> tuple[str, dict[str, Any]] | None:
        """The replication task (or, ``serverless``, the DMS Serverless replication config) with
        this identifier, as (its ARN, its description); None when there is none."""
        if serverless:
            found, key = self.find_config(identifier), "ReplicationConfigArn"
        else:
            found, key = self.find_task(identifier), "ReplicationTaskArn"
        return (str(found[key]), found) if found else None

    def describe_replication(self, arn: str) -> dict[str, Any]:
        """The replication of the replication config with this ARN (DescribeReplications)."""
        replications = self._call(
            "describe_replications",
            Filters=[{"Name": "replication-config-arn", "Values": [arn]}],
        )["Replications"]
        replication: dict[str, Any] = replications[0]
        return replication

    def create_config(self, **parameters: Any) -> dict[str, Any]:
        """CreateReplicationConfig with the AWS parameter names; returns the config."""
        config: dict[str, Any] = self._call("create_replication_config", **parameters)[
            "ReplicationConfig"
        ]
        return config

    def modify_config(self, arn: str, **parameters: Any) -> dict[str, Any]:
        config: dict[str, Any] = self._call(
            "modify_replication_config", ReplicationConfigArn=arn, **parameters
        )["ReplicationConfig"]
        return config

    def wait(
        self,
        waiter_name: str,
        arn: str,
        max_delay: float,
        timeout: float,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Run one of ``waiters.json``'s waiters on the task, polling on ``lifecycle_delays``;
        for a replication config's ARN, the waiter of the same meaning on its replication
        (``SERVERLESS_WAITERS``).

        Args:
            on_poll: called with each answer that did not end the wait (to show progress).

        Raises:
            botocore.exceptions.WaiterError: a failure acceptor matched, or time ran out.
        """
        serverless = is_serverless(arn)
        name = SERVERLESS_WAITERS[waiter_name] if serverless else waiter_name
        waiter = botocore.waiter.create_waiter_with_client(name, _waiter_model(), self.client)
        self._poll(
            waiter, arn, max_delay, timeout, on_poll,
            **({} if serverless else {"WithoutSettings": True}),
        )  # fmt: skip

    def wait_deleted(self, arn: str, max_delay: float, timeout: float) -> None:
        """botocore's own ``replication_task_deleted`` waiter (``ReplicationConfigDeleted`` of
        ``waiters.json`` for a replication config), polling on ``lifecycle_delays``."""
        waiter = (
            botocore.waiter.create_waiter_with_client(
                "ReplicationConfigDeleted", _waiter_model(), self.client
            )
            if is_serverless(arn)
            else self.client.get_waiter("replication_task_deleted")
        )
        self._poll(waiter, arn, max_delay, timeout)

    def _poll(
        self,
        waiter: Any,
        arn: str,
        max_delay: float,
        timeout: float,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
        **kwargs: Any,
    ) -> None:
        """Run ``waiter`` one attempt at a time, so its acceptors decide and the delay can grow.

        A transient error answer (throttling, 5xx) is counted and polled again, where botocore's
        waiter would stop with "An error occurred".
        """
        deadline = time.monotonic() + timeout
        operation = xform_name(waiter.config.operation)
        arn_filter = "replication-config-arn" if is_serverless(arn) else "replication-task-arn"
        for delay in lifecycle_delays(max_delay):
            self.calls[operation] += 1
            try:
                waiter.wait(
                    Filters=[{"Name": arn_filter, "Values": [arn]}],
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
                elif on_poll is not None:
                    on_poll(response)
                if time.monotonic() + delay > deadline:
                    raise botocore.exceptions.WaiterError(
                        name=exc.kwargs.get("name", "waiter"),
                        reason="Max attempts exceeded",
                        last_response=response,  # type: ignore[arg-type]
                    ) from exc
            time.sleep(delay)
