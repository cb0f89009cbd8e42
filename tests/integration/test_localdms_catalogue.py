"""The calls clients make on startup and in data sources, certificates, and the events and task
logs a task leaves: through boto3, and through the AWS CLI as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.certificates import self_signed_pem
from tests.pipeline import create_task, provision, run_task, select_rules

pytestmark = pytest.mark.integration


def code_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_the_catalogue_answers_what_clients_ask_on_startup(dms):
    orderable = dms.describe_orderable_replication_instances()["OrderableReplicationInstances"]
    classes = {o["ReplicationInstanceClass"] for o in orderable}
    assert {"dms.t3.micro", "dms.c5.large", "dms.r5.large"} <= classes
    micro = next(o for o in orderable if o["ReplicationInstanceClass"] == "dms.t3.micro")
    assert (
        micro["MinAllocatedStorage"]
        <= micro["DefaultAllocatedStorage"]
        <= micro["MaxAllocatedStorage"]
    )
    # The default engine version of a new instance is one DescribeEngineVersions offers.
    instance = dms.create_replication_instance(
        ReplicationInstanceIdentifier="catalogue", ReplicationInstanceClass="dms.t3.micro"
    )["ReplicationInstance"]
    versions = dms.describe_engine_versions()["EngineVersions"]
    assert instance["EngineVersion"] in {v["Version"] for v in versions}
    assert versions[0]["AvailableUpgrades"] == [v["Version"] for v in versions[1:]]

    types = dms.describe_endpoint_types()["SupportedEndpointTypes"]
    assert {(t["EngineName"], t["EndpointType"]) for t in types} == {
        ("postgres", "source"), ("aurora-postgresql", "source"), ("s3", "target"),
    }  # fmt: skip
    targets = dms.describe_endpoint_types(Filters=[{"Name": "endpoint-type", "Values": ["target"]}])
    assert [t["EngineName"] for t in targets["SupportedEndpointTypes"]] == ["s3"]

    s3_settings = {s["Name"]: s for s in dms.describe_endpoint_settings(EngineName="s3")[
        "EndpointSettings"]}  # fmt: skip
    assert s3_settings["dataFormat"]["EnumValues"] == ["csv", "parquet"]
    assert s3_settings["dataFormat"]["DefaultValue"] == "csv"
    assert s3_settings["csvRowDelimiter"]["DefaultValue"] == "\\n"
    assert (s3_settings["maxFileSize"]["IntValueMax"], s3_settings["maxFileSize"]["Units"]) == (
        1048576, "KB",
    )  # fmt: skip
    postgres = {s["Name"] for s in dms.describe_endpoint_settings(EngineName="postgres")[
        "EndpointSettings"]}  # fmt: skip
    assert {"slotName", "pluginName", "secretsManagerSecretId"} <= postgres
    with pytest.raises(botocore.exceptions.ClientError) as other:
        dms.describe_endpoint_settings(EngineName="oracle")
    assert code_of(other) == "InvalidParameterValueException"

    quotas = {q["AccountQuotaName"]: q for q in dms.describe_account_attributes()["AccountQuotas"]}
    assert quotas["ReplicationInstances"]["Used"] == 1
    assert quotas["AllocatedStorage"]["Used"] == instance["AllocatedStorage"]
    assert quotas["ReplicationTasks"]["Max"] == 600


def test_certificates_are_imported_described_protected_while_used_and_deleted(dms):
    pem = self_signed_pem()
    certificate = dms.import_certificate(
        CertificateIdentifier="source-ca", CertificatePem=pem, Tags=[{"Key": "team", "Value": "d"}]
    )["Certificate"]
    assert certificate["CertificateArn"].startswith("arn:aws:dms:us-east-1:123456789012:cert:")
    assert (certificate["SigningAlgorithm"], certificate["KeyLength"]) == ("SHA256withRSA", 2048)
    assert certificate["ValidFromDate"] < certificate["ValidToDate"]
    arn = certificate["CertificateArn"]
    found = dms.describe_certificates(Filters=[{"Name": "certificate-id", "Values": ["source-ca"]}])
    assert [c["CertificatePem"] for c in found["Certificates"]] == [pem]
    tags = dms.list_tags_for_resource(ResourceArn=arn)["TagList"]
    assert [(t["Key"], t["Value"]) for t in tags] == [("team", "d")]

    for request, code in (
        ({"CertificateIdentifier": "source-ca", "CertificatePem": pem},
         "ResourceAlreadyExistsFault"),
        ({"CertificateIdentifier": "broken", "CertificatePem": "-----BEGIN CERTIFICATE-----\nxx"},
         "InvalidCertificateFault"),
        ({"CertificateIdentifier": "nothing"}, "InvalidParameterValueException"),
    ):  # fmt: skip
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            dms.import_certificate(**request)
        assert code_of(refused) == code

    endpoint = dms.create_endpoint(
        EndpointIdentifier="uses-ca", EndpointType="target", EngineName="s3",
        CertificateArn=arn, S3Settings={"BucketName": "b"},
    )["Endpoint"]  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as in_use:
        dms.delete_certificate(CertificateArn=arn)
    assert code_of(in_use) == "InvalidResourceStateFault"
    assert "uses-ca" in in_use.value.response["Error"]["Message"]
    dms.delete_endpoint(EndpointArn=endpoint["EndpointArn"])
    dms.get_waiter("endpoint_deleted").wait(
        Filters=[{"Name": "endpoint-arn", "Values": [endpoint["EndpointArn"]]}],
        WaiterConfig={"Delay": 0.1, "MaxAttempts": 100},
    )
    assert dms.delete_certificate(CertificateArn=arn)["Certificate"]["CertificateArn"] == arn
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        dms.describe_certificates(Filters=[{"Name": "certificate-arn", "Values": [arn]}])
    assert code_of(gone) == "ResourceNotFoundFault"


def test_a_task_leaves_its_lifecycle_events_and_a_log(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.tiny AS SELECT 1 AS id")
    pipeline = provision(dms, s3, source_db)
    arn = create_task(dms, pipeline, select_rules(("public", "tiny")), identifier="evented")
    assert run_task(dms, arn)["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    failing = create_task(dms, pipeline, select_rules(("public", "absent")), identifier="nothing")
    assert run_task(dms, failing)["Status"] == "failed"

    events = dms.describe_events(SourceType="replication-task")["Events"]
    of_task = [e["Message"] for e in events if e["SourceIdentifier"] == "evented"]
    assert of_task == [
        "The replication task is created.",
        "The replication task has started.",
        "The replication task has stopped. Stop Reason FULL_LOAD_ONLY_FINISHED",
    ]
    failure = [e for e in events if e["SourceIdentifier"] == "nothing"][-1]
    assert failure["EventCategories"] == ["failure"]
    assert failure["Message"].startswith("The replication task has failed. Last Error")
    instance_events = dms.describe_events(SourceType="replication-instance")["Events"]
    assert [e["Message"] for e in instance_events][:2] == [
        "A replication instance is being created.", "A replication instance is created.",
    ]  # fmt: skip
    assert dms.describe_events(EventCategories=["failure"], SourceIdentifier="evented")[
        "Events"] == []  # fmt: skip
    assert dms.describe_events(Duration=60)["Events"]  # within the last hour
    latest = max(e["Date"] for e in events)
    assert dms.describe_events(StartTime=latest + timedelta(seconds=1))["Events"] == []

    logs = dms.describe_replication_instance_task_logs(
        ReplicationInstanceArn=pipeline.instance_arn
    )["ReplicationInstanceTaskLogs"]
    sizes = {log["ReplicationTaskName"]: log["ReplicationInstanceTaskLogSize"] for log in logs}
    assert set(sizes) == {"evented", "nothing"}
    assert all(size > 0 for size in sizes.values())
    before = sizes["evented"]
    run_task(dms, arn, "reload-target")
    after = {log["ReplicationTaskName"]: log["ReplicationInstanceTaskLogSize"]
             for log in dms.describe_replication_instance_task_logs(
                 ReplicationInstanceArn=pipeline.instance_arn)["ReplicationInstanceTaskLogs"]}  # fmt: skip
    assert after["evented"] > before

    dms.delete_replication_task(ReplicationTaskArn=arn)
    dms.get_waiter("replication_task_deleted").wait(
        Filters=[{"Name": "replication-task-arn", "Values": [arn]}],
        WaiterConfig={"Delay": 0.1, "MaxAttempts": 100},
    )
    deleted = dms.describe_events(SourceIdentifier="evented", EventCategories=["deletion"])
    assert [e["Message"] for e in deleted["Events"]] == ["The replication task is deleted."]


AWS_CLI = Path(sys.executable).with_name("aws")  # the dev extra's, beside this interpreter


@pytest.mark.skipif(not AWS_CLI.exists(), reason=f"the AWS CLI is not installed ({AWS_CLI})")
def test_the_aws_cli_drives_localdms_as_a_user_types_it(localdms, tmp_path: Path):
    """``aws dms ...`` (the CLI of the dev extra, with its own copy of botocore's model)."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
    }

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [str(AWS_CLI), "dms", *args, "--endpoint-url", localdms.url, "--output", "json"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    pem_file = tmp_path / "ca.pem"
    pem_file.write_text(self_signed_pem())
    imported = cli("import-certificate", "--certificate-identifier", "cli-ca",
                   "--certificate-pem", f"file://{pem_file}")["Certificate"]  # fmt: skip
    assert imported["CertificateIdentifier"] == "cli-ca"
    endpoint = cli(
        "create-endpoint", "--endpoint-identifier", "cli-target", "--endpoint-type", "target",
        "--engine-name", "s3", "--s3-settings",
        "BucketName=lake,BucketFolder=raw,CsvRowDelimiter=\\n,CompressionType=GZIP",
    )["Endpoint"]  # fmt: skip
    assert endpoint["S3Settings"]["BucketFolder"] == "raw"
    assert "compressionType=GZIP;" in endpoint["ExtraConnectionAttributes"]
    described = cli("describe-endpoints", "--filters", "Name=endpoint-id,Values=cli-target")
    assert [e["EndpointArn"] for e in described["Endpoints"]] == [endpoint["EndpointArn"]]
    instance = cli("create-replication-instance", "--replication-instance-identifier", "cli-ri",
                   "--replication-instance-class", "dms.t3.micro",
                   "--no-auto-minor-version-upgrade")["ReplicationInstance"]  # fmt: skip
    assert instance["AutoMinorVersionUpgrade"] is False
    cli("wait", "replication-instance-available",
        "--filters", f"Name=replication-instance-arn,Values={instance['ReplicationInstanceArn']}")  # fmt: skip
    for command in ("describe-account-attributes", "describe-orderable-replication-instances",
                    "describe-engine-versions", "describe-endpoint-types", "describe-events",
                    "describe-certificates", "describe-replication-subnet-groups"):  # fmt: skip
        assert cli(command), command
    assert cli("describe-endpoint-settings", "--engine-name", "postgres")["EndpointSettings"]
    source = cli(
        "create-endpoint", "--endpoint-identifier", "cli-source", "--endpoint-type", "source",
        "--engine-name", "postgres", "--server-name", "127.0.0.1", "--port", "5432",
        "--database-name", "app", "--username", "dms", "--password", "pw",
    )["Endpoint"]  # fmt: skip
    config = cli(
        "create-replication-config", "--replication-config-identifier", "cli-serverless",
        "--source-endpoint-arn", source["EndpointArn"],
        "--target-endpoint-arn", endpoint["EndpointArn"], "--replication-type", "full-load",
        "--compute-config", "MaxCapacityUnits=4,MinCapacityUnits=2",
        "--table-mappings", '{"rules": [{"rule-type": "selection", "rule-id": "1", '
        '"rule-name": "1", "object-locator": {"schema-name": "public", "table-name": "%"}, '
        '"rule-action": "include"}]}',
    )["ReplicationConfig"]  # fmt: skip
    assert config["ComputeConfig"]["MaxCapacityUnits"] == 4
    replications = cli("describe-replications", "--filters",
                       f"Name=replication-config-arn,Values={config['ReplicationConfigArn']}")  # fmt: skip
    assert [r["Status"] for r in replications["Replications"]] == ["created"]
    cli("delete-replication-config", "--replication-config-arn", config["ReplicationConfigArn"])
    deleted = cli("delete-endpoint", "--endpoint-arn", endpoint["EndpointArn"])
    assert deleted["Endpoint"]["Status"] == "deleting"
