"""Provisioning through the DMS API, as a user would: instance, endpoints, task, run."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from tests.conftest import SourceDatabase

FAST_WAITER = {"Delay": 0.1, "MaxAttempts": 300}


@dataclass
class Pipeline:
    instance_arn: str
    source_arn: str
    target_arn: str
    bucket: str


def select_rules(*patterns: tuple[str, str], action: str = "include") -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rule-type": "selection",
                    "rule-id": str(index),
                    "rule-name": str(index),
                    "object-locator": {"schema-name": schema, "table-name": table},
                    "rule-action": action,
                }
                for index, (schema, table) in enumerate(patterns, start=1)
            ]
        }
    )


def provision(
    dms: Any,
    s3: Any,
    source: SourceDatabase,
    bucket: str = "target-bucket",
    s3_settings: dict[str, Any] | None = None,
    password: str | None = None,
    port: int | None = None,
    postgres_settings: dict[str, Any] | None = None,
    ssl_mode: str | None = None,
    certificate_arn: str | None = None,
) -> Pipeline:
    s3.create_bucket(Bucket=bucket)
    instance = dms.create_replication_instance(
        ReplicationInstanceIdentifier="test-instance", ReplicationInstanceClass="dms.t3.micro"
    )["ReplicationInstance"]
    server = source.server
    source_endpoint = dms.create_endpoint(
        EndpointIdentifier="source",
        EndpointType="source",
        EngineName="postgres",
        ServerName=server.host,
        Port=port or server.port,
        DatabaseName=source.name,
        Username=server.user,
        Password=server.password if password is None else password,
        **({"PostgreSQLSettings": postgres_settings} if postgres_settings else {}),
        **({"SslMode": ssl_mode} if ssl_mode else {}),
        **({"CertificateArn": certificate_arn} if certificate_arn else {}),
    )["Endpoint"]
    target_endpoint = dms.create_endpoint(
        EndpointIdentifier="target",
        EndpointType="target",
        EngineName="s3",
        S3Settings={"BucketName": bucket, **(s3_settings or {})},
    )["Endpoint"]
    dms.get_waiter("replication_instance_available").wait(
        Filters=[
            {"Name": "replication-instance-arn", "Values": [instance["ReplicationInstanceArn"]]}
        ],
        WaiterConfig=FAST_WAITER,
    )
    return Pipeline(
        instance["ReplicationInstanceArn"],
        source_endpoint["EndpointArn"],
        target_endpoint["EndpointArn"],
        bucket,
    )


def create_task(
    dms: Any,
    pipeline: Pipeline,
    table_mappings: str,
    identifier: str = "test-task",
    migration_type: str = "full-load",
    **extra: Any,
) -> str:
    task = dms.create_replication_task(
        ReplicationTaskIdentifier=identifier,
        SourceEndpointArn=pipeline.source_arn,
        TargetEndpointArn=pipeline.target_arn,
        ReplicationInstanceArn=pipeline.instance_arn,
        MigrationType=migration_type,
        TableMappings=table_mappings,
        **extra,
    )["ReplicationTask"]
    arn: str = task["ReplicationTaskArn"]
    dms.get_waiter("replication_task_ready").wait(
        Filters=[{"Name": "replication-task-arn", "Values": [arn]}], WaiterConfig=FAST_WAITER
    )
    return arn


def describe_task(dms: Any, arn: str) -> dict[str, Any]:
    task: dict[str, Any] = dms.describe_replication_tasks(
        Filters=[{"Name": "replication-task-arn", "Values": [arn]}]
    )["ReplicationTasks"][0]
    return task


def wait_for_status(dms: Any, arn: str, statuses: set[str], timeout: float = 120) -> dict[str, Any]:
    """Poll until the task's status is one of ``statuses``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        task = describe_task(dms, arn)
        if task["Status"] in statuses:
            return task
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {arn} still {task['Status']} after {timeout} s")
        time.sleep(0.1)


def wait_until_finished(dms: Any, arn: str, timeout: float = 120) -> dict[str, Any]:
    """Poll until the task leaves starting/running/stopping; return it."""
    return wait_for_status(dms, arn, {"stopped", "failed"}, timeout)


def run_task(dms: Any, arn: str, start_type: str = "start-replication") -> dict[str, Any]:
    dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType=start_type)
    return wait_until_finished(dms, arn)


def table_statistics(dms: Any, arn: str) -> dict[tuple[str, str], dict[str, Any]]:
    pages = dms.get_paginator("describe_table_statistics").paginate(ReplicationTaskArn=arn)
    return {(t["SchemaName"], t["TableName"]): t for page in pages for t in page["TableStatistics"]}


def read_objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {
        item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for page in pages
        for item in page.get("Contents", [])
    }
