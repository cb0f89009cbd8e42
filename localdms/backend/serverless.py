"""DMS Serverless: replication configs and their replications.

CreateReplicationConfig, DescribeReplicationConfigs, ModifyReplicationConfig,
DeleteReplicationConfig, StartReplication, StopReplication, DescribeReplications,
DescribeReplicationTableStatistics, ReloadReplicationTables.

A config's replication runs on the same engine as a task: it *is* a ``ReplicationTask`` kept
inside the config (same ARN, never listed by DescribeReplicationTasks), so loads, change
capture, table statistics, persistence and restart recovery are the tasks' own. What differs is
how DMS Serverless reports it (read from the Terraform provider's ``replication_config.go`` and
Airflow's ``waiters/dms.json``, which poll real DMS):

- ``Status``: ``created`` until the first start; a start walks through ``initializing``,
  ``preparing_metadata_resources``, ``testing_connection``, ``fetching_metadata``,
  ``calculating_capacity``, ``provisioning_capacity``, ``replication_starting`` (each shown for
  ``transition_seconds``), then ``running``, ``stopping``, ``stopped`` or ``failed``.
- ``ProvisionData.ProvisionState``: ``provisioning`` until ``replication_starting``, then
  ``provisioned``; once stopped or failed, ``deprovisioning`` for ``transition_seconds``, then
  ``deprovisioned``. ``ProvisionedCapacityUnits`` is the ComputeConfig's ``MinCapacityUnits``
  (``MaxCapacityUnits`` when no minimum is given): localdms does not predict load.
- A config can be started only when created, stopped or failed (not while provisioning or
  running), modified and deleted only then too (AWS DMS User Guide,
  CHAP_Serverless.Limitations).
"""

from __future__ import annotations

import json
import time
from typing import Any

from dms_spec.lifecycle import ACTIVE, last_error
from dms_spec.serverless import CAPACITY_UNITS, CREATED, SETTLED, STARTING_PHASES
from dms_spec.status import MigrationType, StartType, StopReason, TaskStatus
from localdms.backend.assessment_runs import AssessmentRunBackend
from localdms.backend.queries import (
    default_task_settings,
    filtered,
    merge_settings,
    page_body,
    parse_task_settings,
)
from localdms.backend.records import AssessmentRun
from localdms.backend.replication_config import ReplicationConfig
from localdms.backend.resources import GONE, ReplicationTask
from localdms.backend.runs import RunBackend
from localdms.backend.shapes import Filter, TableToReload, Tag
from localdms.backend.subnet_groups import SubnetGroupBackend
from localdms.backend.tables import TableBackend
from localdms.backend.tasks import check_cdc_positions, refuse_cdc_start_time
from localdms.exceptions import (
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
)
from localdms.identifiers import validate_identifier
from localdms.table_mappings import validate_table_mappings


def compute_config(given: dict[str, Any], default_kms_key: str) -> dict[str, Any]:
    """A ComputeConfig checked as DMS checks it, with the defaults DMS reports.

    Example:
        >>> compute_config({"MaxCapacityUnits": 16, "MinCapacityUnits": 2}, "k")["MultiAZ"]
        False
    """
    maximum, minimum = given.get("MaxCapacityUnits"), given.get("MinCapacityUnits")
    if maximum is None:
        raise InvalidParameterValueException(
            "ComputeConfig needs MaxCapacityUnits (DMS capacity units: "
            f"{', '.join(map(str, CAPACITY_UNITS))})."
        )
    for name, value in (("MaxCapacityUnits", maximum), ("MinCapacityUnits", minimum)):
        if value is not None and value not in CAPACITY_UNITS:
            raise InvalidParameterValueException(
                f"ComputeConfig {name}={value} is not a valid DMS capacity unit value: use one "
                f"of {', '.join(map(str, CAPACITY_UNITS))}."
            )
    if minimum is not None and minimum > maximum:
        raise InvalidParameterValueException(
            f"ComputeConfig MinCapacityUnits ({minimum}) cannot exceed MaxCapacityUnits "
            f"({maximum})."
        )
    return {
        "MultiAZ": False,
        "KmsKeyId": default_kms_key,
        "PreferredMaintenanceWindow": "sun:06:00-sun:06:30",
        **given,
    }


class ServerlessBackend(RunBackend, TableBackend, SubnetGroupBackend, AssessmentRunBackend):
    """The DMS Serverless operations."""

    @property
    def _phase_seconds(self) -> float:
        """How long each starting status shows (``transition_seconds``)."""
        return self.transition_seconds

    def _config(self, arn: str) -> ReplicationConfig:
        config: ReplicationConfig = self._get(self.replication_configs, arn, "Replication config")
        return config

    def _replication_api(self, config: ReplicationConfig) -> dict[str, Any]:
        body = config.replication_api(time.time(), self._phase_seconds)
        runs = sorted(
            (r for r in self.state.assessment_runs.values() if r.task_arn == config.arn),
            key=lambda r: r.created, reverse=True,
        )  # fmt: skip
        if runs:
            body["PremigrationAssessmentStatuses"] = [r.status_api() for r in runs]
        return body

    def _compute_config(self, given: dict[str, Any]) -> dict[str, Any]:
        compute = compute_config(given, self._default_kms_key())
        group = compute.get("ReplicationSubnetGroupId")
        if group:
            self._subnet_group(str(group))  # ResourceNotFoundFault when it does not exist
        return compute

    def _endpoints(self, source_arn: str, target_arn: str) -> None:
        source, target = self._endpoint(source_arn), self._endpoint(target_arn)
        if source.endpoint_type != "SOURCE" or target.endpoint_type != "TARGET":
            raise InvalidParameterValueException(
                "SourceEndpointArn must name a source endpoint and TargetEndpointArn a target "
                "endpoint."
            )

    def create_replication_config(
        self,
        *,
        replication_config_identifier: str,
        source_endpoint_arn: str,
        target_endpoint_arn: str,
        compute_config: dict[str, Any],
        replication_type: str,
        table_mappings: str,
        replication_settings: str | None = None,
        supplemental_settings: str | None = None,
        resource_identifier: str | None = None,
        tags: list[Tag] | None = None,
    ) -> dict[str, Any]:
        """CreateReplicationConfig (every request member is acted on; SupplementalSettings is
        kept and returned)."""
        with self.lock:
            self._advance()
            identifier = validate_identifier(
                "ReplicationConfigIdentifier", replication_config_identifier
            )
            kind = _replication_type(replication_type)
            validate_table_mappings(table_mappings)
            overrides = parse_task_settings(replication_settings, True)
            self._endpoints(source_endpoint_arn, target_endpoint_arn)
            compute = self._compute_config(compute_config)
            self._claim_identifier(self.replication_configs, identifier, "Replication config")
            now = time.time()
            arn = self._arn("replication-config", resource_identifier)
            config = ReplicationConfig(
                arn=arn,
                identifier=identifier,
                status=CREATED,
                created=now,
                source_arn=source_endpoint_arn,
                target_arn=target_endpoint_arn,
                replication_type=kind,
                table_mappings=table_mappings,
                settings=merge_settings(default_task_settings(), overrides),
                supplemental_settings=supplemental_settings,
                compute=compute,
                updated=now,
                replication=ReplicationTask(arn, identifier, TaskStatus.READY, now),
            )
            self.replication_configs[arn] = config
            self._set_tags(arn, tags)
            self._save()
            return {"ReplicationConfig": config.to_api()}

    def describe_replication_configs(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationConfigs (every request member is acted on)."""
        with self.lock:
            self._advance()
            items = self._matching(filters, "replication configs")
            return page_body(
                "ReplicationConfigs", items, ReplicationConfig.to_api, max_records, marker
            )

    def _matching(self, filters: list[Filter] | None, what: str) -> list[ReplicationConfig]:
        return filtered(
            list(self.replication_configs.values()),
            filters,
            {
                "replication-config-arn": lambda c: [c.arn],
                "replication-config-id": lambda c: [c.identifier],
            },
            what=what,
        )

    def modify_replication_config(
        self,
        *,
        replication_config_arn: str,
        replication_config_identifier: str | None = None,
        replication_type: str | None = None,
        table_mappings: str | None = None,
        replication_settings: str | None = None,
        supplemental_settings: str | None = None,
        compute_config: dict[str, Any] | None = None,
        source_endpoint_arn: str | None = None,
        target_endpoint_arn: str | None = None,
    ) -> dict[str, Any]:
        """ModifyReplicationConfig: only while the replication is created, stopped or failed
        (every request member is acted on; ComputeConfig members merge into the config's)."""
        with self.lock:
            self._advance()
            config = self._config(replication_config_arn)
            self._settled(config, "modified")
            if replication_config_identifier is not None:
                config_id = validate_identifier(
                    "ReplicationConfigIdentifier", replication_config_identifier
                )
                self._claim_identifier(
                    self.replication_configs, config_id, "Replication config", current=config
                )
            if table_mappings is not None:
                validate_table_mappings(table_mappings)
            kind = _replication_type(replication_type) if replication_type else None
            overrides = parse_task_settings(replication_settings, False)
            self._endpoints(source_endpoint_arn or config.source_arn,
                            target_endpoint_arn or config.target_arn)  # fmt: skip
            compute = (
                self._compute_config({**config.compute, **compute_config})
                if compute_config
                else config.compute
            )
            # Every check passed: apply.
            if replication_config_identifier is not None:
                config.identifier = config.replication.identifier = replication_config_identifier
            config.replication_type = kind or config.replication_type
            config.table_mappings = table_mappings or config.table_mappings
            if replication_settings is not None:
                config.settings = merge_settings(config.settings, overrides)
            if supplemental_settings is not None:
                config.supplemental_settings = supplemental_settings
            config.compute = compute
            config.source_arn = source_endpoint_arn or config.source_arn
            config.target_arn = target_endpoint_arn or config.target_arn
            config.updated = time.time()
            self._save()
            return {"ReplicationConfig": config.to_api()}

    def _settled(self, config: ReplicationConfig, action: str) -> None:
        status = config.replication_status(time.time(), self._phase_seconds)
        if status not in SETTLED:
            raise InvalidResourceStateFault(
                f"Replication config {config.arn} can be {action} only when its replication is "
                f"created, stopped or failed; it is {status}."
                + (" Stop it first (StopReplication)." if status != "deleting" else "")
            )

    def delete_replication_config(self, *, replication_config_arn: str) -> dict[str, Any]:
        """DeleteReplicationConfig: only while created, stopped or failed (every request member
        is acted on). Drops the change-capture slot localdms made, as DeleteReplicationTask."""
        with self.lock:
            self._advance()
            config = self._config(replication_config_arn)
            self._settled(config, "deleted")
            body = config.to_api()
            config.schedule("deleting", GONE, self.transition_seconds)
            self.runs.pop(config.arn, None)
            run = config.replication
            self._drop_capture_later(config.source_arn, run.slot_name or "")
            self._save()
            return {"ReplicationConfig": body}

    def start_replication(
        self,
        *,
        replication_config_arn: str,
        start_replication_type: str,
        premigration_assessment_settings: str | None = None,
        cdc_start_time: float | None = None,
        cdc_start_position: str | None = None,
        cdc_stop_position: str | None = None,
    ) -> dict[str, Any]:
        """StartReplication: ``start-replication`` the first time, then ``resume-processing``
        or ``reload-target``; only when created, stopped or failed. A first start may also be
        ``resume-processing``: the Terraform provider's ``aws_dms_replication_config`` starts a
        new config that way (its status is ``created``, not ``ready``), against AWS.

        CdcStartTime is refused as for tasks (a PostgreSQL source starts change capture from a
        WAL position). PremigrationAssessmentSettings run the premigration assessments first
        (the replication shows ``initializing`` meanwhile, its PremigrationAssessmentStatuses the
        run), with the results in a bucket DMS Serverless makes (``dms-serverless-<config's
        resource id>``); a failed run with FailOnAssessmentFailure (the default) fails the
        replication instead of starting it.
        """
        with self.lock:
            self._advance()
            config = self._config(replication_config_arn)
            if start_replication_type not in tuple(StartType):
                raise InvalidParameterValueException(
                    f"StartReplicationType {start_replication_type!r} is not valid; valid "
                    f"values: {', '.join(StartType)}."
                )
            self._settled(config, "started")
            run = config.replication
            if start_replication_type == StartType.START_REPLICATION and run.has_run:
                raise InvalidParameterCombinationException(
                    "Start Type : START_REPLICATION, valid only for replications running for the "
                    "first time; use resume-processing or reload-target."
                )
            if start_replication_type == StartType.RELOAD_TARGET and not run.has_run:
                raise InvalidParameterCombinationException(
                    "Start Type : RELOAD_TARGET, valid only for replications that have run "
                    "before; use start-replication (or resume-processing) first."
                )
            refuse_cdc_start_time(cdc_start_time)
            if config.replication_type == MigrationType.FULL_LOAD and (
                cdc_start_position or cdc_stop_position
            ):
                raise InvalidParameterCombinationException(
                    "CdcStartPosition and CdcStopPosition apply to cdc and full-load-and-cdc "
                    "replications only."
                )
            # The run takes the config as it is now.
            run.source_arn, run.target_arn = config.source_arn, config.target_arn
            run.migration_type = config.replication_type
            run.table_mappings, run.settings = config.table_mappings, config.settings
            if cdc_start_position is not None:
                run.cdc_start_position = cdc_start_position
            if cdc_stop_position is not None:
                run.cdc_stop_position = cdc_stop_position
            check_cdc_positions(run)
            config.start_type = start_replication_type
            if premigration_assessment_settings is not None:
                self._assess_first(config, premigration_assessment_settings)
            else:
                self._start_run(config)
            return {"Replication": self._replication_api(config)}

    def _start_run(self, config: ReplicationConfig) -> None:
        self._start(
            config.replication,
            StartType(config.start_type or StartType.START_REPLICATION),
            starting_seconds=self._phase_seconds * len(STARTING_PHASES),
        )

    def _assess_first(self, config: ReplicationConfig, text: str) -> None:
        """Start the premigration assessment StartReplication asked for; the replication
        starts when it ends (``_replication_assessed``)."""
        settings = _assessment_settings(text)
        resource_id = config.arn.rsplit(":", 1)[-1].lower()
        run = self._new_run(
            config.replication, f"{config.identifier}-{int(time.time() * 1000)}",
            "", f"dms-serverless-{resource_id}"[:63], settings.get("ResultLocationFolder"),
            settings.get("ResultEncryptionMode"), settings.get("ResultKmsKeyArn"),
            str(settings.get("IncludeOnly", "")).split() or None,
            str(settings.get("Exclude", "")).split() or None,
        )  # fmt: skip
        run.fail_on_failure = settings.get("FailOnAssessmentFailure", True) is not False
        self._launch(run, config.replication)

    def _replication_assessed(self, config: ReplicationConfig, run: AssessmentRun) -> None:
        """The premigration assessment ended: start the replication, unless it failed and
        FailOnAssessmentFailure says not to (then the replication fails, saying why)."""
        if run.cancel_requested:
            return
        if run.failed and run.fail_on_failure:
            config.replication.fail(last_error(
                f"Premigration assessment run {run.name} ended {run.status}"
                + (f" ({run.last_failure_message})" if run.last_failure_message else "")
                + f"; results in s3://{run.bucket}/{run.result_prefix}. FailOnAssessmentFailure "
                "is true, so the replication was not started.", StopReason.FATAL_ERROR,
            ), time.time())  # fmt: skip
            return
        self._start_run(config)

    def stop_replication(self, *, replication_config_arn: str) -> dict[str, Any]:
        """StopReplication (every request member is acted on): only while it starts or runs."""
        with self.lock:
            self._advance()
            config = self._config(replication_config_arn)
            run = config.replication
            if run.status not in ACTIVE:
                status = config.replication_status(time.time(), self._phase_seconds)
                raise InvalidResourceStateFault(
                    f"Replication {config.arn} is {status}: only a starting or running "
                    "replication can be stopped."
                )
            run.request_stop()
            self._save()
            active = self.runs.get(run.arn)
            if active is not None:
                active.stop()
            return {"Replication": self._replication_api(config)}

    def describe_replications(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplications (every request member is acted on)."""
        with self.lock:
            self._advance()
            items = self._matching(filters, "replications")
            return page_body("Replications", items, self._replication_api, max_records, marker)

    def describe_replication_table_statistics(
        self,
        *,
        replication_config_arn: str,
        max_records: int | None = None,
        marker: str | None = None,
        filters: list[Filter] | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationTableStatistics (every request member is acted on)."""
        with self.lock:
            self._advance()
            run = self._config(replication_config_arn).replication
            return self._table_statistics(
                run, filters, max_records, marker, "ReplicationTableStatistics",
                "ReplicationConfigArn",
            )  # fmt: skip

    def reload_replication_tables(
        self,
        *,
        replication_config_arn: str,
        tables_to_reload: list[TableToReload],
        reload_option: str = "data-reload",
    ) -> dict[str, Any]:
        """ReloadReplicationTables (every request member is acted on; ReloadOption
        validate-only is refused: data validation is not emulated)."""
        with self.lock:
            self._advance()
            config = self._config(replication_config_arn)
            self._reload_tables(config.replication, tables_to_reload, reload_option,
                                "replication")  # fmt: skip
            self._save()
            return {"ReplicationConfigArn": config.arn}


_ASSESSMENT_SETTINGS = frozenset({
    "ResultLocationFolder", "ResultEncryptionMode", "ResultKmsKeyArn", "IncludeOnly", "Exclude",
    "FailOnAssessmentFailure",
})  # fmt: skip


def _assessment_settings(text: str) -> dict[str, Any]:
    """StartReplication's PremigrationAssessmentSettings: a JSON object of the API reference's
    members (IncludeOnly and Exclude space-separated names)."""
    try:
        settings = json.loads(text)
    except ValueError as exc:
        raise InvalidParameterValueException(
            f"PremigrationAssessmentSettings is not valid JSON: {exc}."
        ) from exc
    if not isinstance(settings, dict):
        raise InvalidParameterValueException(
            "PremigrationAssessmentSettings must be a JSON object."
        )
    unknown = sorted(set(settings) - _ASSESSMENT_SETTINGS)
    if unknown:
        raise InvalidParameterValueException(
            f"PremigrationAssessmentSettings has unknown member(s) {', '.join(unknown)}; valid: "
            f"{', '.join(sorted(_ASSESSMENT_SETTINGS))}."
        )
    return settings


def _replication_type(value: str) -> str:
    if value not in tuple(MigrationType):
        raise InvalidParameterValueException(
            f"ReplicationType {value!r} is not valid; valid values: {', '.join(MigrationType)}."
        )
    return str(value)
