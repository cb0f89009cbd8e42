"""Replication instances: CreateReplicationInstance, DescribeReplicationInstances,
DeleteReplicationInstance. An instance is ``creating`` for ``transition_seconds``, then
``available``; nothing runs on it (task runs are threads of the server)."""

from __future__ import annotations

import time
from typing import Any

from dms_spec.status import InstanceStatus
from localdms.backend.base import BackendBase
from localdms.backend.queries import filtered, paginate, with_marker
from localdms.backend.resources import GONE, ReplicationInstance
from localdms.exceptions import (
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
)
from localdms.identifiers import validate_identifier


class InstanceBackend(BackendBase):
    """The replication-instance operations."""

    def create_replication_instance(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateReplicationInstance.

        Request members accepted and not acted on: VpcSecurityGroupIds, AvailabilityZone,
        ReplicationSubnetGroupIdentifier, PreferredMaintenanceWindow,
        AutoMinorVersionUpgrade, KmsKeyId, DnsNameServers, NetworkType,
        KerberosAuthenticationSettings.
        """
        with self.lock:
            self._advance()
            identifier = validate_identifier(
                "ReplicationInstanceIdentifier", params.get("ReplicationInstanceIdentifier"), 63
            ).lower()
            instance_class = params.get("ReplicationInstanceClass")
            if not isinstance(instance_class, str) or not instance_class:
                raise InvalidParameterValueException("ReplicationInstanceClass is required.")
            if self._identifier_taken(self.instances, identifier):
                raise ResourceAlreadyExistsFault(
                    f"Replication instance {identifier} already exists."
                )
            instance = ReplicationInstance(
                arn=self._arn("rep", params.get("ResourceIdentifier")),
                identifier=identifier,
                status=InstanceStatus.CREATING,
                created=time.time(),
                instance_class=instance_class,
                allocated_storage=int(params.get("AllocatedStorage", 50)),
                engine_version=str(params.get("EngineVersion", "3.5.3")),
                publicly_accessible=bool(params.get("PubliclyAccessible", False)),
                multi_az=bool(params.get("MultiAZ", False)),
            )
            instance.schedule(
                InstanceStatus.CREATING, InstanceStatus.AVAILABLE, self.transition_seconds
            )
            self.instances[instance.arn] = instance
            self._set_tags(instance.arn, params.get("Tags") or [])
            self._save()
            return {"ReplicationInstance": instance.to_api()}

    def describe_replication_instances(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeReplicationInstances.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            items = filtered(
                list(self.instances.values()),
                params.get("Filters"),
                {
                    "replication-instance-arn": lambda i: [i.arn],
                    "replication-instance-id": lambda i: [i.identifier],
                    "replication-instance-class": lambda i: [i.instance_class],
                    "engine-version": lambda i: [i.engine_version],
                },
                id_filters=("replication-instance-id",),
                what="replication instances",
            )
            page, marker = paginate(items, params)
            return with_marker({"ReplicationInstances": [i.to_api() for i in page]}, marker)

    def delete_replication_instance(self, params: dict[str, Any]) -> dict[str, Any]:
        """DeleteReplicationInstance.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            instance = self._instance(params.get("ReplicationInstanceArn"))
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
