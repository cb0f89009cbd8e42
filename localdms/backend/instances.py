"""Replication instances: CreateReplicationInstance, DescribeReplicationInstances,
DeleteReplicationInstance. An instance is ``creating`` for ``transition_seconds``, then
``available``; nothing runs on it (task runs are threads of the server)."""

from __future__ import annotations

import time
from typing import Any

from dms_spec.status import InstanceStatus
from localdms.backend.base import BackendBase, ignores
from localdms.backend.queries import filtered, paginate, with_marker
from localdms.backend.resources import GONE, ReplicationInstance
from localdms.backend.shapes import Filter, Tag
from localdms.exceptions import (
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
)
from localdms.identifiers import validate_identifier


class InstanceBackend(BackendBase):
    """The replication-instance operations."""

    @ignores(
        "VpcSecurityGroupIds", "AvailabilityZone", "ReplicationSubnetGroupIdentifier",
        "PreferredMaintenanceWindow", "AutoMinorVersionUpgrade", "KmsKeyId", "DnsNameServers",
        "NetworkType", "KerberosAuthenticationSettings",
    )  # fmt: skip
    def create_replication_instance(
        self,
        *,
        replication_instance_identifier: str,
        replication_instance_class: str,
        allocated_storage: int | None = None,
        multi_az: bool = False,
        engine_version: str | None = None,
        tags: list[Tag] | None = None,
        publicly_accessible: bool = False,
        resource_identifier: str | None = None,
    ) -> dict[str, Any]:
        """CreateReplicationInstance.

        Ignores what places and secures an instance on AWS (nothing runs on it here):
        VpcSecurityGroupIds, AvailabilityZone, ReplicationSubnetGroupIdentifier,
        PreferredMaintenanceWindow, AutoMinorVersionUpgrade, KmsKeyId, DnsNameServers,
        NetworkType, KerberosAuthenticationSettings.
        """
        with self.lock:
            self._advance()
            identifier = validate_identifier(
                "ReplicationInstanceIdentifier", replication_instance_identifier, 63
            ).lower()
            if not replication_instance_class:
                raise InvalidParameterValueException("ReplicationInstanceClass is required.")
            if self._identifier_taken(self.instances, identifier):
                raise ResourceAlreadyExistsFault(
                    f"Replication instance {identifier} already exists."
                )
            instance = ReplicationInstance(
                arn=self._arn("rep", resource_identifier),
                identifier=identifier,
                status=InstanceStatus.CREATING,
                created=time.time(),
                instance_class=replication_instance_class,
                allocated_storage=50 if allocated_storage is None else allocated_storage,
                engine_version=engine_version or "3.5.3",
                publicly_accessible=publicly_accessible,
                multi_az=multi_az,
            )
            instance.schedule(
                InstanceStatus.CREATING, InstanceStatus.AVAILABLE, self.transition_seconds
            )
            self.instances[instance.arn] = instance
            self._set_tags(instance.arn, tags)
            self._save()
            return {"ReplicationInstance": instance.to_api()}

    def describe_replication_instances(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationInstances (every request member is acted on)."""
        with self.lock:
            self._advance()
            items = filtered(
                list(self.instances.values()),
                filters,
                {
                    "replication-instance-arn": lambda i: [i.arn],
                    "replication-instance-id": lambda i: [i.identifier],
                    "replication-instance-class": lambda i: [i.instance_class],
                    "engine-version": lambda i: [i.engine_version],
                },
                id_filters=("replication-instance-id",),
                what="replication instances",
            )
            page, next_marker = paginate(items, max_records, marker)
            return with_marker({"ReplicationInstances": [i.to_api() for i in page]}, next_marker)

    def delete_replication_instance(self, *, replication_instance_arn: str) -> dict[str, Any]:
        """DeleteReplicationInstance (every request member is acted on)."""
        with self.lock:
            self._advance()
            instance = self._instance(replication_instance_arn)
            users = [t.identifier for t in self.tasks.values() if t.instance_arn == instance.arn]
            if users:
                raise InvalidResourceStateFault(
                    f"Replication instance {instance.arn} is used by replication task(s) "
                    f"{', '.join(users)}; delete the tasks first."
                )
            instance.schedule(InstanceStatus.DELETING, GONE, self.transition_seconds)
            for key in [k for k in self.connections if k[1] == instance.arn]:
                del self.connections[key]
            self._save()
            return {"ReplicationInstance": instance.to_api()}
