"""The localdms backend without PostgreSQL or S3: the task state machine, DMS's refusals,
filters, pages and persistence, through the operations a client calls (request dicts in, response
bodies out, through the server's response layer)."""

from __future__ import annotations

import inspect
import json
import time
from typing import Any

import pytest
from botocore import xform_name

from dms_spec.status import StopReason, TableState, TaskStatus
from localdms.backend import DmsBackend
from localdms.backend.resources import ReplicationTask
from localdms.backend.table_statistics import TableStatistics
from localdms.exceptions import (
    InvalidAction,
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
)
from localdms.responses import (
    SUPPORTED,
    TARGET_PREFIX,
    dispatch,
    handler,
    ignored_members,
    service_model,
)
from localdms.store import Store

pytestmark = pytest.mark.unit

RULES = json.dumps({"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
                               "rule-action": "include",
                               "object-locator": {"schema-name": "s", "table-name": "%"}}]})  # fmt: skip


def call(dms: DmsBackend, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """Answer a request as the server does: checked against the model, then the backend."""
    return dispatch(dms, TARGET_PREFIX + operation, request)


def no_s3() -> None:
    raise AssertionError("the unit layer never reaches S3")


def backend(store: Store | None = None) -> DmsBackend:
    return DmsBackend(store or Store(None), no_s3, transition_seconds=0)


def provision(dms: DmsBackend) -> dict[str, str]:
    instance = call(
        dms,
        "CreateReplicationInstance",
        {"ReplicationInstanceIdentifier": "i", "ReplicationInstanceClass": "dms.t3.micro"},
    )["ReplicationInstance"]["ReplicationInstanceArn"]
    source = call(dms, "CreateEndpoint",
        {"EndpointIdentifier": "src", "EndpointType": "source", "EngineName": "postgres",
         "ServerName": "127.0.0.1", "Port": 5432, "DatabaseName": "d", "Username": "u",
         "Password": "secret-pw"}
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    target = call(dms, "CreateEndpoint",
        {"EndpointIdentifier": "dst", "EndpointType": "target", "EngineName": "s3",
         "S3Settings": {"BucketName": "b", "BucketFolder": "raw"}}
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    return {"ReplicationInstanceArn": instance, "SourceEndpointArn": source,
            "TargetEndpointArn": target}  # fmt: skip


def create_task(dms: DmsBackend, arns: dict[str, str], name: str = "t") -> str:
    task = call(dms, "CreateReplicationTask",
        {"ReplicationTaskIdentifier": name, "MigrationType": "full-load", "TableMappings": RULES,
         **arns}
    )["ReplicationTask"]  # fmt: skip
    assert task["Status"] == "creating"
    return str(task["ReplicationTaskArn"])


def status(dms: DmsBackend, arn: str) -> str:
    filters = [{"Name": "replication-task-arn", "Values": [arn]}]
    return str(
        call(dms, "DescribeReplicationTasks", {"Filters": filters})["ReplicationTasks"][0]["Status"]
    )


def test_a_created_task_becomes_ready_and_can_be_modified_then_deleted():
    dms = backend()
    arn = create_task(dms, provision(dms))
    assert status(dms, arn) == "ready"
    call(dms, "ModifyReplicationTask", {"ReplicationTaskArn": arn, "TableMappings": RULES})
    assert status(dms, arn) == "ready"  # modifying, then back (transition_seconds=0)
    call(dms, "DeleteReplicationTask", {"ReplicationTaskArn": arn})
    with pytest.raises(ResourceNotFoundFault):
        status(dms, arn)


def test_refusals_in_dms_words():
    dms = backend()
    arns = provision(dms)
    arn = create_task(dms, arns)
    with pytest.raises(ResourceAlreadyExistsFault):
        create_task(dms, arns)
    with pytest.raises(
        InvalidParameterCombinationException, match="valid only for tasks that have run"
    ):
        call(
            dms,
            "StartReplicationTask",
            {"ReplicationTaskArn": arn, "StartReplicationTaskType": "reload-target"},
        )
    with pytest.raises(InvalidResourceStateFault, match="currently not running"):
        call(dms, "StopReplicationTask", {"ReplicationTaskArn": arn})
    with pytest.raises(InvalidResourceStateFault, match="used by replication task"):
        call(dms, "DeleteEndpoint", {"EndpointArn": arns["SourceEndpointArn"]})
    with pytest.raises(InvalidResourceStateFault, match="tables can be reloaded only"):
        call(
            dms,
            "ReloadTables",
            {"ReplicationTaskArn": arn, "TablesToReload": [{"SchemaName": "s", "TableName": "x"}]},
        )
    dms.tasks[arn].has_run = True  # as after a first run
    with pytest.raises(InvalidParameterCombinationException, match="START_REPLICATION, valid only"):
        call(
            dms,
            "StartReplicationTask",
            {"ReplicationTaskArn": arn, "StartReplicationTaskType": "start-replication"},
        )
    with pytest.raises(InvalidParameterValueException, match="SslMode verify-full needs"):
        call(dms, "CreateEndpoint", {"EndpointIdentifier": "v", "EndpointType": "source", "EngineName": "postgres",
                             "ServerName": "h", "Port": 1, "DatabaseName": "d", "Username": "u",
                             "Password": "p", "SslMode": "verify-full"})  # fmt: skip


def test_a_task_run_moves_through_its_transitions():
    task = ReplicationTask(arn="arn", identifier="t", status=TaskStatus.READY, created=0.0)
    task.tables["k"] = TableStatistics("s", "t")
    task.begin(fresh=False, fresh_capture=True, now=1.0)
    assert (task.status, task.has_run, task.stop_reason) == (TaskStatus.STARTING, True, None)
    task.mark_running(2.0)
    task.tables["k"].start_load(2.0)
    task.stop(StopReason.NORMAL, 3.0)
    assert (task.status, task.tables["k"].state) == (TaskStatus.STOPPED, TableState.BEFORE_LOAD)
    task.begin(fresh=True, fresh_capture=True, now=4.0)
    assert task.tables == {}
    task.tables["k"] = TableStatistics("s", "t")
    task.tables["k"].fail("boom", 5.0)
    task.finish_load(6.0)
    assert task.stop_reason == StopReason.FULL_LOAD_ONLY_FINISHED
    assert task.last_failure_message == "Last Error  boom"


def test_filters_and_pages_as_dms():
    dms = backend()
    arns = provision(dms)
    for n in range(25):
        create_task(dms, arns, f"task-{n}")
    first = call(dms, "DescribeReplicationTasks", {"MaxRecords": 20})
    second = call(dms, "DescribeReplicationTasks", {"MaxRecords": 20, "Marker": first["Marker"]})
    assert len(first["ReplicationTasks"]) == 20
    assert len(second["ReplicationTasks"]) == 5
    assert "Marker" not in second
    with pytest.raises(InvalidParameterValueException, match="MaxRecords must be between 20"):
        call(dms, "DescribeReplicationTasks", {"MaxRecords": 5})
    with pytest.raises(ResourceNotFoundFault):
        call(
            dms,
            "DescribeReplicationTasks",
            {"Filters": [{"Name": "replication-task-id", "Values": ["nope"]}]},
        )
    with pytest.raises(InvalidParameterValueException, match="filter name"):
        call(dms, "DescribeEndpoints", {"Filters": [{"Name": "colour", "Values": ["x"]}]})


def test_state_round_trips_and_a_run_interrupted_by_a_crash_comes_back_failed(tmp_path):
    dms = backend(Store(tmp_path))
    arns = provision(dms)
    arn = create_task(dms, arns)
    dms.update_task(arn, lambda task: task.begin(fresh=True, fresh_capture=True, now=time.time()))
    dms.update_task(arn, lambda task: task.mark_running(time.time()))

    again = backend(Store(tmp_path))  # a new server on the same state directory

    task = call(again, "DescribeReplicationTasks", {})["ReplicationTasks"][0]
    assert task["Status"] == "failed"
    assert task["StopReason"] == "Stop Reason RECOVERABLE_ERROR"
    assert task["LastFailureMessage"].startswith(
        "Last Error  localdms stopped while the task was running"
    )
    assert task["LastFailureMessage"].endswith(
        "Stop Reason RECOVERABLE_ERROR Error Level RECOVERABLE"
    )
    endpoints = call(again, "DescribeEndpoints", {})["Endpoints"]
    assert {e["EndpointIdentifier"] for e in endpoints} == {"src", "dst"}
    assert "secret-pw" not in json.dumps(endpoints)  # never returned


def test_a_capturing_task_that_was_stopping_when_the_server_died_comes_back_stopped(tmp_path):
    """StopReplicationTask was accepted: a restart finishes that stop instead of resuming
    capture (the stop was lost before: ``stopping`` counted as running)."""
    dms = backend(Store(tmp_path))
    arns = provision(dms)
    arn = create_task(dms, arns)
    dms.update_task(arn, lambda task: task.begin(fresh=True, fresh_capture=True, now=time.time()))
    dms.update_task(arn, lambda task: task.mark_running(time.time()))
    dms.update_task(arn, lambda task: task.start_capture(time.time()))
    dms.update_task(arn, lambda task: task.checkpoint("0/16B3748"))
    dms.update_task(arn, lambda task: task.request_stop())

    again = backend(Store(tmp_path))

    task = call(again, "DescribeReplicationTasks", {})["ReplicationTasks"][0]
    assert (task["Status"], task["StopReason"]) == ("stopped", "Stop Reason NORMAL")
    assert task["RecoveryCheckpoint"] == "0/16B3748"  # a resume-processing goes on from there
    assert again.runs == {}  # nothing resumed capture


@pytest.mark.parametrize("operation", SUPPORTED)
def test_every_request_member_is_taken_ignored_in_the_docstring_or_unknown_to_the_model(operation):
    members = set(service_model().operation_model(operation).input_shape.members)
    method = handler(operation)
    taken = set(inspect.signature(method).parameters) - {"self"}
    ignored = ignored_members(operation)
    assert taken == {xform_name(m) for m in members - ignored}, "parameters are the model's members"
    assert all(m in (method.__doc__ or "") for m in ignored), "the docstring names what is ignored"


def test_the_response_layer_checks_requests_against_the_model():
    dms = backend()
    with pytest.raises(
        InvalidParameterValueException, match=r'Missing required parameter.*"EndpointArn"'
    ):
        call(dms, "DeleteEndpoint", {})
    with pytest.raises(
        InvalidParameterValueException, match='Unknown parameter in input: "Colour"'
    ):
        call(dms, "DescribeEndpoints", {"Colour": "x"})
    with pytest.raises(
        InvalidParameterValueException, match="Invalid type for parameter MaxRecords"
    ):
        call(dms, "DescribeEndpoints", {"MaxRecords": "twenty"})
    with pytest.raises(InvalidAction, match="CreateDataProvider is not supported"):
        call(dms, "CreateDataProvider", {})
    # A member localdms does not act on is accepted, not echoed, and nothing fails.
    arn = call(dms, "CreateReplicationInstance", {
        "ReplicationInstanceIdentifier": "i", "ReplicationInstanceClass": "dms.t3.micro",
        "DnsNameServers": "10.0.0.2"})["ReplicationInstance"]["ReplicationInstanceArn"]  # fmt: skip
    assert arn.startswith("arn:aws:dms:us-east-1:123456789012:rep:")


def test_a_refused_request_never_repeats_a_password_it_carried():
    """botocore's validation report quotes bad values; a sensitive member's value is hidden,
    nested ones included (PostgreSQLSettings.Password)."""
    dms = backend()
    with pytest.raises(InvalidParameterValueException) as refused:
        call(dms, "CreateEndpoint", {
            "EndpointIdentifier": "e", "EndpointType": "source", "EngineName": "postgres",
            "Password": 12345678, "PostgreSQLSettings": {"Password": ["hunter2-secret"]}})  # fmt: skip
    message = refused.value.message
    assert "Invalid type for parameter Password" in message
    assert "12345678" not in message
    assert "hunter2-secret" not in message


def test_every_instance_reports_the_same_process_figures_once_per_period(tmp_path):
    """localdms's instances share one process: each gets the period's CPU and memory figures
    (the second used to read the CPU time the first had just consumed, about 0 %)."""
    from localdms.metrics import MetricsPublisher

    dms = backend()
    for identifier in ("first", "second"):
        call(dms, "CreateReplicationInstance", {"ReplicationInstanceIdentifier": identifier,
                                                "ReplicationInstanceClass": "dms.t3.micro"})  # fmt: skip
    call(dms, "DescribeReplicationInstances", {})  # advances them to available
    publisher = MetricsPublisher(dms, no_s3, period=1.0, state_dir=tmp_path)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # some CPU to measure
        pass
    data = publisher.collect()
    figures = {
        (d["Dimensions"][0]["Value"], d["MetricName"]): d["Value"]
        for d in data
        if d["MetricName"] in ("CPUUtilization", "FreeableMemory")
    }
    assert figures[("first", "CPUUtilization")] == figures[("second", "CPUUtilization")] > 0
    assert figures[("first", "FreeableMemory")] == figures[("second", "FreeableMemory")] > 0
