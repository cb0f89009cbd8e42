"""DMS Serverless through boto3: replication configs, their replications' lifecycle as the
Terraform provider and Airflow's waiters poll it, DMS's refusals, and the same engine as tasks
(full load, change capture, S3 output, table statistics, restart)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import botocore.exceptions
import pytest

from dms_spec.serverless import STARTING_PHASES
from sandbox.localdms_process import LocalDmsProcess
from tests.integration.test_localdms_cdc import (
    CDC_S3,
    change_accounts,
    make_accounts,
    replay,
    slots,
    source_state,
    wait_for_sentinel,
)
from tests.pipeline import Pipeline, provision, read_objects, select_rules

pytestmark = pytest.mark.integration

COMPUTE = {"MaxCapacityUnits": 16, "MinCapacityUnits": 2, "VpcSecurityGroupIds": ["sg-0a1"]}


def code_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def create_config(dms: Any, pipeline: Pipeline, mappings: str, kind: str = "full-load",
                  identifier: str = "serverless", compute: dict[str, Any] | None = None,
                  **extra: Any) -> str:  # fmt: skip
    config = dms.create_replication_config(
        ReplicationConfigIdentifier=identifier, SourceEndpointArn=pipeline.source_arn,
        TargetEndpointArn=pipeline.target_arn, ComputeConfig=compute or COMPUTE, ReplicationType=kind,
        TableMappings=mappings, **extra,
    )["ReplicationConfig"]  # fmt: skip
    return str(config["ReplicationConfigArn"])


def replication(dms: Any, arn: str) -> dict[str, Any]:
    found = dms.describe_replications(
        Filters=[{"Name": "replication-config-arn", "Values": [arn]}]
    )["Replications"]
    assert len(found) == 1
    return dict(found[0])


def watch(dms: Any, arn: str, until: set[str], timeout: float = 120) -> list[dict[str, Any]]:
    """Every replication seen (every 0.05 s) until its status is one of ``until``."""
    seen = [replication(dms, arn)]
    deadline = time.monotonic() + timeout
    while seen[-1]["Status"] not in until:
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.05)
        seen.append(replication(dms, arn))
    return seen


def statistics(dms: Any, arn: str) -> dict[tuple[str, str], dict[str, Any]]:
    page = dms.describe_replication_table_statistics(ReplicationConfigArn=arn)
    assert page["ReplicationConfigArn"] == arn
    return {(t["SchemaName"], t["TableName"]): t for t in page["ReplicationTableStatistics"]}


def test_a_full_load_replication_provisions_runs_stops_and_deprovisions(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.tiny AS SELECT g AS id FROM generate_series(1, 42) g")
    pipeline = provision(dms, s3, source_db)
    arn = create_config(dms, pipeline, select_rules(("public", "tiny")))
    config = dms.describe_replication_configs(
        Filters=[{"Name": "replication-config-id", "Values": ["serverless"]}]
    )["ReplicationConfigs"][0]
    assert arn.startswith("arn:aws:dms:us-east-1:123456789012:replication-config:")
    compute = config["ComputeConfig"]
    assert (compute["MaxCapacityUnits"], compute["MinCapacityUnits"], compute["MultiAZ"]) == (
        16, 2, False,
    )  # fmt: skip
    assert compute["KmsKeyId"].startswith("arn:aws:kms:")
    created = replication(dms, arn)
    assert created["Status"] == "created"
    assert "ProvisionData" not in created

    started = dms.start_replication(
        ReplicationConfigArn=arn, StartReplicationType="start-replication"
    )["Replication"]
    assert started["Status"] == "initializing"
    seen = watch(dms, arn, {"stopped", "failed"})
    statuses = list(dict.fromkeys(r["Status"] for r in [started, *seen]))
    assert statuses[0] == "initializing"
    assert "provisioning_capacity" in statuses
    assert statuses[-1] == "stopped", seen[-1]
    states = list(dict.fromkeys(r["ProvisionData"]["ProvisionState"] for r in seen))
    assert states[0] == "provisioning"
    assert "provisioned" in states
    done = seen[-1]
    assert done["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    assert done["ReplicationStats"]["FullLoadProgressPercent"] == 100
    assert done["ReplicationStats"]["TablesLoaded"] == 1
    assert done["StartReplicationType"] == "start-replication"
    while replication(dms, arn)["ProvisionData"]["ProvisionState"] != "deprovisioned":
        time.sleep(0.05)  # Airflow's replication_deprovisioned waiter
    final = replication(dms, arn)
    assert final["ProvisionData"]["ProvisionedCapacityUnits"] == 0
    assert final["ReplicationDeprovisionTime"] >= final["ReplicationLastStopTime"]
    assert statistics(dms, arn)[("public", "tiny")]["FullLoadRows"] == 42
    body = read_objects(s3, pipeline.bucket, "public/tiny/")["public/tiny/LOAD00000001.csv"]
    assert len(body.decode().splitlines()) == 42
    # It is a replication, not a task.
    with pytest.raises(botocore.exceptions.ClientError) as no_task:
        dms.describe_replication_tasks(Filters=[{"Name": "replication-task-arn", "Values": [arn]}])
    assert code_of(no_task) == "ResourceNotFoundFault"

    with pytest.raises(botocore.exceptions.ClientError) as again:
        dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="start-replication")
    assert code_of(again) == "InvalidParameterCombinationException"
    source_db.execute("INSERT INTO public.tiny VALUES (43)")
    dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="reload-target")
    watch(dms, arn, {"stopped"})
    assert statistics(dms, arn)[("public", "tiny")]["FullLoadRows"] == 43


def test_compute_config_and_states_are_checked_as_dms_checks_them(dms, s3, source_db):
    source_db.execute("CREATE TABLE public.big AS SELECT g AS id, repeat('x', 300) AS pad "
                      "FROM generate_series(1, 400000) g")  # fmt: skip
    pipeline = provision(dms, s3, source_db)
    mappings = select_rules(("public", "big"))
    base = {"ReplicationConfigIdentifier": "bad", "SourceEndpointArn": pipeline.source_arn,
            "TargetEndpointArn": pipeline.target_arn, "ReplicationType": "full-load",
            "TableMappings": mappings}  # fmt: skip
    for compute, words in (
        ({"MinCapacityUnits": 2}, "needs MaxCapacityUnits"),
        ({"MaxCapacityUnits": 3}, "MaxCapacityUnits=3 is not a valid"),
        ({"MaxCapacityUnits": 4, "MinCapacityUnits": 8}, "cannot exceed"),
    ):
        with pytest.raises(botocore.exceptions.ClientError, match=words) as refused:
            dms.create_replication_config(**base, ComputeConfig=compute)
        assert code_of(refused) == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as no_group:
        dms.create_replication_config(
            **base, ComputeConfig={"MaxCapacityUnits": 2, "ReplicationSubnetGroupId": "nope"}
        )
    assert code_of(no_group) == "ResourceNotFoundFault"
    with pytest.raises(botocore.exceptions.ClientError) as swapped:
        dms.create_replication_config(**{**base, "SourceEndpointArn": pipeline.target_arn},
                                      ComputeConfig={"MaxCapacityUnits": 2})  # fmt: skip
    assert code_of(swapped) == "InvalidParameterValueException"

    arn = create_config(dms, pipeline, mappings)
    with pytest.raises(botocore.exceptions.ClientError) as duplicate:
        create_config(dms, pipeline, mappings)
    assert code_of(duplicate) == "ResourceAlreadyExistsFault"
    with pytest.raises(botocore.exceptions.ClientError) as not_yet:
        dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="reload-target")
    assert code_of(not_yet) == "InvalidParameterCombinationException"
    with pytest.raises(botocore.exceptions.ClientError) as not_running:
        dms.stop_replication(ReplicationConfigArn=arn)
    assert code_of(not_running) == "InvalidResourceStateFault"

    # The provider starts a new config with resume-processing (its status is created, not ready).
    dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="resume-processing")
    for call in (
        lambda: dms.start_replication(ReplicationConfigArn=arn,
                                      StartReplicationType="reload-target"),
        lambda: dms.modify_replication_config(ReplicationConfigArn=arn, TableMappings=mappings),
        lambda: dms.delete_replication_config(ReplicationConfigArn=arn),
        lambda: dms.delete_endpoint(EndpointArn=pipeline.source_arn),
    ):  # fmt: skip
        with pytest.raises(botocore.exceptions.ClientError) as busy:
            call()
        assert code_of(busy) == "InvalidResourceStateFault"
    watch(dms, arn, {"running"})
    stopping = dms.stop_replication(ReplicationConfigArn=arn)["Replication"]
    assert stopping["Status"] == "stopping"
    stopped = watch(dms, arn, {"stopped"})[-1]
    assert stopped["StopReason"] == "Stop Reason NORMAL"
    with pytest.raises(botocore.exceptions.ClientError, match="only while it is in the RUNNING"):
        dms.reload_replication_tables(
            ReplicationConfigArn=arn, TablesToReload=[{"SchemaName": "public", "TableName": "big"}]
        )

    modified = dms.modify_replication_config(
        ReplicationConfigArn=arn, ComputeConfig={"MaxCapacityUnits": 32},
        ReplicationSettings='{"FullLoadSettings": {"MaxFullLoadSubTasks": 2}}',
    )["ReplicationConfig"]  # fmt: skip
    assert modified["ComputeConfig"]["MaxCapacityUnits"] == 32
    assert modified["ComputeConfig"]["MinCapacityUnits"] == 2  # merged, not replaced
    assert '"MaxFullLoadSubTasks": 2' in modified["ReplicationSettings"]
    dms.delete_replication_config(ReplicationConfigArn=arn)
    assert replication(dms, arn)["Status"] == "deleting"
    time.sleep(0.3)  # deleting shows for transition_seconds (0.2 s here)
    with pytest.raises(botocore.exceptions.ClientError) as gone:  # replication_config_deleted
        dms.describe_replication_configs(
            Filters=[{"Name": "replication-config-arn", "Values": [arn]}]
        )
    assert code_of(gone) == "ResourceNotFoundFault"


def test_a_full_load_and_cdc_replication_captures_changes_and_survives_a_kill(
    s3, s3_server, source_db
):
    make_accounts(source_db, 500)
    server = LocalDmsProcess(s3_server.url, transition_seconds=0.2).start()
    try:
        dms = boto3.client("dms", endpoint_url=server.url)
        pipeline = provision(dms, s3, source_db, s3_settings=CDC_S3)
        arn = create_config(dms, pipeline, select_rules(("app", "%")), "full-load-and-cdc")
        dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="start-replication")
        watch(dms, arn, {"running"})
        while replication(dms, arn)["ReplicationStats"]["FullLoadProgressPercent"] < 100:
            time.sleep(0.1)
        change_accounts(source_db, 10_001, 20)
        source_db.execute("INSERT INTO app.accounts VALUES (999999, 's', 0, now(), true, '{}')")
        wait_for_sentinel(s3, pipeline.bucket, 999_999)
        assert statistics(dms, arn)[("app", "accounts")]["Inserts"] >= 21
        server.kill()  # the capturing replication resumes from its checkpoint by itself
        change_accounts(source_db, 20_001, 10)  # while localdms is down
        server.start()
        assert replication(dms, arn)["Status"] != "stopped"
        watch(dms, arn, {"running"})
        source_db.execute("INSERT INTO app.accounts VALUES (999998, 's', 0, now(), true, '{}')")
        wait_for_sentinel(s3, pipeline.bucket, 999_998)
        assert replay(s3, pipeline.bucket) == source_state(source_db)
        dms.stop_replication(ReplicationConfigArn=arn)
        watch(dms, arn, {"stopped"})
        dms.delete_replication_config(ReplicationConfigArn=arn)
        deadline = time.monotonic() + 30
        while slots(source_db):
            assert time.monotonic() < deadline, "the slot outlived the replication config"
            time.sleep(0.2)
    finally:
        server.stop()


TERRAFORM_PENDING = {"ready", *STARTING_PHASES}
"""waitReplicationRunning's Pending statuses (its Target: running, stopped)."""


def test_the_replication_config_resource_sequence_as_the_provider_runs_it(dms, s3, source_db):
    """aws_dms_replication_config with start_replication = true: create, read, start (its
    startReplication sends resume-processing to a config that is not ``ready``), wait through
    the pending statuses, update (stop, modify), read, delete (stop, delete, wait until
    DescribeReplications finds nothing)."""
    source_db.execute("CREATE TABLE public.tiny AS SELECT g AS id FROM generate_series(1, 9) g")
    pipeline = provision(dms, s3, source_db)
    dms.create_replication_subnet_group(
        ReplicationSubnetGroupIdentifier="tf-subnets", ReplicationSubnetGroupDescription="tf",
        SubnetIds=["subnet-0a1", "subnet-0b2"],
    )  # fmt: skip
    compute = {"MaxCapacityUnits": 4, "MinCapacityUnits": 2, "MultiAZ": False,
               "ReplicationSubnetGroupId": "tf-subnets", "VpcSecurityGroupIds": ["sg-0a1"],
               "PreferredMaintenanceWindow": "sun:23:45-mon:00:30"}  # fmt: skip
    arn = create_config(
        dms, pipeline, select_rules(("public", "tiny")), identifier="tf-config", compute=compute,
        ReplicationSettings='{"Logging": {"EnableLogging": true}}',
        SupplementalSettings='{"note": "kept"}', ResourceIdentifier="tf-config-res",
        Tags=[{"Key": "Name", "Value": "tf"}],
    )  # fmt: skip
    assert arn.endswith(":replication-config:tf-config-res")

    def read() -> dict[str, Any]:
        found = dms.describe_replication_configs(
            Filters=[{"Name": "replication-config-arn", "Values": [arn]}]
        )["ReplicationConfigs"]
        assert len(found) == 1  # AssertSinglePtrResult
        return dict(found[0])

    state = read()
    for member, value in compute.items():
        assert state["ComputeConfig"][member] == value, member
    assert state["ComputeConfig"]["KmsKeyId"]  # the account's key when none is given
    assert (state["ReplicationConfigIdentifier"], state["ReplicationType"],
            state["SupplementalSettings"]) == ("tf-config", "full-load", '{"note": "kept"}')  # fmt: skip
    assert '"EnableLogging": true' in state["ReplicationSettings"]

    status = replication(dms, arn)["Status"]
    start_type = "start-replication" if status == "ready" else "resume-processing"
    assert start_type == "resume-processing"  # created, not ready
    dms.start_replication(ReplicationConfigArn=arn, StartReplicationType=start_type)
    seen = watch(dms, arn, {"running", "stopped"})
    assert {r["Status"] for r in seen[:-1]} <= TERRAFORM_PENDING
    watch(dms, arn, {"stopped"})

    dms.modify_replication_config(ReplicationConfigArn=arn, ComputeConfig={"MaxCapacityUnits": 8})
    assert read()["ComputeConfig"]["MaxCapacityUnits"] == 8
    dms.delete_replication_config(ReplicationConfigArn=arn)
    deadline = time.monotonic() + 30
    while True:  # waitReplicationDeleted: Pending deleting, stopped; gone is NotFound
        try:
            status = replication(dms, arn)["Status"]
        except botocore.exceptions.ClientError as gone:
            assert gone.response["Error"]["Code"] == "ResourceNotFoundFault"  # noqa: PT017
            break
        assert status in ("deleting", "stopped")
        assert time.monotonic() < deadline
        time.sleep(0.05)
    dms.delete_replication_subnet_group(ReplicationSubnetGroupIdentifier="tf-subnets")


def test_premigration_assessment_settings_assess_before_the_replication_starts(dms, s3, source_db):
    """StartReplication with PremigrationAssessmentSettings: the assessments run first (the
    replication ``initializing``), their run in PremigrationAssessmentStatuses and their results
    in the bucket DMS Serverless makes; a failed run keeps the replication from starting unless
    FailOnAssessmentFailure is false."""
    source_db.execute("CREATE TABLE public.nopk AS SELECT g AS id FROM generate_series(1, 9) g")
    pipeline = provision(dms, s3, source_db)
    arn = create_config(dms, pipeline, select_rules(("public", "nopk")), kind="full-load-and-cdc")
    settings = {"ResultLocationFolder": "preflight", "IncludeOnly": "postgres-check-pk"}
    started = dms.start_replication(
        ReplicationConfigArn=arn, StartReplicationType="start-replication",
        PremigrationAssessmentSettings=json.dumps(settings),
    )["Replication"]  # fmt: skip
    assert started["Status"] == "initializing"
    failed = watch(dms, arn, {"failed", "running"})[-1]

    assert failed["Status"] == "failed", failed  # the table has no primary key: CDC cannot key it
    assessment = failed["PremigrationAssessmentStatuses"][0]
    assert (assessment["Status"], assessment["FailOnAssessmentFailure"]) == ("failed", True)
    assert assessment["ResultStatistic"]["Failed"] == 1
    assert "FailOnAssessmentFailure is true" in failed["FailureMessages"][0]
    bucket = assessment["ResultLocationBucket"]
    assert bucket == f"dms-serverless-{arn.rsplit(':', 1)[-1].lower()}"
    files = read_objects(s3, bucket, "preflight/")
    pk = next(
        json.loads(body) for key, body in files.items() if key.endswith("postgres-check-pk.json")
    )
    assert pk["objects"] == ["public.nopk"]
    individual = dms.describe_replication_task_individual_assessments(Filters=[
        {"Name": "replication-task-assessment-run-arn",
         "Values": [assessment["PremigrationAssessmentRunArn"]]},
    ])["ReplicationTaskIndividualAssessments"]  # fmt: skip
    assert [(a["IndividualAssessmentName"], a["Status"]) for a in individual] == [
        ("postgres-check-pk", "failed")
    ]

    # The same findings, and the replication goes on: FailOnAssessmentFailure false.
    dms.start_replication(
        ReplicationConfigArn=arn, StartReplicationType="start-replication",
        PremigrationAssessmentSettings=json.dumps({**settings, "FailOnAssessmentFailure": False}),
    )  # fmt: skip
    running = watch(dms, arn, {"running", "failed"})[-1]
    assert running["Status"] == "running", running
    statuses = running["PremigrationAssessmentStatuses"]
    assert [(s["Status"], s["FailOnAssessmentFailure"]) for s in statuses] == [
        ("failed", False), ("failed", True),
    ]  # fmt: skip
    dms.stop_replication(ReplicationConfigArn=arn)
    watch(dms, arn, {"stopped"})
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        dms.start_replication(ReplicationConfigArn=arn, StartReplicationType="resume-processing",
                              PremigrationAssessmentSettings='{"Include": "x"}')  # fmt: skip
    assert code_of(excinfo) == "InvalidParameterValueException"
