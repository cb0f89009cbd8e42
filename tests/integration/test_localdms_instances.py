"""Replication instances and subnet groups as Terraform's provider creates and reads them
(``aws_dms_replication_subnet_group``, ``aws_dms_replication_instance``): every requested value
comes back, a default subnet group when none is named, modifications deferred or applied as DMS
does them, and DMS's refusals."""

from __future__ import annotations

import botocore.exceptions
import pytest

from tests.pipeline import FAST_WAITER

pytestmark = pytest.mark.integration


def code_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


def test_a_subnet_group_is_created_described_modified_and_refused_as_dms_does(dms):
    created = dms.create_replication_subnet_group(
        ReplicationSubnetGroupIdentifier="Private-Subnets",
        ReplicationSubnetGroupDescription="DMS in the private subnets",
        SubnetIds=["subnet-0a1", "subnet-0b2"],
        Tags=[{"Key": "team", "Value": "data"}],
    )["ReplicationSubnetGroup"]
    assert created["ReplicationSubnetGroupIdentifier"] == "private-subnets"  # stored lowercase
    assert created["VpcId"]
    assert [s["SubnetIdentifier"] for s in created["Subnets"]] == ["subnet-0a1", "subnet-0b2"]
    zones = {s["SubnetAvailabilityZone"]["Name"] for s in created["Subnets"]}
    assert len(zones) == 2

    # The provider reads it back with this filter, and builds the ARN for tags itself.
    found = dms.describe_replication_subnet_groups(
        Filters=[{"Name": "replication-subnet-group-id", "Values": ["private-subnets"]}]
    )["ReplicationSubnetGroups"]
    assert [g["ReplicationSubnetGroupDescription"] for g in found] == ["DMS in the private subnets"]
    arn = "arn:aws:dms:us-east-1:123456789012:subgrp:private-subnets"
    assert dms.list_tags_for_resource(ResourceArn=arn)["TagList"][0]["Value"] == "data"

    modified = dms.modify_replication_subnet_group(
        ReplicationSubnetGroupIdentifier="private-subnets",
        SubnetIds=["subnet-0a1", "subnet-0b2", "subnet-0c3"],
    )["ReplicationSubnetGroup"]
    assert len(modified["Subnets"]) == 3
    assert modified["ReplicationSubnetGroupDescription"] == "DMS in the private subnets"

    for request, code in (
        ({"SubnetIds": ["subnet-0a1"]}, "ReplicationSubnetGroupDoesNotCoverEnoughAZs"),
        ({"SubnetIds": ["sg-123", "subnet-0b2"]}, "InvalidSubnet"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            dms.create_replication_subnet_group(
                ReplicationSubnetGroupIdentifier="other", ReplicationSubnetGroupDescription="x",
                **request,
            )  # fmt: skip
        assert code_of(refused) == code
    with pytest.raises(botocore.exceptions.ClientError) as taken:
        dms.create_replication_subnet_group(
            ReplicationSubnetGroupIdentifier="PRIVATE-SUBNETS",
            ReplicationSubnetGroupDescription="x", SubnetIds=["subnet-1", "subnet-2"],
        )  # fmt: skip
    assert code_of(taken) == "ResourceAlreadyExistsFault"


def test_an_instance_echoes_what_terraform_sets_and_keeps_its_group_until_deleted(dms):
    dms.create_replication_subnet_group(
        ReplicationSubnetGroupIdentifier="private", ReplicationSubnetGroupDescription="private",
        SubnetIds=["subnet-0a1", "subnet-0b2"],
    )  # fmt: skip
    instance = dms.create_replication_instance(
        ReplicationInstanceIdentifier="tf-instance",
        ReplicationInstanceClass="dms.t3.medium",
        AllocatedStorage=100,
        AvailabilityZone="us-east-1b",
        ReplicationSubnetGroupIdentifier="private",
        VpcSecurityGroupIds=["sg-0123456789abcdef0"],
        PreferredMaintenanceWindow="Tue:03:00-Tue:03:30",
        AutoMinorVersionUpgrade=False,
        KmsKeyId="arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
        NetworkType="IPV4",
        EngineVersion="3.5.4",
    )["ReplicationInstance"]

    # What the provider's read sets, field by field (a wrong one is a replacement on every plan).
    assert instance["ReplicationSubnetGroup"]["ReplicationSubnetGroupIdentifier"] == "private"
    assert instance["AvailabilityZone"] == "us-east-1b"
    assert instance["AutoMinorVersionUpgrade"] is False
    assert instance["VpcSecurityGroups"] == [
        {"VpcSecurityGroupId": "sg-0123456789abcdef0", "Status": "active"}
    ]
    assert instance["PreferredMaintenanceWindow"] == "tue:03:00-tue:03:30"
    assert instance["KmsKeyId"].endswith("key/11111111-2222-3333-4444-555555555555")
    assert (instance["NetworkType"], instance["EngineVersion"], instance["AllocatedStorage"]) == (
        "IPV4", "3.5.4", 100,
    )  # fmt: skip
    assert instance["PendingModifiedValues"] == {}

    with pytest.raises(botocore.exceptions.ClientError) as in_use:
        dms.delete_replication_subnet_group(ReplicationSubnetGroupIdentifier="private")
    assert code_of(in_use) == "InvalidResourceStateFault"

    arn = instance["ReplicationInstanceArn"]
    dms.get_waiter("replication_instance_available").wait(
        Filters=[{"Name": "replication-instance-arn", "Values": [arn]}], WaiterConfig=FAST_WAITER
    )
    dms.delete_replication_instance(ReplicationInstanceArn=arn)
    dms.get_waiter("replication_instance_deleted").wait(
        Filters=[{"Name": "replication-instance-arn", "Values": [arn]}], WaiterConfig=FAST_WAITER
    )
    dms.delete_replication_subnet_group(ReplicationSubnetGroupIdentifier="private")
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        dms.describe_replication_subnet_groups(
            Filters=[{"Name": "replication-subnet-group-id", "Values": ["private"]}]
        )
    assert code_of(gone) == "ResourceNotFoundFault"


def test_an_instance_without_a_group_gets_the_default_one_and_a_missing_group_is_refused(dms):
    instance = dms.create_replication_instance(
        ReplicationInstanceIdentifier="plain", ReplicationInstanceClass="dms.t3.micro", MultiAZ=True
    )["ReplicationInstance"]
    group = instance["ReplicationSubnetGroup"]
    assert group["ReplicationSubnetGroupIdentifier"] == "default"
    assert group["VpcId"]
    assert len(group["Subnets"]) >= 2
    assert instance["AvailabilityZone"] != instance["SecondaryAvailabilityZone"]  # MultiAZ
    assert instance["KmsKeyId"].startswith("arn:aws:kms:us-east-1:123456789012:key/")
    assert instance["VpcSecurityGroups"][0]["Status"] == "active"
    assert instance["AutoMinorVersionUpgrade"] is True

    with pytest.raises(botocore.exceptions.ClientError) as missing:
        dms.create_replication_instance(
            ReplicationInstanceIdentifier="lost", ReplicationInstanceClass="dms.t3.micro",
            ReplicationSubnetGroupIdentifier="no-such-group",
        )  # fmt: skip
    assert code_of(missing) == "ResourceNotFoundFault"
    with pytest.raises(botocore.exceptions.ClientError) as bad_window:
        dms.create_replication_instance(
            ReplicationInstanceIdentifier="late", ReplicationInstanceClass="dms.t3.micro",
            PreferredMaintenanceWindow="sunday 6am",
        )  # fmt: skip
    assert code_of(bad_window) == "InvalidParameterValueException"


def test_modify_defers_what_dms_defers_and_applies_it_immediately_when_asked(dms):
    arn = dms.create_replication_instance(
        ReplicationInstanceIdentifier="grow", ReplicationInstanceClass="dms.t3.micro",
        EngineVersion="3.4.7",
    )["ReplicationInstance"]["ReplicationInstanceArn"]  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as creating:
        dms.modify_replication_instance(ReplicationInstanceArn=arn, AllocatedStorage=100)
    assert code_of(creating) == "InvalidResourceStateFault"  # only an available one
    available = {"Filters": [{"Name": "replication-instance-arn", "Values": [arn]}],
                 "WaiterConfig": FAST_WAITER}  # fmt: skip
    dms.get_waiter("replication_instance_available").wait(**available)

    # Terraform's default (apply_immediately = false): the class waits for the window.
    later = dms.modify_replication_instance(
        ReplicationInstanceArn=arn, ReplicationInstanceClass="dms.c5.large",
        PreferredMaintenanceWindow="wed:01:00-wed:01:30",
    )["ReplicationInstance"]  # fmt: skip
    assert later["ReplicationInstanceStatus"] == "modifying"
    assert later["ReplicationInstanceClass"] == "dms.t3.micro"
    assert later["PendingModifiedValues"] == {"ReplicationInstanceClass": "dms.c5.large"}
    assert later["PreferredMaintenanceWindow"] == "wed:01:00-wed:01:30"  # at once
    dms.get_waiter("replication_instance_available").wait(**available)

    for request, code in (
        ({"EngineVersion": "3.4.6"}, "InvalidParameterValueException"),  # a downgrade
        ({"EngineVersion": "3.5.4"}, "InvalidParameterCombinationException"),  # a major one
    ):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            dms.modify_replication_instance(ReplicationInstanceArn=arn, **request)
        assert code_of(refused) == code

    now = dms.modify_replication_instance(
        ReplicationInstanceArn=arn, ApplyImmediately=True, AllocatedStorage=200,
        EngineVersion="3.5.4", AllowMajorVersionUpgrade=True, MultiAZ=True,
    )["ReplicationInstance"]  # fmt: skip
    assert now["PendingModifiedValues"] == {}
    assert (now["ReplicationInstanceClass"], now["AllocatedStorage"], now["EngineVersion"]) == (
        "dms.c5.large", 200, "3.5.4",
    )  # fmt: skip
    assert now["MultiAZ"] is True
    assert now["SecondaryAvailabilityZone"] != now["AvailabilityZone"]
    dms.get_waiter("replication_instance_available").wait(**available)
