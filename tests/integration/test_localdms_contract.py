"""The DMS API as boto3 sees it: shapes, faults, waiters, pagination, persistence."""

from __future__ import annotations

import json
import re
import time

import boto3
import botocore.exceptions
import pytest

from localdms.server import ThreadedLocalDms
from tests.pipeline import (
    FAST_WAITER,
    create_task,
    describe_task,
    provision,
    read_objects,
    run_task,
    select_rules,
    table_statistics,
    wait_for_status,
    wait_until_finished,
)

pytestmark = pytest.mark.integration

ARN = re.compile(r"^arn:aws:dms:us-east-1:123456789012:(task|endpoint|rep):[A-Z2-7]{39}$")


def error_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.fixture
def pipeline(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.one (id int primary key)")
    source_db.execute("INSERT INTO public.one VALUES (1), (2)")
    return provision(dms, s3, source_db)


def test_resources_get_random_base32_arns_not_their_identifiers(dms, pipeline):
    arn = create_task(dms, pipeline, select_rules(("public", "%")))
    for value in (arn, pipeline.source_arn, pipeline.target_arn, pipeline.instance_arn):
        assert ARN.match(value), value
    assert "test-task" not in arn


def test_endpoint_password_is_never_returned(dms, pipeline, postgres):
    endpoints = dms.describe_endpoints()["Endpoints"]
    assert {e["EndpointType"] for e in endpoints} == {"SOURCE", "TARGET"}
    assert postgres.password not in json.dumps(endpoints, default=str)
    source = next(e for e in endpoints if e["EndpointType"] == "SOURCE")
    assert source["EngineName"] == "postgres"
    assert source["Username"] == postgres.user
    assert "Password" not in source
    target = next(e for e in endpoints if e["EndpointType"] == "TARGET")
    assert target["S3Settings"]["BucketName"] == pipeline.bucket


def test_create_endpoint_refuses_a_duplicate_identifier(dms, pipeline):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.create_endpoint(
            EndpointIdentifier="target", EndpointType="target", EngineName="s3",
            S3Settings={"BucketName": "x"},
        )  # fmt: skip
    assert error_of(excinfo)[0] == "ResourceAlreadyExistsFault"


@pytest.mark.parametrize(
    "identifier", ["1starts-with-digit", "ends-with-", "two--hyphens", "under_score", ""]
)
def test_invalid_identifiers_are_refused_with_dms_message(dms, pipeline, identifier):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.create_replication_task(
            ReplicationTaskIdentifier=identifier,
            SourceEndpointArn=pipeline.source_arn,
            TargetEndpointArn=pipeline.target_arn,
            ReplicationInstanceArn=pipeline.instance_arn,
            MigrationType="full-load",
            TableMappings=select_rules(("public", "%")),
        )
    code, message = error_of(excinfo)
    assert code == "InvalidParameterValueException"
    assert "ReplicationTaskIdentifier is not a valid identifier" in message
    assert "must begin with a letter" in message


def test_unsupported_engine_is_refused_naming_what_works(dms):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.create_endpoint(EndpointIdentifier="mysql", EndpointType="source", EngineName="mysql")
    code, message = error_of(excinfo)
    assert code == "InvalidParameterValueException"
    assert "postgres" in message


def test_describe_with_filter_that_matches_nothing_raises_not_found(dms, pipeline):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-id", "Values": ["nope"]}]
        )
    assert error_of(excinfo)[0] == "ResourceNotFoundFault"
    assert dms.describe_replication_tasks()["ReplicationTasks"] == []


def test_filter_values_are_validated_as_identifiers(dms, pipeline):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-id", "Values": ["bad--id"]}]
        )
    code, message = error_of(excinfo)
    assert code == "InvalidParameterValueException"
    assert message.startswith(
        "The parameter Filter: replication-task-id is not a valid identifier."
    )


def test_unknown_filter_name_lists_the_valid_ones(dms, pipeline):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.describe_endpoints(Filters=[{"Name": "colour", "Values": ["red"]}])
    code, message = error_of(excinfo)
    assert code == "InvalidParameterValueException"
    assert "endpoint-id" in message


def test_task_goes_creating_then_ready_and_reports_default_settings(dms, pipeline):
    task = dms.create_replication_task(
        ReplicationTaskIdentifier="settings-task",
        SourceEndpointArn=pipeline.source_arn,
        TargetEndpointArn=pipeline.target_arn,
        ReplicationInstanceArn=pipeline.instance_arn,
        MigrationType="full-load",
        TableMappings=select_rules(("public", "%")),
        ReplicationTaskSettings=json.dumps({"FullLoadSettings": {"MaxFullLoadSubTasks": 3}}),
    )["ReplicationTask"]
    assert task["Status"] == "creating"
    assert "ReplicationTaskStats" not in task
    dms.get_waiter("replication_task_ready").wait(
        Filters=[{"Name": "replication-task-arn", "Values": [task["ReplicationTaskArn"]]}],
        WaiterConfig=FAST_WAITER,
    )
    settings = json.loads(describe_task(dms, task["ReplicationTaskArn"])["ReplicationTaskSettings"])
    assert settings["FullLoadSettings"]["MaxFullLoadSubTasks"] == 3
    assert settings["FullLoadSettings"]["TargetTablePrepMode"] == "DROP_AND_CREATE"
    assert settings["ErrorBehavior"]["FailOnNoTablesCaptured"] is True
    assert settings["TargetMetadata"]["LobMaxSize"] == 32
    without = dms.describe_replication_tasks(WithoutSettings=True)["ReplicationTasks"][0]
    assert "ReplicationTaskSettings" not in without


def test_cloudwatch_settings_cannot_be_set_on_create(dms, pipeline):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        create_task(
            dms, pipeline, select_rules(("public", "%")),
            ReplicationTaskSettings=json.dumps({"Logging": {"CloudWatchLogGroup": "g"}}),
        )  # fmt: skip
    assert error_of(excinfo) == (
        "InvalidParameterValueException",
        "Task Settings CloudWatchLogGroup or CloudWatchLogStream cannot be set on create.",
    )


def test_malformed_table_mappings_are_refused(dms, pipeline):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        create_task(dms, pipeline, '{"rules": [')
    code, message = error_of(excinfo)
    assert code == "InvalidParameterValueException"
    assert "not valid JSON" in message


def test_start_replication_only_on_first_run(dms, pipeline):
    arn = create_task(dms, pipeline, select_rules(("public", "%")))
    assert run_task(dms, arn)["Status"] == "stopped"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.start_replication_task(
            ReplicationTaskArn=arn, StartReplicationTaskType="start-replication"
        )
    assert error_of(excinfo) == (
        "InvalidParameterCombinationException",
        "Start Type : START_REPLICATION, valid only for tasks running for the first time",
    )
    assert run_task(dms, arn, "reload-target")["Status"] == "stopped"


def test_start_returns_starting_and_the_waiters_see_the_lifecycle(dms, pipeline):
    arn = create_task(dms, pipeline, select_rules(("public", "%")))
    started = dms.start_replication_task(
        ReplicationTaskArn=arn, StartReplicationTaskType="start-replication"
    )["ReplicationTask"]
    assert started["Status"] == "starting"
    # As on AWS (boto3#1926): the stopped waiter treats "starting" as a failure, so callers
    # must first wait for the start to be over.
    with pytest.raises(botocore.exceptions.WaiterError, match='"starting"'):
        dms.get_waiter("replication_task_stopped").wait(
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}], WaiterConfig=FAST_WAITER
        )
    task = wait_until_finished(dms, arn)
    assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    stats = task["ReplicationTaskStats"]
    assert stats["FullLoadProgressPercent"] == 100
    assert stats["TablesLoaded"] == 1
    assert stats["TablesErrored"] == 0
    assert stats["StopDate"] >= stats["StartDate"]


def test_no_matching_tables_fails_with_the_real_message(dms, pipeline):
    arn = create_task(dms, pipeline, select_rules(("public", "does_not_exist")))
    task = run_task(dms, arn)
    expected = (
        "Last Error  No tables were found at task initialization. Either the selected table(s) or "
        "schemas(s) no longer exist or no match was found for the table selection pattern(s). If "
        "you would like to start a Task that does not initially capture any tables, set Task "
        "Setting FailOnNoTablesCaptured to false and restart task. Stop Reason FATAL_ERROR Error "
        "Level FATAL"
    )
    assert task["Status"] == "failed"
    assert task["LastFailureMessage"] == expected
    assert task["StopReason"] == expected


def test_modify_and_delete_are_refused_while_running_and_work_after(dms, s3, source_db):
    source_db.execute(
        "CREATE TABLE public.big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 300000) g"
    )
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "big")))
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    for call in (
        lambda: dms.modify_replication_task(
            ReplicationTaskArn=arn, TableMappings=select_rules(("public", "%"))
        ),
        lambda: dms.delete_replication_task(ReplicationTaskArn=arn),
        lambda: dms.delete_endpoint(EndpointArn=pipeline.source_arn),
        lambda: dms.delete_replication_instance(ReplicationInstanceArn=pipeline.instance_arn),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            call()
        assert error_of(excinfo)[0] == "InvalidResourceStateFault"
    wait_until_finished(dms, arn)
    modified = dms.modify_replication_task(
        ReplicationTaskArn=arn, TableMappings=select_rules(("public", "%"))
    )["ReplicationTask"]
    assert modified["Status"] == "modifying"
    assert wait_for_status(dms, arn, {"stopped"})["Status"] == "stopped"
    assert describe_task(dms, arn)["TableMappings"] == select_rules(("public", "%"))
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.modify_replication_task(ReplicationTaskArn=arn, MigrationType="cdc")
    assert error_of(excinfo)[0] == "InvalidParameterValueException"
    assert (
        dms.delete_replication_task(ReplicationTaskArn=arn)["ReplicationTask"]["Status"]
        == "deleting"
    )
    dms.get_waiter("replication_task_deleted").wait(
        Filters=[{"Name": "replication-task-arn", "Values": [arn]}], WaiterConfig=FAST_WAITER
    )
    dms.delete_endpoint(EndpointArn=pipeline.source_arn)
    dms.get_waiter("endpoint_deleted").wait(
        Filters=[{"Name": "endpoint-arn", "Values": [pipeline.source_arn]}],
        WaiterConfig=FAST_WAITER,
    )
    dms.delete_replication_instance(ReplicationInstanceArn=pipeline.instance_arn)
    dms.get_waiter("replication_instance_deleted").wait(
        Filters=[{"Name": "replication-instance-arn", "Values": [pipeline.instance_arn]}],
        WaiterConfig=FAST_WAITER,
    )


@pytest.mark.parametrize("data_format", ["csv", "parquet"])
def test_stop_replication_task_stops_a_running_load(dms, s3, source_db, data_format):
    # Values that neither dictionary-encode nor compress, so the file goes up in parts.
    source_db.execute(
        "CREATE TABLE public.big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS pad "
        "FROM generate_series(1, 1000000) g"
    )
    pipeline = provision(dms, s3, source_db, s3_settings={"DataFormat": data_format})
    arn = create_task(dms, pipeline, select_rules(("public", "big")))
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    deadline = time.monotonic() + 60
    while not s3.list_multipart_uploads(Bucket=pipeline.bucket).get("Uploads"):
        assert describe_task(dms, arn)["Status"] != "stopped", "the load ended before a part"
        assert time.monotonic() < deadline, "no multipart upload began within 60 s"
        time.sleep(0.05)
    assert (
        dms.stop_replication_task(ReplicationTaskArn=arn)["ReplicationTask"]["Status"] == "stopping"
    )
    task = wait_until_finished(dms, arn)
    assert task["Status"] == "stopped"
    assert task["StopReason"] == "Stop Reason NORMAL"
    # What the unfinished table wrote is gone: no object, and no upload left holding parts.
    assert read_objects(s3, pipeline.bucket) == {}
    assert s3.list_multipart_uploads(Bucket=pipeline.bucket).get("Uploads", []) == []
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.stop_replication_task(ReplicationTaskArn=arn)
    code, message = error_of(excinfo)
    assert code == "InvalidResourceStateFault"
    assert "is currently not running" in message


def test_test_connection_really_connects(dms, pipeline, source_db, s3):
    waiter = dms.get_waiter("test_connection_succeeds")
    for endpoint in (pipeline.source_arn, pipeline.target_arn):
        dms.test_connection(ReplicationInstanceArn=pipeline.instance_arn, EndpointArn=endpoint)
        waiter.wait(
            Filters=[{"Name": "endpoint-arn", "Values": [endpoint]}], WaiterConfig=FAST_WAITER
        )
    wrong = dms.create_endpoint(
        EndpointIdentifier="wrong-password", EndpointType="source", EngineName="postgres",
        ServerName=source_db.server.host, Port=source_db.server.port, DatabaseName=source_db.name,
        Username=source_db.server.user, Password="not-the-password",
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    dms.test_connection(ReplicationInstanceArn=pipeline.instance_arn, EndpointArn=wrong)
    with pytest.raises(botocore.exceptions.WaiterError):
        waiter.wait(Filters=[{"Name": "endpoint-arn", "Values": [wrong]}], WaiterConfig=FAST_WAITER)
    connection = dms.describe_connections(Filters=[{"Name": "endpoint-arn", "Values": [wrong]}])[
        "Connections"
    ][0]
    assert connection["Status"] == "failed"
    assert "authentication failed" in connection["LastFailureMessage"]
    assert "not-the-password" not in connection["LastFailureMessage"]


def test_describe_table_statistics_paginates_to_500(dms, s3, source_db):
    source_db.execute(
        "DO $$ BEGIN FOR i IN 1..620 LOOP "
        "EXECUTE format('CREATE TABLE public.t%s (id int)', i); END LOOP; END $$"
    )
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "t%")))
    task = run_task(dms, arn)
    assert task["Status"] == "stopped"
    first = dms.describe_table_statistics(ReplicationTaskArn=arn, MaxRecords=500)
    assert len(first["TableStatistics"]) == 500
    second = dms.describe_table_statistics(
        ReplicationTaskArn=arn, MaxRecords=500, Marker=first["Marker"]
    )
    assert len(second["TableStatistics"]) == 120
    assert "Marker" not in second
    assert len(table_statistics(dms, arn)) == 620
    filtered = dms.describe_table_statistics(
        ReplicationTaskArn=arn, Filters=[{"Name": "table-name", "Values": ["t7", "t8"]}]
    )["TableStatistics"]
    assert sorted(t["TableName"] for t in filtered) == ["t7", "t8"]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.describe_table_statistics(ReplicationTaskArn=arn, MaxRecords=501)
    assert error_of(excinfo)[0] == "InvalidParameterValueException"


def test_describe_replication_tasks_paginates(dms, pipeline):
    for index in range(25):
        dms.create_replication_task(
            ReplicationTaskIdentifier=f"task-{index}",
            SourceEndpointArn=pipeline.source_arn,
            TargetEndpointArn=pipeline.target_arn,
            ReplicationInstanceArn=pipeline.instance_arn,
            MigrationType="full-load",
            TableMappings=select_rules(("public", "%")),
        )
    pages = list(
        dms.get_paginator("describe_replication_tasks").paginate(PaginationConfig={"PageSize": 20})
    )
    assert [len(p["ReplicationTasks"]) for p in pages] == [20, 5]


def test_tags_round_trip(dms, pipeline):
    arn = create_task(
        dms, pipeline, select_rules(("public", "%")), Tags=[{"Key": "team", "Value": "data"}]
    )
    dms.add_tags_to_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}])
    tags = dms.list_tags_for_resource(ResourceArn=arn)["TagList"]
    assert {(t["Key"], t["Value"]) for t in tags} == {("team", "data"), ("env", "dev")}
    assert all(t["ResourceArn"] == arn for t in tags)
    dms.remove_tags_from_resource(ResourceArn=arn, TagKeys=["team"])
    assert [t["Key"] for t in dms.list_tags_for_resource(ResourceArn=arn)["TagList"]] == ["env"]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.add_tags_to_resource(ResourceArn=arn, Tags=[{"Key": "aws:reserved", "Value": "x"}])
    assert error_of(excinfo)[0] == "InvalidParameterValueException"


def test_unknown_resources_raise_not_found(dms):
    arn = "arn:aws:dms:us-east-1:123456789012:task:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    for call in (
        lambda: dms.start_replication_task(
            ReplicationTaskArn=arn, StartReplicationTaskType="start-replication"
        ),
        lambda: dms.describe_table_statistics(ReplicationTaskArn=arn),
        lambda: dms.delete_replication_task(ReplicationTaskArn=arn),
        lambda: dms.list_tags_for_resource(ResourceArn=arn),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            call()
        assert error_of(excinfo)[0] == "ResourceNotFoundFault"


def test_unsupported_operation_is_named(dms):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.describe_data_providers()
    code, message = error_of(excinfo)
    assert code == "InvalidAction"
    assert "DescribeDataProviders is not supported by localdms" in message


def test_state_survives_a_restart_and_a_running_task_comes_back_failed(tmp_path, s3, source_db):
    source_db.execute(
        "CREATE TABLE public.big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 1000000) g"
    )
    state_dir = tmp_path / "state"
    first = ThreadedLocalDms(state_dir=state_dir, transition_seconds=0.2).start()
    dms = boto3.client("dms", endpoint_url=first.url)
    pipeline = provision(dms, s3, source_db)
    arn = create_task(
        dms, pipeline, select_rules(("public", "big")), Tags=[{"Key": "k", "Value": "v"}]
    )
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    dms.get_waiter("replication_task_running").wait(
        Filters=[{"Name": "replication-task-arn", "Values": [arn]}], WaiterConfig=FAST_WAITER
    )
    deadline = time.monotonic() + 30
    while table_statistics(dms, arn).get(("public", "big"), {}).get("TableState") != "Full load":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.1)  # table states persist at most once a second
    describe_task(dms, arn)  # any request flushes pending table changes
    # Simulate the process dying: the state file as it is now is what a new process finds.
    state_copy = tmp_path / "copy"
    state_copy.mkdir()
    (state_copy / "localdms-state.json").write_bytes(
        (state_dir / "localdms-state.json").read_bytes()
    )
    first.stop()

    with ThreadedLocalDms(state_dir=state_copy, transition_seconds=0.2) as second:
        dms = boto3.client("dms", endpoint_url=second.url)
        task = describe_task(dms, arn)
        assert task["Status"] == "failed"
        assert "localdms stopped while the task was running" in task["LastFailureMessage"]
        assert len(dms.describe_endpoints()["Endpoints"]) == 2
        assert dms.list_tags_for_resource(ResourceArn=arn)["TagList"][0]["Key"] == "k"
        assert table_statistics(dms, arn)[("public", "big")]["TableState"] == "Table error"
        finished = run_task(dms, arn, "reload-target")
        assert finished["Status"] == "stopped"
        assert table_statistics(dms, arn)[("public", "big")]["FullLoadRows"] == 1_000_000
        assert time.time() - finished["ReplicationTaskStats"]["StopDate"].timestamp() < 60


def test_reload_tables_loads_a_table_again_while_the_task_runs(dms, s3, source_db):
    source_db.execute(
        "CREATE TABLE public.big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 1500000) g"
    )
    source_db.execute("CREATE TABLE public.small AS SELECT g AS id FROM generate_series(1, 100) g")
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "%")))
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    deadline = time.monotonic() + 60
    while (
        table_statistics(dms, arn).get(("public", "small"), {}).get("TableState")
        != "Table completed"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert describe_task(dms, arn)["Status"] == "running"  # big is still loading
    source_db.execute("INSERT INTO public.small VALUES (101)")

    dms.reload_tables(
        ReplicationTaskArn=arn, TablesToReload=[{"SchemaName": "public", "TableName": "small"}]
    )
    assert table_statistics(dms, arn)[("public", "small")]["TableState"] in (
        "Table is being reloaded",
        "Full load",
    )
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.reload_tables(
            ReplicationTaskArn=arn, TablesToReload=[{"SchemaName": "public", "TableName": "nope"}]
        )
    assert error_of(excinfo)[0] == "ResourceNotFoundFault"
    task = wait_until_finished(dms, arn)

    assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    small = table_statistics(dms, arn)[("public", "small")]
    assert (small["TableState"], small["FullLoadRows"], small["FullLoadReloaded"]) == (
        "Table completed",
        101,
        True,
    )
    objects = read_objects(s3, pipeline.bucket, "public/small/")
    assert list(objects) == ["public/small/LOAD00000001.csv"]
    assert len(objects["public/small/LOAD00000001.csv"].splitlines()) == 101
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.reload_tables(
            ReplicationTaskArn=arn, TablesToReload=[{"SchemaName": "public", "TableName": "small"}]
        )
    assert error_of(excinfo)[0] == "InvalidResourceStateFault"
