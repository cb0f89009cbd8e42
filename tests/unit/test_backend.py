"""The localdms backend without PostgreSQL or S3: the task state machine, DMS's refusals,
filters, pages and persistence, through the operations a client calls (request dicts in, response
bodies out, as the server's dispatcher calls them)."""

from __future__ import annotations

import json
import time

import pytest

from dms_spec.status import StopReason, TableState, TaskStatus
from localdms.backend import DmsBackend
from localdms.backend.resources import ReplicationTask, TableStatistics
from localdms.exceptions import (
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
)
from localdms.store import Store

pytestmark = pytest.mark.unit

RULES = json.dumps({"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
                               "rule-action": "include",
                               "object-locator": {"schema-name": "s", "table-name": "%"}}]})  # fmt: skip


def no_s3() -> None:
    raise AssertionError("the unit layer never reaches S3")


def backend(store: Store | None = None) -> DmsBackend:
    return DmsBackend(store or Store(None), no_s3, transition_seconds=0)


def provision(dms: DmsBackend) -> dict[str, str]:
    instance = dms.create_replication_instance(
        {"ReplicationInstanceIdentifier": "i", "ReplicationInstanceClass": "dms.t3.micro"}
    )["ReplicationInstance"]["ReplicationInstanceArn"]
    source = dms.create_endpoint(
        {"EndpointIdentifier": "src", "EndpointType": "source", "EngineName": "postgres",
         "ServerName": "127.0.0.1", "Port": 5432, "DatabaseName": "d", "Username": "u",
         "Password": "secret-pw"}
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    target = dms.create_endpoint(
        {"EndpointIdentifier": "dst", "EndpointType": "target", "EngineName": "s3",
         "S3Settings": {"BucketName": "b", "BucketFolder": "raw"}}
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    return {"ReplicationInstanceArn": instance, "SourceEndpointArn": source,
            "TargetEndpointArn": target}  # fmt: skip


def create_task(dms: DmsBackend, arns: dict[str, str], name: str = "t") -> str:
    task = dms.create_replication_task(
        {"ReplicationTaskIdentifier": name, "MigrationType": "full-load", "TableMappings": RULES,
         **arns}
    )["ReplicationTask"]  # fmt: skip
    assert task["Status"] == "creating"
    return str(task["ReplicationTaskArn"])


def status(dms: DmsBackend, arn: str) -> str:
    filters = [{"Name": "replication-task-arn", "Values": [arn]}]
    return str(
        dms.describe_replication_tasks({"Filters": filters})["ReplicationTasks"][0]["Status"]
    )


def test_a_created_task_becomes_ready_and_can_be_modified_then_deleted():
    dms = backend()
    arn = create_task(dms, provision(dms))
    assert status(dms, arn) == "ready"
    dms.modify_replication_task({"ReplicationTaskArn": arn, "TableMappings": RULES})
    assert status(dms, arn) == "ready"  # modifying, then back (transition_seconds=0)
    dms.delete_replication_task({"ReplicationTaskArn": arn})
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
        dms.start_replication_task(
            {"ReplicationTaskArn": arn, "StartReplicationTaskType": "reload-target"}
        )
    with pytest.raises(InvalidResourceStateFault, match="currently not running"):
        dms.stop_replication_task({"ReplicationTaskArn": arn})
    with pytest.raises(InvalidResourceStateFault, match="used by replication task"):
        dms.delete_endpoint({"EndpointArn": arns["SourceEndpointArn"]})
    with pytest.raises(InvalidResourceStateFault, match="tables can be reloaded only"):
        dms.reload_tables(
            {"ReplicationTaskArn": arn, "TablesToReload": [{"SchemaName": "s", "TableName": "x"}]}
        )
    dms.tasks[arn].has_run = True  # as after a first run
    with pytest.raises(InvalidParameterCombinationException, match="START_REPLICATION, valid only"):
        dms.start_replication_task(
            {"ReplicationTaskArn": arn, "StartReplicationTaskType": "start-replication"}
        )
    with pytest.raises(InvalidParameterValueException, match="SslMode verify-full needs"):
        dms.create_endpoint({"EndpointIdentifier": "v", "EndpointType": "source", "EngineName": "postgres",
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
    first = dms.describe_replication_tasks({"MaxRecords": 20})
    second = dms.describe_replication_tasks({"MaxRecords": 20, "Marker": first["Marker"]})
    assert len(first["ReplicationTasks"]) == 20
    assert len(second["ReplicationTasks"]) == 5
    assert "Marker" not in second
    with pytest.raises(InvalidParameterValueException, match="MaxRecords must be between 20"):
        dms.describe_replication_tasks({"MaxRecords": 5})
    with pytest.raises(ResourceNotFoundFault):
        dms.describe_replication_tasks(
            {"Filters": [{"Name": "replication-task-id", "Values": ["nope"]}]}
        )
    with pytest.raises(InvalidParameterValueException, match="filter name"):
        dms.describe_endpoints({"Filters": [{"Name": "colour", "Values": ["x"]}]})


def test_state_round_trips_and_a_run_interrupted_by_a_crash_comes_back_failed(tmp_path):
    dms = backend(Store(tmp_path))
    arns = provision(dms)
    arn = create_task(dms, arns)
    dms.update_task(arn, lambda task: task.begin(fresh=True, fresh_capture=True, now=time.time()))
    dms.update_task(arn, lambda task: task.mark_running(time.time()))

    again = backend(Store(tmp_path))  # a new server on the same state directory

    task = again.describe_replication_tasks({})["ReplicationTasks"][0]
    assert task["Status"] == "failed"
    assert task["StopReason"] == "Stop Reason RECOVERABLE_ERROR"
    assert task["LastFailureMessage"].startswith(
        "Last Error  localdms stopped while the task was running"
    )
    assert task["LastFailureMessage"].endswith(
        "Stop Reason RECOVERABLE_ERROR Error Level RECOVERABLE"
    )
    endpoints = again.describe_endpoints({})["Endpoints"]
    assert {e["EndpointIdentifier"] for e in endpoints} == {"src", "dst"}
    assert "secret-pw" not in json.dumps(endpoints)  # never returned
