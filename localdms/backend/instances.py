"""Replication instances: CreateReplicationInstance, DescribeReplicationInstances,
DeleteReplicationInstance. An instance is ``creating`` for ``transition_seconds``, then
``available``; nothing runs on it (task runs are threads of the server)."""

from __future__ import annotations

import re
import time
from typing import Any

from dms_spec.status import InstanceStatus
from localdms.backend.base import ignores
from localdms.backend.queries import filtered, page_body
from localdms.backend.resources import DEFAULT_ENGINE_VERSION, GONE, ReplicationInstance
from localdms.backend.shapes import Filter, Tag
from localdms.backend.subnet_groups import DEFAULT_GROUP, SubnetGroupBackend
from localdms.exceptions import (
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
)
from localdms.identifiers import validate_identifier


class InstanceBackend(SubnetGroupBackend):
    """The replication-instance operations."""

    def _instance_api(self, instance: ReplicationInstance) -> dict[str, Any]:
        return instance.to_api(self._subnet_group(instance.subnet_group).to_api())

    @ignores("KerberosAuthenticationSettings")
    def create_replication_instance(
        self,
        *,
        replication_instance_identifier: str,
        replication_instance_class: str,
        allocated_storage: int | None = None,
        vpc_security_group_ids: list[str] | None = None,
        availability_zone: str | None = None,
        replication_subnet_group_identifier: str | None = None,
        preferred_maintenance_window: str | None = None,
        multi_az: bool = False,
        engine_version: str | None = None,
        auto_minor_version_upgrade: bool = True,
        tags: list[Tag] | None = None,
        kms_key_id: str | None = None,
        publicly_accessible: bool = False,
        dns_name_servers: str | None = None,
        resource_identifier: str | None = None,
        network_type: str | None = None,
    ) -> dict[str, Any]:
        """CreateReplicationInstance.

        Every placement and security member is kept and returned as given (nothing runs on an
        instance here: runs are threads of the server); the subnet group must exist (``default``
        when none is named), and the Availability Zone defaults to its first subnet's. Ignores
        KerberosAuthenticationSettings (a source or target with Kerberos is not supported).
        """
        with self.lock:
            self._advance()
            identifier = validate_identifier(
                "ReplicationInstanceIdentifier", replication_instance_identifier, 63
            ).lower()
            if not replication_instance_class:
                raise InvalidParameterValueException("ReplicationInstanceClass is required.")
            self._claim_identifier(self.instances, identifier, "Replication instance")
            group = self._subnet_group(replication_subnet_group_identifier or DEFAULT_GROUP)
            zones = group.availability_zones()
            instance = ReplicationInstance(
                arn=self._arn("rep", resource_identifier),
                identifier=identifier,
                status=InstanceStatus.CREATING,
                created=time.time(),
                instance_class=replication_instance_class,
                allocated_storage=50 if allocated_storage is None else allocated_storage,
                engine_version=engine_version or DEFAULT_ENGINE_VERSION,
                publicly_accessible=publicly_accessible,
                multi_az=multi_az,
                subnet_group=group.identifier,
                availability_zone=availability_zone or zones[0],
                vpc_security_group_ids=list(vpc_security_group_ids or [DEFAULT_SECURITY_GROUP]),
                preferred_maintenance_window=_maintenance_window(
                    preferred_maintenance_window or "sun:06:00-sun:06:30"
                ),
                auto_minor_version_upgrade=auto_minor_version_upgrade,
                kms_key_id=kms_key_id or self._default_kms_key(),
                network_type=_network_type(network_type or "IPV4"),
                dns_name_servers=dns_name_servers,
            )
            instance.place_standby(zones)
            instance.schedule(
                InstanceStatus.CREATING, InstanceStatus.AVAILABLE, self.transition_seconds
            )
            self.instances[instance.arn] = instance
            self._set_tags(instance.arn, tags)
            self._save()
            return {"ReplicationInstance": self._instance_api(instance)}

    @ignores("KerberosAuthenticationSettings")
    def modify_replication_instance(
        self,
        *,
        replication_instance_arn: str,
        allocated_storage: int | None = None,
        apply_immediately: bool = False,
        replication_instance_class: str | None = None,
        vpc_security_group_ids: list[str] | None = None,
        preferred_maintenance_window: str | None = None,
        multi_az: bool | None = None,
        engine_version: str | None = None,
        allow_major_version_upgrade: bool = False,
        auto_minor_version_upgrade: bool | None = None,
        replication_instance_identifier: str | None = None,
        network_type: str | None = None,
    ) -> dict[str, Any]:
        """ModifyReplicationInstance.

        Only an ``available`` instance can be modified. The class, storage, Multi-AZ, engine
        version and network type change at once with ApplyImmediately, else they wait in
        PendingModifiedValues (localdms has no maintenance window: the next modify with
        ApplyImmediately applies them); the rest changes at once. An engine version of another
        major version (3.4 → 3.5) needs AllowMajorVersionUpgrade, and none may go back. Ignores
        KerberosAuthenticationSettings, as CreateReplicationInstance does.
        """
        with self.lock:
            self._advance()
            instance = self._instance(replication_instance_arn)
            if instance.status != InstanceStatus.AVAILABLE:
                raise InvalidResourceStateFault(
                    f"Replication instance {instance.arn} is {instance.status}; it can be "
                    "modified only when available."
                )
            changes: dict[str, Any] = {}
            if replication_instance_identifier is not None:
                identifier = validate_identifier(
                    "ReplicationInstanceIdentifier", replication_instance_identifier, 63
                ).lower()
                changes["ReplicationInstanceIdentifier"] = self._claim_identifier(
                    self.instances, identifier, "Replication instance", current=instance
                )
            if engine_version is not None:
                _check_engine_change(instance.engine_version, engine_version,
                                     allow_major_version_upgrade)  # fmt: skip
            given = {
                "AllocatedStorage": allocated_storage,
                "ReplicationInstanceClass": replication_instance_class,
                "VpcSecurityGroupIds": vpc_security_group_ids,
                "PreferredMaintenanceWindow": preferred_maintenance_window
                and _maintenance_window(preferred_maintenance_window),
                "MultiAZ": multi_az,
                "EngineVersion": engine_version,
                "AutoMinorVersionUpgrade": auto_minor_version_upgrade,
                "NetworkType": network_type and _network_type(network_type),
            }
            changes.update({k: v for k, v in given.items() if v is not None})
            zones = self._subnet_group(instance.subnet_group).availability_zones()
            instance.modify(changes, apply_immediately, zones, self.transition_seconds)
            self._save()
            return {"ReplicationInstance": self._instance_api(instance)}

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
            return page_body("ReplicationInstances", items, self._instance_api, max_records, marker)

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
            return {"ReplicationInstance": self._instance_api(instance)}


DEFAULT_SECURITY_GROUP = "sg-localdmsdefault"
"""The VPC's default security group, which DMS uses when no VpcSecurityGroupIds are given."""
_WINDOW = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun):\d{2}:\d{2}-(mon|tue|wed|thu|fri|sat|sun):\d{2}:\d{2}$"
)


def _maintenance_window(value: str) -> str:
    window = value.lower()
    if not _WINDOW.match(window):
        raise InvalidParameterValueException(
            f"PreferredMaintenanceWindow {value!r} is not valid: use ddd:hh24:mi-ddd:hh24:mi, "
            "e.g. sun:06:00-sun:06:30."
        )
    return window


def _network_type(value: str) -> str:
    if value not in ("IPV4", "DUAL"):
        raise InvalidParameterValueException(
            f"NetworkType {value!r} is not valid; use IPV4 or DUAL."
        )
    return value


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError as exc:
        raise InvalidParameterValueException(
            f"EngineVersion {text!r} is not valid: use a version such as 3.5.4."
        ) from exc


def _check_engine_change(current: str, wanted: str, allow_major: bool) -> None:
    """DMS's rules for an engine version change (its major version is the first two numbers)."""
    old, new = _version(current), _version(wanted)
    if new < old:
        raise InvalidParameterValueException(
            f"Cannot downgrade the replication instance engine from {current} to {wanted}."
        )
    if new[:2] != old[:2] and not allow_major:
        raise InvalidParameterCombinationException(
            f"Upgrading the engine from {current} to {wanted} is a major version upgrade: set "
            "AllowMajorVersionUpgrade to true."
        )
