"""The DMS hook and retry policy, with botocore's Stubber and real-shaped responses."""

from datetime import UTC, datetime

import boto3
import botocore.exceptions
import pytest
from botocore.stub import ANY, Stubber
from prefect.states import Completed, Failed

from flows.dms_hook import DmsHook
from flows.exceptions import DmsApiError, is_transient
from flows.tasks import retry_on_transient

pytestmark = pytest.mark.unit

ARN = "arn:aws:dms:us-east-1:123456789012:task:OEAMB3NXSTZ6LFYZFEPPBBXPYM"
NO_TABLES = (
    "Last Error  No tables were found at task initialization. Either the selected table(s) or schemas(s) "
    "no longer exist or no match was found for the table selection pattern(s). If you would like to start "
    "a Task that does not initially capture any tables, set Task Setting FailOnNoTablesCaptured to false "
    "and restart task. Stop Reason FATAL_ERROR Error Level FATAL"
)


def task(status: str, **extra) -> dict:
    return {
        "ReplicationTaskIdentifier": "postgres-migration-test", "ReplicationTaskArn": ARN,
        "SourceEndpointArn": "arn:aws:dms:us-east-1:123456789012:endpoint:S",
        "TargetEndpointArn": "arn:aws:dms:us-east-1:123456789012:endpoint:T",
        "ReplicationInstanceArn": "arn:aws:dms:us-east-1:123456789012:rep:R",
        "MigrationType": "full-load", "TableMappings": "{}", "Status": status,
        "ReplicationTaskCreationDate": datetime(2026, 1, 1, tzinfo=UTC), **extra,
    }  # fmt: skip


@pytest.fixture
def stubbed():
    client = boto3.client(
        "dms", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield DmsHook(client), stubber
        stubber.assert_no_pending_responses()


def describe(stubber, *tasks):
    for item in tasks:
        stubber.add_response(
            "describe_replication_tasks",
            {"ReplicationTasks": [item]},
            {"Filters": ANY, "WithoutSettings": True},
        )


def test_full_load_started_accepts_a_load_that_finished_between_polls(stubbed):
    hook, stubber = stubbed
    describe(
        stubber, task("starting"), task("stopped", StopReason="Stop Reason FULL_LOAD_ONLY_FINISHED")
    )
    hook.wait("FullLoadStarted", ARN, max_delay=0.01, timeout=1)


def test_full_load_started_fails_on_the_no_tables_failure(stubbed):
    hook, stubber = stubbed
    describe(
        stubber,
        task("starting"),
        task("failed", StopReason=NO_TABLES, LastFailureMessage=NO_TABLES),
    )
    with pytest.raises(botocore.exceptions.WaiterError, match="terminal failure state"):
        hook.wait("FullLoadStarted", ARN, max_delay=0.01, timeout=1)


def test_full_load_started_fails_on_a_user_stop(stubbed):
    hook, stubber = stubbed
    describe(stubber, task("stopped", StopReason="Stop Reason NORMAL"))
    with pytest.raises(botocore.exceptions.WaiterError):
        hook.wait("FullLoadStarted", ARN, max_delay=0.01, timeout=1)


def test_settled_waits_through_modifying(stubbed):
    hook, stubber = stubbed
    describe(stubber, task("modifying"), task("modifying"), task("stopped"))
    hook.wait("ReplicationTaskSettled", ARN, max_delay=0.01, timeout=1)


def test_find_task_returns_none_on_resource_not_found(stubbed):
    hook, stubber = stubbed
    stubber.add_client_error(
        "describe_replication_tasks", "ResourceNotFoundFault", "No replication tasks found"
    )
    assert hook.find_task("postgres-migration-test") is None


def test_terminal_errors_become_dms_api_errors_and_transient_ones_propagate(stubbed):
    hook, stubber = stubbed
    stubber.add_client_error(
        "start_replication_task", "InvalidResourceStateFault", "Task is running", 400
    )
    with pytest.raises(DmsApiError, match="InvalidResourceStateFault: Task is running") as excinfo:
        hook.start_task(ARN, "reload-target")
    assert excinfo.value.code == "InvalidResourceStateFault"
    stubber.add_client_error("start_replication_task", "ThrottlingException", "Rate exceeded", 400)
    with pytest.raises(botocore.exceptions.ClientError) as raw:
        hook.start_task(ARN, "reload-target")
    assert is_transient(raw.value)


def test_table_statistics_reads_pages_of_500(stubbed):
    hook, stubber = stubbed
    page = [
        {"SchemaName": "s", "TableName": f"t{i}", "TableState": "Table completed"}
        for i in range(500)
    ]
    stubber.add_response("describe_table_statistics", {"ReplicationTaskArn": ARN, "TableStatistics": page, "Marker": "m"},
                         {"ReplicationTaskArn": ARN, "MaxRecords": 500})  # fmt: skip
    stubber.add_response("describe_table_statistics", {"ReplicationTaskArn": ARN, "TableStatistics": page[:100]},
                         {"ReplicationTaskArn": ARN, "MaxRecords": 500, "Marker": "m"})  # fmt: skip
    assert len(hook.table_statistics(ARN)) == 600
    assert hook.calls["describe_table_statistics"] == 2


def client_error(code: str, status: int = 400) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "StartReplicationTask",
    )


@pytest.mark.parametrize(
    ("exception", "retried"),
    [
        (client_error("ThrottlingException"), True),
        (client_error("InternalFailure", 500), True),
        (client_error("Whatever", 503), True),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), True),
        (client_error("ResourceNotFoundFault"), False),
        (client_error("InvalidResourceStateFault"), False),
        (DmsApiError("StartReplicationTask", "InvalidParameterValueException", "bad"), False),
        (ValueError("bug"), False),
    ],
)
async def test_retry_only_transient_errors(exception, retried):
    # async, as in the task engine of an async task, where State.result returns a coroutine
    run = type("TaskRun", (), {"flow_run_id": "f"})()
    assert retry_on_transient(None, run, Failed(data=exception)) is retried  # type: ignore[arg-type]


async def test_a_successful_state_is_not_retried():
    run = type("TaskRun", (), {"flow_run_id": "f"})()
    assert retry_on_transient(None, run, Completed(data=1)) is False  # type: ignore[arg-type]


async def test_a_task_deleted_while_settling_fails_with_what_to_do(stubbed):
    from flows.exceptions import ReplicationTaskConflictError
    from flows.tasks import _settle

    hook, stubber = stubbed
    describe(stubber, task("creating"), task("deleting"))
    with pytest.raises(
        ReplicationTaskConflictError, match=r"became deleting instead of ready.*run the flow again"
    ):
        await _settle(hook, ARN, 0.01)


def test_lifecycle_waits_poll_on_a_growing_delay_up_to_the_interval(stubbed, monkeypatch):
    """A task ready after a few seconds is seen then, not after a whole 15 s poll interval."""
    hook, stubber = stubbed
    slept: list[float] = []
    monkeypatch.setattr("flows.dms_hook.time.sleep", slept.append)
    describe(stubber, *[task("creating")] * 8, task("ready"))

    hook.wait("ReplicationTaskSettled", ARN, max_delay=4, timeout=600)

    assert slept == [1.0, 1.5, 2.25, 3.38, 4, 4, 4, 4]
    assert hook.calls["describe_replication_tasks"] == 9


def test_a_throttled_poll_while_waiting_is_counted_and_polled_again(stubbed, monkeypatch):
    hook, stubber = stubbed
    monkeypatch.setattr("flows.dms_hook.time.sleep", lambda seconds: None)
    stubber.add_client_error(
        "describe_replication_tasks", "ThrottlingException", "Rate exceeded", 400
    )
    describe(stubber, task("running"))

    hook.wait("FullLoadStarted", ARN, max_delay=1, timeout=60)

    assert hook.transient_errors == 1


def test_a_wait_that_runs_out_of_time_says_max_attempts_exceeded(stubbed, monkeypatch):
    hook, stubber = stubbed
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("flows.dms_hook.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("flows.dms_hook.time.sleep", lambda seconds: None)
    describe(stubber, task("starting"), task("starting"))

    with pytest.raises(botocore.exceptions.WaiterError, match="Max attempts exceeded"):
        hook.wait("FullLoadStarted", ARN, max_delay=1, timeout=15)


def test_the_hook_counts_every_call_and_the_sdk_retries(stubbed):
    hook, stubber = stubbed
    stubber.add_response(
        "describe_endpoints",
        {
            "Endpoints": [{"EndpointArn": "arn:e", "EngineName": "s3"}],
            "ResponseMetadata": {"RetryAttempts": 2},
        },
        {"Filters": [{"Name": "endpoint-arn", "Values": ["arn:e"]}]},
    )
    assert hook.describe_endpoint("arn:e")["EngineName"] == "s3"
    assert hook.calls == {"describe_endpoints": 1}
    assert hook.sdk_retries == 2
