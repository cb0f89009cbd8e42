"""The resources localdms keeps, each the only writer of its own status fields.

A resource's transitions are its methods (``schedule``/``advance`` for the short-lived statuses
DMS shows while it works; a task's ``begin``, ``request_stop``, ``mark_running``,
``start_capture``, ``capture_created``, ``checkpoint``, ``finish_load``, ``stop``, ``fail``,
``interrupt``, ``begin_testing`` and ``end_testing``; a connection's ``tested``), so a task's
``Status``, ``StopReason``, ``LastFailureMessage`` and ``RecoveryCheckpoint`` change in this file
only, with the statuses each operation needs taken from ``dms_spec.lifecycle``
(``tests/unit/test_transitions.py`` fails on a write anywhere else). ``to_api`` renders a resource
as DescribeX returns it.

A little over 400 lines, on purpose: every resource and every transition in one file is what
lets a reader check that nothing else writes a status (a task's tables are in
``table_statistics.py``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dms_spec.lifecycle import RUNNING_STATES, last_error
from dms_spec.status import (
    ConnectionStatus,
    InstanceStatus,
    MigrationType,
    StopReason,
    TableState,
    TaskStatus,
)
from localdms import endpoint_description as described
from localdms.backend.table_statistics import TableStatistics
from localdms.endpoint_settings import PostgresSource, S3Target, s3_target

DEFAULT_ENGINE_VERSION = "3.5.3"
"""The replication engine version of an instance created without one."""
GONE = "__gone__"
"""The status a deletion ends in: the resource is then dropped."""
RESTART_TEXT = (
    "localdms stopped while the task was {status}: the server process ended before the task "
    "finished. Start it again with reload-target (or resume-processing to load only the tables "
    "not yet completed)."
)


@dataclass
class Resource:
    """Common lifecycle: a status that may be due to change at ``pending_at``."""

    arn: str
    identifier: str
    status: str
    created: float
    pending_status: str | None = None
    pending_at: float = 0.0

    def schedule(self, status: str, next_status: str, delay: float) -> None:
        self.status = status
        self.pending_status = next_status
        self.pending_at = time.time() + delay

    def advance(self, now: float) -> bool:
        """Apply a due transition; True if one happened."""
        if self.pending_status is not None and now >= self.pending_at:
            self.status, self.pending_status = self.pending_status, None
            return True
        return False


@dataclass
class Endpoint(Resource):
    endpoint_type: str = "SOURCE"
    engine_name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    password: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "EndpointIdentifier": self.identifier,
            "EndpointType": self.endpoint_type,
            "EngineName": self.engine_name,
            "EngineDisplayName": "PostgreSQL" if self.engine_name != "s3" else "Amazon S3",
            "Status": self.status,
            "EndpointArn": self.arn,
            "SslMode": self.fields.get("SslMode", "none"),
            "ExternalId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.arn)),
            "IsReadOnly": False,
            **{k: v for k, v in self.fields.items() if k != "SslMode"},
        }
        # How settings read back: localdms/endpoint_description.py
        if self.engine_name == "s3":
            settings = described.s3_settings(self.fields, self.settings)
            body["S3Settings"] = settings
            body["ExtraConnectionAttributes"] = described.s3_extra_connection_attributes(settings)
            if "ServiceAccessRoleArn" in settings:
                body["ServiceAccessRoleArn"] = settings["ServiceAccessRoleArn"]
        else:
            body.update(described.top_level_connection(self.fields, self.settings))
            body["PostgreSQLSettings"] = described.postgres_settings(self.fields, self.settings)
        return body

    def postgres_source(self, secret: dict[str, Any] | None, ca_pem: str | None) -> PostgresSource:
        """The source as this endpoint's settings, its Secrets Manager secret (when it names one)
        and its CertificateArn's PEM make it. Only ``BackendBase._source`` calls it for a
        connection, having read the secret and the certificate: a source built without them
        has no host (a secret's endpoint) or no CA (``verify-ca``/``verify-full``).
        """
        password = {"Password": self.password} if self.password else {}
        return PostgresSource.from_endpoint(
            {**self.fields, **password}, self.settings, secret, ca_pem
        )

    @property
    def slot_name(self) -> str:
        """``PostgreSQLSettings.SlotName``: a slot the user made, which tasks read and never
        drop ("" when localdms makes its own)."""
        return str(self.settings.get("SlotName") or "")

    def target(self) -> S3Target:
        return s3_target(self.settings)

    def check(self) -> None:
        """Refuse settings localdms cannot act on, as CreateEndpoint and ModifyEndpoint do."""
        if self.engine_name == "s3":
            self.target()
        else:
            self.postgres_source(None, None)


@dataclass
class ReplicationSubnetGroup(Resource):
    """Subnets of one VPC in two or more Availability Zones, where instances are placed.

    localdms has no EC2: a subnet's Availability Zone is the region and a letter by its place in
    the group (``a``, ``b``, ...), and the VPC is ``vpc-localdms``.
    """

    description: str = ""
    vpc_id: str = "vpc-localdms"
    subnets: list[list[str]] = field(default_factory=list)
    """[subnet id, Availability Zone] pairs, in the order given."""

    def availability_zones(self) -> list[str]:
        return [zone for _, zone in self.subnets]

    def to_api(self) -> dict[str, Any]:
        return {
            "ReplicationSubnetGroupIdentifier": self.identifier,
            "ReplicationSubnetGroupDescription": self.description,
            "VpcId": self.vpc_id,
            "SubnetGroupStatus": self.status,
            "Subnets": [
                {
                    "SubnetIdentifier": subnet,
                    "SubnetAvailabilityZone": {"Name": zone},
                    "SubnetStatus": "Active",
                }
                for subnet, zone in self.subnets
            ],
            "SupportedNetworkTypes": ["IPV4", "DUAL"],
            "IsReadOnly": False,
        }


@dataclass
class ReplicationInstance(Resource):
    """A replication instance, echoing every placement and security setting it was given."""

    instance_class: str = ""
    allocated_storage: int = 50
    engine_version: str = DEFAULT_ENGINE_VERSION
    publicly_accessible: bool = False
    multi_az: bool = False
    subnet_group: str = "default"
    availability_zone: str = ""
    secondary_availability_zone: str | None = None
    vpc_security_group_ids: list[str] = field(default_factory=list)
    preferred_maintenance_window: str = "sun:06:00-sun:06:30"
    auto_minor_version_upgrade: bool = True
    kms_key_id: str = ""
    network_type: str = "IPV4"
    dns_name_servers: str | None = None
    pending_modified: dict[str, Any] = field(default_factory=dict)
    """PendingModifiedValues: changes kept for the maintenance window (ApplyImmediately false)."""

    DEFERRABLE: ClassVar[dict[str, str]] = {
        "ReplicationInstanceClass": "instance_class",
        "AllocatedStorage": "allocated_storage",
        "MultiAZ": "multi_az",
        "EngineVersion": "engine_version",
        "NetworkType": "network_type",
    }
    """The changes DMS applies in the maintenance window unless told ApplyImmediately."""
    IMMEDIATE: ClassVar[dict[str, str]] = {
        "ReplicationInstanceIdentifier": "identifier",
        "VpcSecurityGroupIds": "vpc_security_group_ids",
        "PreferredMaintenanceWindow": "preferred_maintenance_window",
        "AutoMinorVersionUpgrade": "auto_minor_version_upgrade",
    }
    """The changes that take effect at once."""

    def modify(
        self, changes: Mapping[str, Any], apply_now: bool, zones: list[str], delay: float
    ) -> None:
        """ModifyReplicationInstance's transition: ``modifying``, then ``available``.

        Args:
            changes: API member → new value (only the members given).
            apply_now: ApplyImmediately; otherwise DEFERRABLE changes wait in
                PendingModifiedValues (localdms has no maintenance window: a later modify with
                ApplyImmediately applies them).
            zones: the subnet group's Availability Zones (for a Multi-AZ standby).
            delay: how long ``modifying`` shows.
        """
        deferred = {k: v for k, v in changes.items() if k in self.DEFERRABLE}
        if apply_now:
            for member, value in {**self.pending_modified, **deferred}.items():
                setattr(self, self.DEFERRABLE[member], value)
            self.pending_modified = {}
        else:
            self.pending_modified.update(deferred)
        for member, attribute in self.IMMEDIATE.items():
            if member in changes:
                setattr(self, attribute, changes[member])
        self.place_standby(zones)
        self.schedule(InstanceStatus.MODIFYING, InstanceStatus.AVAILABLE, delay)

    def place_standby(self, zones: list[str]) -> None:
        """A Multi-AZ instance's standby: the first of its subnet group's other zones."""
        standby = [zone for zone in zones if zone != self.availability_zone]
        self.secondary_availability_zone = standby[0] if self.multi_az and standby else None

    def to_api(self, subnet_group: Mapping[str, Any]) -> dict[str, Any]:
        """The instance as DescribeReplicationInstances returns it, with its subnet group's shape."""
        body: dict[str, Any] = {
            "ReplicationInstanceIdentifier": self.identifier,
            "ReplicationInstanceClass": self.instance_class,
            "ReplicationInstanceStatus": self.status,
            "AllocatedStorage": self.allocated_storage,
            "InstanceCreateTime": self.created,
            "VpcSecurityGroups": [
                {"VpcSecurityGroupId": group, "Status": "active"}
                for group in self.vpc_security_group_ids
            ],
            "AvailabilityZone": self.availability_zone,
            "ReplicationSubnetGroup": dict(subnet_group),
            "PreferredMaintenanceWindow": self.preferred_maintenance_window,
            "PendingModifiedValues": dict(self.pending_modified),
            "MultiAZ": self.multi_az,
            "EngineVersion": self.engine_version,
            "AutoMinorVersionUpgrade": self.auto_minor_version_upgrade,
            "KmsKeyId": self.kms_key_id,
            "ReplicationInstanceArn": self.arn,
            "ReplicationInstancePrivateIpAddress": "127.0.0.1",
            "ReplicationInstancePrivateIpAddresses": ["127.0.0.1"],
            # localdms listens on loopback only: a public instance has no other address either
            "ReplicationInstancePublicIpAddresses": ["127.0.0.1"]
            if self.publicly_accessible
            else [],
            "PubliclyAccessible": self.publicly_accessible,
            "NetworkType": self.network_type,
        }
        if self.secondary_availability_zone:
            body["SecondaryAvailabilityZone"] = self.secondary_availability_zone
        if self.dns_name_servers:
            body["DnsNameServers"] = self.dns_name_servers
        return body


@dataclass
class Connection(Resource):
    endpoint_arn: str = ""
    instance_arn: str = ""
    endpoint_identifier: str = ""
    instance_identifier: str = ""
    last_failure_message: str = ""
    result: str = ConnectionStatus.SUCCESSFUL

    def to_api(self) -> dict[str, Any]:
        body = {
            "ReplicationInstanceArn": self.instance_arn,
            "EndpointArn": self.endpoint_arn,
            "Status": self.status,
            "EndpointIdentifier": self.endpoint_identifier,
            "ReplicationInstanceIdentifier": self.instance_identifier,
        }
        if self.status == ConnectionStatus.FAILED:
            body["LastFailureMessage"] = self.last_failure_message
        return body

    def tested(self, problem: str | None, shown_for: float) -> None:
        """The test ended (``problem`` says why it failed): ``testing`` for ``shown_for`` more
        seconds, then ``successful`` or ``failed``."""
        self.last_failure_message = problem or ""
        result = ConnectionStatus.FAILED if problem else ConnectionStatus.SUCCESSFUL
        self.schedule(ConnectionStatus.TESTING, result, shown_for)


@dataclass
class EventSubscription(Resource):
    """An event notification subscription: which events go to which SNS topic. Its identifier
    is the SubscriptionName; its ARN ends ``es:<name>``, as the Terraform provider builds it."""

    sns_topic_arn: str = ""
    source_type: str | None = None
    """``replication-instance``, ``replication-task``, or None: every source."""
    source_ids: list[str] = field(default_factory=list)
    """Identifiers of the sources (none: every source of the type)."""
    categories: list[str] = field(default_factory=list)
    """As given (none: every category); matched without regard to case."""
    enabled: bool = True
    customer_id: str = ""

    def to_api(self) -> dict[str, Any]:
        created = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime(self.created))
        return {
            "CustomerAwsId": self.customer_id,
            "CustSubscriptionId": self.identifier,
            "SnsTopicArn": self.sns_topic_arn,
            "Status": self.status,
            "SubscriptionCreationTime": created,
            **({"SourceType": self.source_type} if self.source_type else {}),
            "SourceIdsList": list(self.source_ids),
            "EventCategoriesList": list(self.categories),
            "Enabled": self.enabled,
        }

    def wants(self, source_type: str, identifier: str, category: str) -> bool:
        """Whether an event of this source and category is notified to the topic."""
        return (
            self.enabled
            and self.status in ("active", "modifying")
            and self.source_type in (None, source_type)
            and (not self.source_ids or identifier in self.source_ids)
            and (not self.categories or category in {c.lower() for c in self.categories})
        )

    def modify(self, changes: Mapping[str, Any], shown_for: float) -> None:
        """ModifyEventSubscription: ``modifying`` for ``shown_for`` seconds, then ``active``."""
        for name, value in changes.items():
            setattr(self, name, value)
        self.schedule("modifying", "active", shown_for)

    def delete(self, shown_for: float) -> None:
        """DeleteEventSubscription: ``deleting`` for ``shown_for`` seconds, then gone."""
        self.schedule("deleting", GONE, shown_for)


@dataclass
class ReplicationTask(Resource):
    source_arn: str = ""
    target_arn: str = ""
    instance_arn: str = ""
    migration_type: str = MigrationType.FULL_LOAD
    table_mappings: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    last_failure_message: str | None = None
    stop_reason: str | None = None
    has_run: bool = False
    start_date: float | None = None
    fresh_start_date: float | None = None
    stop_date: float | None = None
    full_load_start: float | None = None
    full_load_finish: float | None = None
    cdc_start_position: str | None = None
    cdc_stop_position: str | None = None
    task_data: str | None = None
    slot_name: str | None = None
    """The CDC replication slot localdms created on the source for this task."""
    recovery_checkpoint: str | None = None
    capturing: bool = False
    """The full load is over (or there is none) and the task captures changes."""
    tables: dict[str, TableStatistics] = field(default_factory=dict)

    # ------------------------------------------------------------- transitions of a run
    def begin(self, fresh: bool, fresh_capture: bool, now: float) -> None:
        """StartReplicationTask accepted: ``starting``. ``fresh`` forgets the tables' statistics
        (all but resume-processing); ``fresh_capture`` forgets where capture was."""
        if fresh:
            self.tables = {}
            self.fresh_start_date = now
        self.status, self.pending_status = TaskStatus.STARTING, None
        self.has_run = True
        self.start_date = now
        self.stop_reason = self.last_failure_message = None
        self.stop_date = None
        if fresh_capture:
            self.full_load_start = self.full_load_finish = None
            self.capturing = False
            self.recovery_checkpoint = None

    def move_to(self, instance_arn: str, delay: float) -> None:
        """MoveReplicationTask: ``moving`` for ``delay``, then back to its status, elsewhere."""
        self.instance_arn = instance_arn
        self.schedule(TaskStatus.MOVING, self.status, delay)

    def request_stop(self) -> None:
        """StopReplicationTask accepted: ``stopping`` until the run has stopped."""
        self.status = TaskStatus.STOPPING

    def begin_testing(self) -> str:
        """An assessment of the task started: ``testing`` until it ends. Returns the status to
        go back to (``end_testing``)."""
        previous, self.status = self.status, TaskStatus.TESTING
        return previous

    def end_testing(self, status: str) -> None:
        """The assessment ended: back to ``status`` (unless something else changed it)."""
        if self.status == TaskStatus.TESTING:
            self.status = status

    def capture_created(self, slot: str) -> None:
        """The run made (or took) its replication slot: capture starts there, from no checkpoint."""
        self.slot_name = slot
        self.recovery_checkpoint = None

    def checkpoint(self, position: str) -> None:
        """Changes up to ``position`` are in S3 (the RecoveryCheckpoint a resume goes on from)."""
        self.recovery_checkpoint = position

    def mark_running(self, now: float) -> None:
        """The run has its tables and loads them."""
        if self.status == TaskStatus.STARTING:
            self.status = TaskStatus.RUNNING
        self.full_load_start = now

    def start_capture(self, now: float) -> None:
        """The full load is over (or there is none): the task captures changes."""
        if self.migration_type == MigrationType.FULL_LOAD_AND_CDC and not self.capturing:
            self.full_load_finish = now
        self.capturing = True
        for table in self.tables.values():
            table.capture_started(now)

    def finish_load(self, now: float) -> None:
        """A full-load task loaded every table (tables in error say why in LastFailureMessage)."""
        self.status = TaskStatus.STOPPED
        self.stop_reason = StopReason.FULL_LOAD_ONLY_FINISHED
        self.stop_date = self.full_load_finish = now
        errors = [t.error for t in self.tables.values() if t.state == TableState.ERROR]
        if errors:
            self.last_failure_message = "Last Error  " + "; ".join(errors)

    def stop(self, reason: StopReason, now: float) -> None:
        """The run stopped (asked to, or at a stop point): tables half loaded are queued again."""
        self.status = TaskStatus.STOPPED
        self.stop_reason = reason
        self.stop_date = now
        for table in self.tables.values():
            table.interrupt("")

    def fail(self, message: str, now: float) -> None:
        """The run failed; ``message`` is in DMS's form (``dms_spec.lifecycle.last_error``)."""
        self.status = TaskStatus.FAILED
        self.last_failure_message = self.stop_reason = message
        self.stop_date = now

    def interrupt(self, now: float) -> None:
        """localdms died while the task ran its load: ``failed``, ready to be started again."""
        message = last_error(RESTART_TEXT.format(status=self.status), StopReason.RECOVERABLE_ERROR)
        self.status, self.pending_status = TaskStatus.FAILED, None
        self.last_failure_message = message
        self.stop_reason = StopReason.RECOVERABLE_ERROR
        self.stop_date = now
        for table in self.tables.values():
            table.interrupt("The load was interrupted when localdms stopped.")

    def stats(self, now: float) -> dict[str, Any]:
        """ReplicationTaskStats, derived from the tables."""
        states = [t.state for t in self.tables.values()]
        done = sum(s in (TableState.COMPLETED, TableState.ERROR) for s in states)
        if self.capturing or (
            self.status == TaskStatus.STOPPED
            and self.stop_reason == StopReason.FULL_LOAD_ONLY_FINISHED
        ):
            percent = 100
        elif not self.tables:
            percent = 100 if self.status == TaskStatus.FAILED else 0
        else:
            weights = [max(t.estimated_rows, 1) for t in self.tables.values()]
            loaded = [
                w
                if t.state in (TableState.COMPLETED, TableState.ERROR)
                else min(t.full_load_rows, int(w * 0.99))
                for t, w in zip(self.tables.values(), weights, strict=True)
            ]
            percent = min(100, int(100 * sum(loaded) / sum(weights))) if done < len(states) else 100
        end = self.stop_date if self.status not in RUNNING_STATES and self.stop_date else now
        stats: dict[str, Any] = {
            "FullLoadProgressPercent": percent,
            "ElapsedTimeMillis": int(1000 * (end - (self.start_date or end))),
            "TablesLoaded": states.count(TableState.COMPLETED),
            "TablesLoading": states.count(TableState.FULL_LOAD),
            "TablesQueued": states.count(TableState.BEFORE_LOAD),
            "TablesErrored": states.count(TableState.ERROR),
        }
        for key, value in (
            ("FreshStartDate", self.fresh_start_date),
            ("StartDate", self.start_date),
            ("StopDate", self.stop_date if self.status not in RUNNING_STATES else None),
            ("FullLoadStartDate", self.full_load_start),
            ("FullLoadFinishDate", self.full_load_finish),
        ):
            if value is not None:
                stats[key] = value
        return stats

    def to_api(self, now: float, with_settings: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ReplicationTaskIdentifier": self.identifier,
            "SourceEndpointArn": self.source_arn,
            "TargetEndpointArn": self.target_arn,
            "ReplicationInstanceArn": self.instance_arn,
            "MigrationType": self.migration_type,
            "TableMappings": self.table_mappings,
            "Status": self.status,
            "ReplicationTaskCreationDate": self.created,
            "ReplicationTaskArn": self.arn,
        }
        if with_settings:
            body["ReplicationTaskSettings"] = json.dumps(self.settings)
        optional = {
            "LastFailureMessage": self.last_failure_message,
            "StopReason": self.stop_reason,
            "ReplicationTaskStartDate": self.start_date,
            "CdcStartPosition": self.cdc_start_position,
            "CdcStopPosition": self.cdc_stop_position,
            "RecoveryCheckpoint": self.recovery_checkpoint,
            "TaskData": self.task_data,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if self.has_run:
            body["ReplicationTaskStats"] = self.stats(now)
        return body
