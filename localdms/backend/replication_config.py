"""A DMS Serverless replication config and, inside it, its replication: how DMS Serverless
reports a run (the operations are in ``serverless.py``, which says where this was read)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dms_spec.serverless import STARTING_PHASES, replication_status
from dms_spec.status import MigrationType, TaskStatus
from localdms.backend.resources import ReplicationTask, Resource


@dataclass
class ReplicationConfig(Resource):
    """A replication config and, inside it, its replication (the run)."""

    source_arn: str = ""
    target_arn: str = ""
    replication_type: str = MigrationType.FULL_LOAD
    table_mappings: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    supplemental_settings: str | None = None
    compute: dict[str, Any] = field(default_factory=dict)
    updated: float = 0.0
    start_type: str | None = None
    replication: ReplicationTask = field(default_factory=lambda: ReplicationTask("", "", "", 0))

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ReplicationConfigIdentifier": self.identifier,
            "ReplicationConfigArn": self.arn,
            "SourceEndpointArn": self.source_arn,
            "TargetEndpointArn": self.target_arn,
            "ReplicationType": self.replication_type,
            "ComputeConfig": dict(self.compute),
            "ReplicationSettings": json.dumps(self.settings),
            "TableMappings": self.table_mappings,
            "ReplicationConfigCreateTime": self.created,
            "ReplicationConfigUpdateTime": self.updated,
            "IsReadOnly": False,
        }
        if self.supplemental_settings is not None:
            body["SupplementalSettings"] = self.supplemental_settings
        return body

    def replication_status(self, now: float, phase_seconds: float) -> str:
        run = self.replication
        if self.status == "deleting":
            return "deleting"
        if run.status == TaskStatus.TESTING:  # its premigration assessment runs first
            return STARTING_PHASES[0]
        elapsed = now - (run.start_date or now)
        phase = int(elapsed / phase_seconds) if phase_seconds > 0 else len(STARTING_PHASES)
        return replication_status(str(run.status), phase)

    def provision_data(self, now: float, phase_seconds: float) -> dict[str, Any] | None:
        run = self.replication
        if not run.has_run or run.start_date is None:
            return None
        provisioned_at = run.start_date + phase_seconds * (len(STARTING_PHASES) - 1)
        units = self.compute.get("MinCapacityUnits") or self.compute.get("MaxCapacityUnits")
        status = self.replication_status(now, phase_seconds)
        if status in STARTING_PHASES[:-1]:
            return {"ProvisionState": "provisioning", "ProvisionedCapacityUnits": 0}
        data = {
            "ProvisionState": "provisioned",
            "ProvisionedCapacityUnits": units,
            "DateProvisioned": provisioned_at,
            "IsNewProvisioningAvailable": False,
        }
        if run.status in (TaskStatus.STOPPED, TaskStatus.FAILED) and run.stop_date:
            gone = now >= run.stop_date + phase_seconds
            data["ProvisionState"] = "deprovisioned" if gone else "deprovisioning"
            if gone:
                data["ProvisionedCapacityUnits"] = 0
        return data

    def replication_api(self, now: float, phase_seconds: float) -> dict[str, Any]:
        run = self.replication
        body: dict[str, Any] = {
            "ReplicationConfigIdentifier": self.identifier,
            "ReplicationConfigArn": self.arn,
            "SourceEndpointArn": self.source_arn,
            "TargetEndpointArn": self.target_arn,
            "ReplicationType": self.replication_type,
            "Status": self.replication_status(now, phase_seconds),
            "ReplicationCreateTime": self.created,
            "ReplicationUpdateTime": max(self.updated, run.start_date or 0, run.stop_date or 0),
            "IsReadOnly": False,
        }
        provision = self.provision_data(now, phase_seconds)
        optional = {
            "ProvisionData": provision,
            "StopReason": run.stop_reason,
            "FailureMessages": [run.last_failure_message] if run.last_failure_message else None,
            "ReplicationStats": run.stats(now) if run.has_run else None,
            "StartReplicationType": self.start_type,
            "CdcStartPosition": run.cdc_start_position,
            "CdcStopPosition": run.cdc_stop_position,
            "RecoveryCheckpoint": run.recovery_checkpoint,
            "ReplicationLastStopTime": run.stop_date,
            "ReplicationDeprovisionTime": (run.stop_date + phase_seconds)
            if provision and provision["ProvisionState"] == "deprovisioned" and run.stop_date
            else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body
