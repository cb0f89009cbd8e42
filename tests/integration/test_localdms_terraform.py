"""Calls shaped as Terraform's AWS provider makes them (``internal/service/dms``): what its
resources send and what its waiters then expect to see."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import boto3
import botocore.exceptions
import pytest

from localdms.server import ThreadedLocalDms
from tests.certificates import self_signed_pem
from tests.pipeline import (
    create_task,
    provision,
    select_rules,
    table_statistics,
    wait_for_status,
    wait_until_finished,
)

pytestmark = pytest.mark.integration


def test_a_password_sent_twice_as_the_provider_sends_it_is_never_returned(dms, source_db):
    server = source_db.server
    endpoint = dms.create_endpoint(
        EndpointIdentifier="tf-source", EndpointType="source", EngineName="postgres",
        ServerName=server.host, Port=server.port, DatabaseName=source_db.name,
        Username=server.user, Password=server.password,
        PostgreSQLSettings={"DatabaseName": source_db.name, "Password": server.password,
                            "Port": server.port, "ServerName": server.host,
                            "Username": server.user},
    )["Endpoint"]  # fmt: skip
    described = dms.describe_endpoints()["Endpoints"]
    for body in (endpoint, *described):
        assert server.password not in json.dumps(body, default=str)
        assert "Password" not in body.get("PostgreSQLSettings", {})


def test_a_small_full_load_shows_running_to_a_client_that_waits_for_it(s3, source_db, tmp_path):
    """The provider's start_replication_task waits from ``starting`` to ``running``, first
    looking after 30 s; ``--min-running-seconds`` keeps a load that ends sooner ``running`` that
    long (2 s here, polled every 0.5 s; the load takes well under that)."""
    with ThreadedLocalDms(
        state_dir=tmp_path / "state", transition_seconds=0.2, min_running_seconds=2.0
    ) as server:
        seen = run_and_watch(boto3.client("dms", endpoint_url=server.url), s3, source_db)
    assert seen[-1] == "running", seen


def run_and_watch(dms: Any, s3: Any, source_db: Any) -> list[str]:
    """Start a one-row full load and poll every 0.5 s while it is starting; the statuses seen."""
    source_db.execute("CREATE TABLE public.tiny AS SELECT 1 AS id")
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "tiny")))
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    seen = []
    deadline = time.monotonic() + 30
    while not seen or seen[-1] == "starting":
        task = dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-arn", "Values": [arn]}]
        )["ReplicationTasks"][0]
        seen.append(task["Status"])
        assert time.monotonic() < deadline, seen
        time.sleep(0.5)  # slower than the load: a waiter polls every few seconds
    assert wait_until_finished(dms, arn)["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    return seen


def test_modify_endpoint_as_the_provider_calls_it_after_create_and_its_refusals(
    s3, source_db, tmp_path
):
    """aws_dms_s3_endpoint with SSE-KMS calls ModifyEndpoint right after CreateEndpoint."""
    with ThreadedLocalDms(
        state_dir=tmp_path / "state", transition_seconds=0.2, min_running_seconds=5.0
    ) as server:
        dms = boto3.client("dms", endpoint_url=server.url)
        source_db.execute("CREATE TABLE public.tiny AS SELECT 1 AS id")
        pipeline = provision(dms, s3, source_db, s3_settings={"BucketFolder": "raw"})
        key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
        modified = dms.modify_endpoint(
            EndpointArn=pipeline.target_arn,
            S3Settings={"EncryptionMode": "SSE_KMS", "ServerSideEncryptionKmsKeyId": key},
        )["Endpoint"]
        settings = modified["S3Settings"]
        assert (settings["EncryptionMode"], settings["ServerSideEncryptionKmsKeyId"]) == (
            "SSE_KMS", key,
        )  # fmt: skip
        assert settings["BucketFolder"] == "raw"  # merged, not replaced
        exact = dms.modify_endpoint(
            EndpointArn=pipeline.target_arn, ExactSettings=True,
            S3Settings={"BucketName": pipeline.bucket, "BucketFolder": "landing"},
        )["Endpoint"]["S3Settings"]  # fmt: skip
        assert "EncryptionMode" not in exact
        assert exact["BucketFolder"] == "landing"

        for request, code in (
            ({"EngineName": "mysql"}, "InvalidParameterValueException"),
            ({"EndpointType": "target"}, "InvalidParameterValueException"),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                dms.modify_endpoint(EndpointArn=pipeline.source_arn, **request)
            assert refused.value.response["Error"]["Code"] == code
        unchanged = dms.describe_endpoints(
            Filters=[{"Name": "endpoint-arn", "Values": [pipeline.source_arn]}]
        )["Endpoints"][0]
        assert unchanged["EngineName"] == "postgres"

        arn = create_task(dms, pipeline, select_rules(("public", "tiny")))
        dms.start_replication_task(
            ReplicationTaskArn=arn, StartReplicationTaskType="start-replication"
        )
        wait_for_status(dms, arn, {"running"})
        with pytest.raises(botocore.exceptions.ClientError) as busy:
            dms.modify_endpoint(EndpointArn=pipeline.source_arn, Port=1)
        assert busy.value.response["Error"]["Code"] == "InvalidResourceStateFault"
        wait_until_finished(dms, arn)


def test_a_task_moves_to_another_instance_when_not_running(dms, s3, source_db):
    """The provider calls MoveReplicationTask when a task's replication_instance_arn changes."""
    source_db.execute("CREATE TABLE public.tiny AS SELECT 1 AS id")
    pipeline = provision(dms, s3, source_db)
    other = dms.create_replication_instance(
        ReplicationInstanceIdentifier="bigger", ReplicationInstanceClass="dms.c5.large"
    )["ReplicationInstance"]["ReplicationInstanceArn"]
    arn = create_task(dms, pipeline, select_rules(("public", "tiny")))
    dms.get_waiter("replication_instance_available").wait(
        Filters=[{"Name": "replication-instance-arn", "Values": [other]}],
        WaiterConfig={"Delay": 0.2, "MaxAttempts": 50},
    )
    moving = dms.move_replication_task(ReplicationTaskArn=arn, TargetReplicationInstanceArn=other)
    assert moving["ReplicationTask"]["Status"] == "moving"
    task = wait_for_status(dms, arn, {"ready"})
    assert task["ReplicationInstanceArn"] == other

    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    with pytest.raises(botocore.exceptions.ClientError) as running:
        dms.move_replication_task(
            ReplicationTaskArn=arn, TargetReplicationInstanceArn=pipeline.instance_arn
        )
    assert running.value.response["Error"]["Code"] == "InvalidResourceStateFault"
    assert wait_until_finished(dms, arn)["Status"] == "stopped"


def test_an_endpoint_whose_credentials_are_a_secrets_manager_secret(
    dms, s3, s3_server, source_db, monkeypatch
):
    """The pattern AWS recommends (and the provider's secrets_manager_arn): the endpoint names a
    secret and a role; DMS reads the secret for each connection."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", s3_server.url)  # moto serves both
    secrets = boto3.client("secretsmanager", **s3_server.client_arguments())
    server = source_db.server
    secret_arn = secrets.create_secret(
        Name=f"dms/{source_db.name}",
        SecretString=json.dumps({"username": server.user, "password": server.password,
                                 "host": server.host, "port": server.port,
                                 "dbname": source_db.name, "engine": "postgres"}),
    )["ARN"]  # fmt: skip
    role = "arn:aws:iam::123456789012:role/dms-secrets"
    source_db.execute("CREATE TABLE public.tiny AS SELECT g AS id FROM generate_series(1, 7) g")
    pipeline = provision(dms, s3, source_db)
    endpoint = dms.create_endpoint(
        EndpointIdentifier="from-secret", EndpointType="source", EngineName="postgres",
        PostgreSQLSettings={"SecretsManagerSecretId": secret_arn,
                            "SecretsManagerAccessRoleArn": role},
    )["Endpoint"]  # fmt: skip
    assert server.password not in json.dumps(endpoint, default=str)

    def test_connection(arn: str) -> dict[str, Any]:
        dms.test_connection(ReplicationInstanceArn=pipeline.instance_arn, EndpointArn=arn)
        deadline = time.monotonic() + 30
        while True:
            found = dms.describe_connections(Filters=[{"Name": "endpoint-arn", "Values": [arn]}])[
                "Connections"
            ][0]
            if found["Status"] != "testing" or time.monotonic() > deadline:
                return dict(found)
            time.sleep(0.2)

    assert test_connection(endpoint["EndpointArn"])["Status"] == "successful"
    pipeline = replace(pipeline, source_arn=endpoint["EndpointArn"])
    arn = create_task(dms, pipeline, select_rules(("public", "tiny")))
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    assert wait_until_finished(dms, arn)["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    assert table_statistics(dms, arn)[("public", "tiny")]["FullLoadRows"] == 7

    with pytest.raises(botocore.exceptions.ClientError) as no_role:
        dms.create_endpoint(
            EndpointIdentifier="no-role", EndpointType="source", EngineName="postgres",
            PostgreSQLSettings={"SecretsManagerSecretId": secret_arn},
        )  # fmt: skip
    assert "SecretsManagerAccessRoleArn" in no_role.value.response["Error"]["Message"]
    lost = dms.create_endpoint(
        EndpointIdentifier="lost-secret", EndpointType="source", EngineName="postgres",
        PostgreSQLSettings={"SecretsManagerSecretId": "dms/no-such-secret",
                            "SecretsManagerAccessRoleArn": role},
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    failed = test_connection(lost)
    assert failed["Status"] == "failed"
    assert "dms/no-such-secret" in failed["LastFailureMessage"]
    assert "ResourceNotFoundException" in failed["LastFailureMessage"]


ROLE = "arn:aws:iam::123456789012:role/dms-s3"
PROVIDER_S3_TARGET = {
    # aws_dms_s3_endpoint with only bucket_name and service_access_role_arn set: its s3Settings()
    # sends every boolean and the schema's defaults (compression NONE, "," and "\\n").
    "AddColumnName": False, "AddTrailingPaddingCharacter": False, "CdcInsertsAndUpdates": False,
    "CdcInsertsOnly": False, "CompressionType": "NONE", "CsvDelimiter": ",",
    "CsvRowDelimiter": "\\n", "DatePartitionEnabled": False, "EnableStatistics": True,
    "IncludeOpForFullLoad": False, "ParquetTimestampInMillisecond": False,
    "PreserveTransactions": False, "Rfc4180": True, "ServiceAccessRoleArn": ROLE,
    "UseCsvNoSupValue": False, "UseTaskStartTimeForFullLoadTimestamp": False,
}  # fmt: skip


def test_the_s3_endpoint_as_the_provider_sends_it_reads_back_unchanged_and_loads_lines(
    dms, s3, source_db
):
    """What the provider's read sets from S3Settings must equal what it sent, or every plan
    shows a change; the literal ``\\n`` it sends must write one row per line."""
    source_db.execute("CREATE TABLE public.lines AS SELECT g AS id, 'row ' || g AS label "
                      "FROM generate_series(1, 5) g")  # fmt: skip
    pipeline = provision(dms, s3, source_db)
    settings = {**PROVIDER_S3_TARGET, "BucketName": pipeline.bucket, "BucketFolder": "tf"}
    created = dms.create_endpoint(
        EndpointIdentifier="tf-target", EndpointType="target", EngineName="s3",
        ServiceAccessRoleArn=ROLE, S3Settings=settings,
        Tags=[{"Key": "Name", "Value": "tf-target"}],
    )["Endpoint"]  # fmt: skip
    read = dms.describe_endpoints(Filters=[{"Name": "endpoint-id", "Values": ["tf-target"]}])[
        "Endpoints"
    ][0]
    for body in (created, read):
        assert body["S3Settings"] == settings  # no default DMS does not report is invented
        assert body["EndpointType"] == "TARGET"
        assert body["SslMode"] == "none"
        assert body["KmsKeyId"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
        attributes = body["ExtraConnectionAttributes"]
        assert "bucketFolder=tf;" in attributes
        assert "csvRowDelimiter=\\n;" in attributes
        assert ROLE not in attributes  # DMS leaves the role out of the attributes

    arn = create_task(dms, replace(pipeline, target_arn=created["EndpointArn"]),
                      select_rules(("public", "lines")))  # fmt: skip
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    assert wait_until_finished(dms, arn)["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    body = s3.get_object(Bucket=pipeline.bucket, Key="tf/public/lines/LOAD00000001.csv")["Body"]
    assert body.read().decode().splitlines() == [f"{n},row {n}" for n in range(1, 6)]


def test_a_postgres_endpoint_reads_back_its_connection_where_the_provider_looks(dms, source_db):
    """aws_dms_endpoint reads username, server_name, port and database_name from
    PostgreSQLSettings when DMS returns it, so top-level values must be there too."""
    server = source_db.server
    endpoint = dms.create_endpoint(
        EndpointIdentifier="tf-pg", EndpointType="source", EngineName="postgres",
        ServerName=server.host, Port=server.port, DatabaseName=source_db.name,
        Username=server.user, Password=server.password,
        ExtraConnectionAttributes="heartbeatEnable=true",
    )["Endpoint"]  # fmt: skip
    settings = endpoint["PostgreSQLSettings"]
    assert (settings["Username"], settings["ServerName"], settings["Port"],
            settings["DatabaseName"]) == (server.user, server.host, server.port, source_db.name)  # fmt: skip
    assert settings["HeartbeatEnable"] == "true"  # from the attributes, under the settings
    assert endpoint["ExtraConnectionAttributes"] == "heartbeatEnable=true"
    assert "Password" not in settings
    assert server.password not in json.dumps(endpoint)

    only_settings = dms.create_endpoint(
        EndpointIdentifier="tf-pg-settings", EndpointType="source", EngineName="postgres",
        PostgreSQLSettings={"ServerName": server.host, "Port": server.port,
                            "DatabaseName": source_db.name, "Username": server.user,
                            "Password": server.password},
    )["Endpoint"]  # fmt: skip
    assert (only_settings["ServerName"], only_settings["Port"]) == (server.host, server.port)
    assert server.password not in json.dumps(only_settings)


def test_the_replication_task_resource_sequence_create_read_update_read_delete(dms, s3, source_db):
    """aws_dms_replication_task: CreateReplicationTask, wait for ``ready``, read every field its
    read sets (ReplicationTaskSettings must be JSON: the provider parses it), ModifyReplicationTask
    as its update sends it, read again, DeleteReplicationTask and wait until it is gone."""
    source_db.execute("CREATE TABLE public.tiny AS SELECT 1 AS id")
    pipeline = provision(dms, s3, source_db)
    mappings = select_rules(("public", "tiny"))
    settings = {"Logging": {"EnableLogging": True}, "FullLoadSettings": {"MaxFullLoadSubTasks": 4}}
    task = dms.create_replication_task(
        ReplicationTaskIdentifier="tf-task", MigrationType="full-load",
        ReplicationInstanceArn=pipeline.instance_arn, SourceEndpointArn=pipeline.source_arn,
        TargetEndpointArn=pipeline.target_arn, TableMappings=mappings,
        ReplicationTaskSettings=json.dumps(settings), Tags=[{"Key": "Name", "Value": "tf"}],
    )["ReplicationTask"]  # fmt: skip
    arn = task["ReplicationTaskArn"]

    def read() -> dict[str, Any]:
        found = dms.describe_replication_tasks(
            Filters=[{"Name": "replication-task-id", "Values": ["tf-task"]}]
        )["ReplicationTasks"]
        assert len(found) == 1  # the provider's AssertSingleValueResult
        return dict(found[0])

    wait_for_status(dms, arn, {"ready"})
    state = read()
    assert (state["MigrationType"], state["ReplicationInstanceArn"], state["SourceEndpointArn"],
            state["TargetEndpointArn"], state["TableMappings"]) == (
        "full-load", pipeline.instance_arn, pipeline.source_arn, pipeline.target_arn, mappings)  # fmt: skip
    full = json.loads(state["ReplicationTaskSettings"])
    assert full["FullLoadSettings"]["MaxFullLoadSubTasks"] == 4
    assert "TargetMetadata" in full  # the defaults of a real task, merged with what was sent

    changed = select_rules(("public", "tiny"), ("public", "other"))
    dms.modify_replication_task(
        ReplicationTaskArn=arn, MigrationType="full-load", TableMappings=changed,
        ReplicationTaskSettings=json.dumps({"FullLoadSettings": {"MaxFullLoadSubTasks": 2}}),
    )  # fmt: skip
    assert read()["Status"] == "modifying"
    wait_for_status(dms, arn, {"ready"})
    state = read()
    assert state["TableMappings"] == changed
    assert json.loads(state["ReplicationTaskSettings"])["FullLoadSettings"][
        "MaxFullLoadSubTasks"] == 2  # fmt: skip

    dms.delete_replication_task(ReplicationTaskArn=arn)
    dms.get_waiter("replication_task_deleted").wait(
        Filters=[{"Name": "replication-task-id", "Values": ["tf-task"]}],
        WaiterConfig={"Delay": 0.1, "MaxAttempts": 100},
    )
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        read()
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundFault"


CFN_RENAMES = {"PostgreSqlSettings": "PostgreSQLSettings"}
"""AWS::DMS::* properties whose API member is spelled otherwise (the rest match one to one)."""


def test_a_cloudformation_stack_of_aws_dms_resources_creates_reads_and_deletes(dms, s3, source_db):
    """The properties of AWS::DMS::ReplicationSubnetGroup, ReplicationInstance, Endpoint,
    Certificate and ReplicationTask as a template gives them, the values their Ref and
    Fn::GetAtt return, and the stack's deletion in reverse order."""
    server = source_db.server
    source_db.execute("CREATE TABLE public.tiny AS SELECT 1 AS id")
    s3.create_bucket(Bucket="cfn-lake")
    group = dms.create_replication_subnet_group(
        ReplicationSubnetGroupIdentifier="cfn-subnets",
        ReplicationSubnetGroupDescription="from a stack", SubnetIds=["subnet-0a1", "subnet-0b2"],
    )["ReplicationSubnetGroup"]  # fmt: skip
    instance = dms.create_replication_instance(
        ReplicationInstanceIdentifier="cfn-instance", ReplicationInstanceClass="dms.t3.small",
        AllocatedStorage=20, ReplicationSubnetGroupIdentifier="cfn-subnets",
        PubliclyAccessible=False, MultiAZ=False, EngineVersion="3.5.3",
        VpcSecurityGroupIds=["sg-0123"], ResourceIdentifier="cfn-instance-res",
    )["ReplicationInstance"]  # fmt: skip
    assert group["SubnetGroupStatus"] == "Complete"
    assert instance["ReplicationInstanceArn"].endswith(":rep:cfn-instance-res")  # Ref
    assert instance["ReplicationInstancePrivateIpAddresses"] == ["127.0.0.1"]  # GetAtt
    assert instance["ReplicationInstancePublicIpAddresses"] == []  # GetAtt, not public
    certificate = dms.import_certificate(CertificateIdentifier="cfn-ca",
                                         CertificatePem=self_signed_pem())["Certificate"]  # fmt: skip
    properties = {
        "EndpointIdentifier": "cfn-source", "EndpointType": "source", "EngineName": "postgres",
        "PostgreSqlSettings": {"ServerName": server.host, "Port": server.port,
                               "DatabaseName": source_db.name, "Username": server.user,
                               "Password": server.password},
        "SslMode": "none", "Tags": [{"Key": "stack", "Value": "cfn"}],
    }  # fmt: skip
    source = dms.create_endpoint(**{CFN_RENAMES.get(k, k): v for k, v in properties.items()})[
        "Endpoint"
    ]
    target = dms.create_endpoint(
        EndpointIdentifier="cfn-target", EndpointType="target", EngineName="s3",
        S3Settings={"BucketName": "cfn-lake", "ServiceAccessRoleArn": ROLE},
    )["Endpoint"]  # fmt: skip
    for endpoint in (source, target):
        assert endpoint["ExternalId"]  # GetAtt ExternalId
        assert endpoint["EndpointArn"].startswith("arn:aws:dms:us-east-1:123456789012:endpoint:")
    dms.get_waiter("replication_instance_available").wait(
        Filters=[{"Name": "replication-instance-id", "Values": ["cfn-instance"]}],
        WaiterConfig={"Delay": 0.1, "MaxAttempts": 100},
    )
    task = dms.create_replication_task(
        ReplicationTaskIdentifier="cfn-task", MigrationType="full-load",
        ReplicationInstanceArn=instance["ReplicationInstanceArn"],
        SourceEndpointArn=source["EndpointArn"], TargetEndpointArn=target["EndpointArn"],
        TableMappings=select_rules(("public", "tiny")), TaskData='{"owner": "cfn"}',
        ResourceIdentifier="cfn-task-res",
    )["ReplicationTask"]  # fmt: skip
    assert task["ReplicationTaskArn"].endswith(":task:cfn-task-res")
    assert task["TaskData"] == '{"owner": "cfn"}'
    wait_for_status(dms, task["ReplicationTaskArn"], {"ready"})

    # Deleting the stack: in the reverse order of the dependencies.
    fast = {"Delay": 0.1, "MaxAttempts": 100}
    dms.delete_replication_task(ReplicationTaskArn=task["ReplicationTaskArn"])
    dms.get_waiter("replication_task_deleted").wait(
        Filters=[{"Name": "replication-task-id", "Values": ["cfn-task"]}], WaiterConfig=fast
    )
    for endpoint in (source, target):
        dms.delete_endpoint(EndpointArn=endpoint["EndpointArn"])
        dms.get_waiter("endpoint_deleted").wait(
            Filters=[{"Name": "endpoint-arn", "Values": [endpoint["EndpointArn"]]}],
            WaiterConfig=fast,
        )
    dms.delete_certificate(CertificateArn=certificate["CertificateArn"])
    dms.delete_replication_instance(ReplicationInstanceArn=instance["ReplicationInstanceArn"])
    dms.get_waiter("replication_instance_deleted").wait(
        Filters=[{"Name": "replication-instance-id", "Values": ["cfn-instance"]}],
        WaiterConfig=fast,
    )
    dms.delete_replication_subnet_group(ReplicationSubnetGroupIdentifier="cfn-subnets")
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        dms.describe_replication_subnet_groups(
            Filters=[{"Name": "replication-subnet-group-id", "Values": ["cfn-subnets"]}]
        )
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundFault"
