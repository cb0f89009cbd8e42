"""Replication subnet groups: CreateReplicationSubnetGroup, DescribeReplicationSubnetGroups,
ModifyReplicationSubnetGroup, DeleteReplicationSubnetGroup, and the ``default`` group an instance
gets when it names none (AWS DMS User Guide: CHAP_ReplicationInstance.VPC, "Creating a replication
subnet group").

DMS's rules: an identifier of letters, digits, periods, spaces, underscores and hyphens, stored in
lowercase, and never ``default``; at least two subnets, in at least two Availability Zones; a
group that an instance uses cannot be deleted. localdms has no EC2, so a subnet is any
``subnet-`` id, and its Availability Zone is the region and a letter by its place in the group.
"""

from __future__ import annotations

import re
import time
from typing import Any

from localdms.backend.base import BackendBase
from localdms.backend.queries import filtered, page_body
from localdms.backend.resources import GONE, ReplicationSubnetGroup
from localdms.backend.shapes import Filter, Tag
from localdms.exceptions import (
    InvalidParameterValueException,
    InvalidResourceStateFault,
    InvalidSubnet,
    ReplicationSubnetGroupDoesNotCoverEnoughAZs,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
)
from localdms.identifiers import make_arn

DEFAULT_GROUP = "default"
_GROUP_IDENTIFIER = re.compile(r"^[A-Za-z0-9._ -]{1,255}$")
_SUBNET = re.compile(r"^subnet-[A-Za-z0-9]+$")


class SubnetGroupBackend(BackendBase):
    """The replication subnet group operations."""

    def create_replication_subnet_group(
        self,
        *,
        replication_subnet_group_identifier: str,
        replication_subnet_group_description: str,
        subnet_ids: list[str],
        tags: list[Tag] | None = None,
    ) -> dict[str, Any]:
        """CreateReplicationSubnetGroup (every request member is acted on)."""
        with self.lock:
            self._advance()
            identifier = _group_identifier(replication_subnet_group_identifier)
            if identifier == DEFAULT_GROUP:
                raise InvalidParameterValueException(
                    "The replication subnet group name 'default' is reserved: choose another."
                )
            if self._group_arn(identifier) in self.subnet_groups:
                raise ResourceAlreadyExistsFault(
                    f"Replication subnet group {identifier} already exists."
                )
            group = ReplicationSubnetGroup(
                arn=self._group_arn(identifier),
                identifier=identifier,
                status="Complete",
                created=time.time(),
                description=replication_subnet_group_description,
                subnets=self._placed(subnet_ids),
            )
            self.subnet_groups[group.arn] = group
            self._set_tags(group.arn, tags)
            self._save()
            return {"ReplicationSubnetGroup": group.to_api()}

    def describe_replication_subnet_groups(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationSubnetGroups (every request member is acted on)."""
        with self.lock:
            self._advance()
            items = filtered(
                sorted(self.subnet_groups.values(), key=lambda g: g.identifier),
                filters,
                {
                    "replication-subnet-group-id": lambda g: [g.identifier],
                    "vpc-id": lambda g: [g.vpc_id],
                    "subnet-group-status": lambda g: [g.status],
                },
                what="replication subnet groups",
            )
            return page_body(
                "ReplicationSubnetGroups", items, ReplicationSubnetGroup.to_api, max_records, marker
            )

    def modify_replication_subnet_group(
        self,
        *,
        replication_subnet_group_identifier: str,
        subnet_ids: list[str],
        replication_subnet_group_description: str | None = None,
    ) -> dict[str, Any]:
        """ModifyReplicationSubnetGroup (every request member is acted on)."""
        with self.lock:
            self._advance()
            group = self._subnet_group(replication_subnet_group_identifier)
            group.subnets = self._placed(subnet_ids)
            if replication_subnet_group_description is not None:
                group.description = replication_subnet_group_description
            self._save()
            return {"ReplicationSubnetGroup": group.to_api()}

    def delete_replication_subnet_group(
        self, *, replication_subnet_group_identifier: str
    ) -> dict[str, Any]:
        """DeleteReplicationSubnetGroup (every request member is acted on)."""
        with self.lock:
            self._advance()
            group = self._subnet_group(replication_subnet_group_identifier)
            users = [
                i.identifier for i in self.instances.values() if i.subnet_group == group.identifier
            ]
            if users:
                raise InvalidResourceStateFault(
                    f"Replication subnet group {group.identifier} is in use by replication "
                    f"instance(s) {', '.join(users)}; delete or move them first."
                )
            group.schedule("deleting", GONE, 0)
            self._save()
            return {}

    def _group_arn(self, identifier: str) -> str:
        return make_arn(self.region, self.account_id, "subgrp", identifier)

    def _subnet_group(self, identifier: str) -> ReplicationSubnetGroup:
        """The group named ``identifier`` (any case); the ``default`` one is made on first use."""
        name = identifier.lower()
        arn = self._group_arn(name)
        if arn not in self.subnet_groups and name == DEFAULT_GROUP:
            self.subnet_groups[arn] = ReplicationSubnetGroup(
                arn=arn,
                identifier=DEFAULT_GROUP,
                status="Complete",
                created=time.time(),
                description="default",
                subnets=self._placed(["subnet-localdmsa", "subnet-localdmsb"]),
            )
        if arn not in self.subnet_groups:
            raise ResourceNotFoundFault(f"Replication subnet group {identifier} not found.")
        return self.subnet_groups[arn]

    def _placed(self, subnet_ids: list[str]) -> list[list[str]]:
        """The subnets with their Availability Zones; DMS's refusals of a bad list."""
        bad = [subnet for subnet in subnet_ids if not _SUBNET.match(subnet)]
        if bad:
            raise InvalidSubnet(f"The subnet(s) {', '.join(bad)} are not valid subnet ids.")
        unique = list(dict.fromkeys(subnet_ids))
        if len(unique) < 2:
            raise ReplicationSubnetGroupDoesNotCoverEnoughAZs(
                "The DB subnet group doesn't meet Availability Zone (AZ) coverage requirement. "
                "Current AZ coverage: 1. Add subnets to cover at least 2 AZs."
            )
        return [
            [subnet, f"{self.region}{chr(ord('a') + n % 26)}"] for n, subnet in enumerate(unique)
        ]


def _group_identifier(value: str) -> str:
    if not _GROUP_IDENTIFIER.match(value):
        raise InvalidParameterValueException(
            f"The replication subnet group identifier {value!r} is not valid: use up to 255 "
            "letters, digits, periods, spaces, underscores and hyphens."
        )
    return value.lower()
