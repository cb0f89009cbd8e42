"""Premigration assessment runs: StartReplicationTaskAssessmentRun,
DescribeReplicationTaskAssessmentRuns, DescribeReplicationTaskIndividualAssessments,
DescribeApplicableIndividualAssessments, CancelReplicationTaskAssessmentRun,
DeleteReplicationTaskAssessmentRun.

A run checks the source for real (``localdms.engine.assessment_checks``) on a thread: the run is
``starting``, then ``running`` (its task shows ``testing``, as DMS's does), each individual
assessment ``pending`` → ``running`` → ``passed``/``warning``/``failed``/``error``; then
``passed`` or ``failed`` (``dms_spec.assessments.run_status``). Results go to
``s3://ResultLocationBucket/[ResultLocationFolder/]<AssessmentRunName>/``: ``summary.json`` and
one ``<assessment name>.json`` each, as the guide names them. DMS does not publish the files'
schema; localdms's hold the name, status, message and objects concerned (documented in
docs/aws/preflight.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions

from dms_spec import assessments as assessment_catalogue
from dms_spec.assessments import RunStatus
from dms_spec.lifecycle import STARTABLE
from localdms.backend.base import BackendBase
from localdms.backend.queries import filtered, page_body
from localdms.backend.records import AssessmentRun, IndividualAssessment
from localdms.backend.replication_config import ReplicationConfig
from localdms.backend.resources import ReplicationTask
from localdms.backend.shapes import Filter, Tag
from localdms.endpoint_settings import POSTGRES_ENGINES
from localdms.engine.assessment_checks import Finding, run_assessments
from localdms.exceptions import (
    DmsFault,
    InvalidParameterCombinationException,
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
)
from localdms.identifiers import make_arn, random_resource_id
from localdms.pacing import hold
from localdms.table_mappings import validate_table_mappings

log = logging.getLogger(__name__)


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


class AssessmentRunBackend(BackendBase):
    """The premigration assessment operations."""

    def _run(self, arn: str) -> AssessmentRun:
        run = self.state.assessment_runs.get(arn)
        if run is None:
            raise ResourceNotFoundFault(f"Assessment run {arn} not found.")
        return run

    def _run_api(self, run: AssessmentRun) -> dict[str, Any]:
        newest = max(
            (r for r in self.state.assessment_runs.values() if r.task_arn == run.task_arn),
            key=lambda r: r.created,
        )
        return run.to_api(latest=newest is run)

    def start_replication_task_assessment_run(
        self,
        *,
        replication_task_arn: str,
        service_access_role_arn: str,
        result_location_bucket: str,
        assessment_run_name: str,
        result_location_folder: str | None = None,
        result_encryption_mode: str | None = None,
        result_kms_key_arn: str | None = None,
        include_only: list[str] | None = None,
        exclude: list[str] | None = None,
        tags: list[Tag] | None = None,
    ) -> dict[str, Any]:
        """StartReplicationTaskAssessmentRun (every request member is acted on; the role is
        kept, not assumed: results are written with localdms's own S3 credentials)."""
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            if task.status not in STARTABLE:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; an assessment runs only on a "
                    "ready, stopped or failed task."
                )
            if any(r.task_arn == task.arn and r.name == assessment_run_name
                   for r in self.state.assessment_runs.values()):  # fmt: skip
                raise ResourceAlreadyExistsFault(
                    f"Task {task.identifier} already has an assessment run named "
                    f"{assessment_run_name}."
                )
            run = self._new_run(
                task, assessment_run_name, service_access_role_arn, result_location_bucket,
                result_location_folder, result_encryption_mode, result_kms_key_arn,
                include_only, exclude,
            )  # fmt: skip
            self._set_tags(run.arn, tags)
            self._launch(run, task)
            return {"ReplicationTaskAssessmentRun": self._run_api(run)}

    def _new_run(
        self,
        task: ReplicationTask,
        name: str,
        role_arn: str,
        bucket: str,
        folder: str | None,
        encryption_mode: str | None,
        kms_key_arn: str | None,
        include_only: list[str] | None,
        exclude: list[str] | None,
    ) -> AssessmentRun:
        """A run of the assessments that apply to ``task`` (a task, or a serverless
        replication), kept; not started yet (``_launch``)."""
        mode = _encryption(encryption_mode, kms_key_arn)
        names = _selected(task.migration_type, include_only, exclude)

        def arn(kind: str) -> str:
            return make_arn(self.region, self.account_id, kind, random_resource_id())

        run = AssessmentRun(
            arn=arn("assessment-run"), name=name, task_arn=task.arn,
            instance_arn=task.instance_arn, status=RunStatus.STARTING, created=time.time(),
            role_arn=role_arn, bucket=bucket, folder=folder or "", encryption_mode=mode,
            kms_key_arn=kms_key_arn,
            assessments=[IndividualAssessment(arn("individual-assessment"), n) for n in names],
        )  # fmt: skip
        self.state.assessment_runs[run.arn] = run
        return run

    def _launch(self, run: AssessmentRun, task: ReplicationTask) -> None:
        """The task shows ``testing`` while the run checks, on its own thread."""
        previous = run.task_status = task.begin_testing()
        self._save()
        threading.Thread(
            target=self._assess, args=(run, previous, time.monotonic()),
            name=f"assess-{run.name}", daemon=True,
        ).start()  # fmt: skip

    def _assess(self, run: AssessmentRun, previous_status: str, since: float) -> None:
        """The run, on its own thread: check, record each finding, write the results."""
        hold(self.transition_seconds, since)  # `starting`, as DMS shows it first
        with self.lock:
            task = self._runnable(run.task_arn)
            if task is None or run.cancel_requested:
                self._finish(run, previous_status)
                return
            run.start()
            rules = validate_table_mappings(task.table_mappings)
            migration_type, settings = str(task.migration_type), dict(task.settings)
            try:
                source = self._source(self._endpoint(task.source_arn))
            except DmsFault as fault:
                run.error(fault.message)
                self._finish(run, previous_status)
                return
            self._save()

        def record(finding: Finding) -> None:
            with self.lock:
                run.record(finding.name, finding.status, finding.message, finding.objects)
                self._save()

        with self.lock:
            run.next_assessment(time.time())
        names = [a.name for a in run.assessments]
        try:
            run_assessments(source, rules, migration_type, settings, names, record,
                            cancelled=run.is_cancelled)  # fmt: skip
        except Exception as exc:  # the thread's top frame: record, never die silently
            log.exception("assessment run %s failed", run.name)
            with self.lock:
                run.error(repr(exc))
        with self.lock:
            if run.is_cancelled():
                run.cancelled()
            elif run.status == RunStatus.RUNNING:
                run.conclude(assessment_catalogue.run_status([a.status for a in run.assessments]))
            try:
                self._write_results(run)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                error = getattr(exc, "response", {}).get("Error", {})
                why = f"{error.get('Code')}: {error.get('Message')}" if error else str(exc)
                run.error(
                    f"Writing the results to s3://{run.bucket}/{run.result_prefix} failed: "
                    f"{why}. Check ResultLocationBucket."
                )
            run.note_failures()
            self._finish(run, previous_status)

    def _finish(self, run: AssessmentRun, previous_status: str) -> None:
        task = self._runnable(run.task_arn)
        if task is not None:
            task.end_testing(previous_status)
        if run.cancel_requested:
            run.cancelled()
        log.info("assessment run %s of %s: %s", run.name, run.task_arn, run.status)
        if run.task_arn in self.replication_configs:
            self._replication_assessed(self.replication_configs[run.task_arn], run)
        self._save()

    def _replication_assessed(self, config: ReplicationConfig, run: AssessmentRun) -> None:
        """A serverless replication's premigration assessment ended (``serverless.py`` starts
        the replication, or fails it)."""

    def _write_results(self, run: AssessmentRun) -> None:
        s3 = self.s3_factory()
        if run.task_arn in self.replication_configs:  # DMS Serverless makes its results bucket
            try:
                s3.head_bucket(Bucket=run.bucket)
            except botocore.exceptions.ClientError:
                s3.create_bucket(Bucket=run.bucket)
        extra: dict[str, Any] = {}
        if run.encryption_mode == "SSE_KMS":
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": run.kms_key_arn}
        elif run.encryption_mode == "SSE_S3":
            extra = {"ServerSideEncryption": "AES256"}
        for individual in run.assessments:
            document = {
                "name": individual.name,
                "description": assessment_catalogue.BY_NAME[individual.name].description,
                "status": individual.status,
                "message": individual.message,
                "objects": individual.objects,
                "started": _iso(individual.started),
            }
            s3.put_object(Bucket=run.bucket, Key=f"{run.result_prefix}{individual.name}.json",
                          Body=json.dumps(document, indent=2).encode(), **extra)  # fmt: skip
        summary = {
            "assessment-run-name": run.name,
            "assessment-run-arn": run.arn,
            "replication-task-arn": run.task_arn,
            "status": run.status,
            "created": _iso(run.created),
            "statistics": run.statistics(),
            "individual-assessments": [
                {"name": a.name, "status": a.status, "result-file": f"{a.name}.json"}
                for a in run.assessments
            ],
        }
        s3.put_object(Bucket=run.bucket, Key=f"{run.result_prefix}summary.json",
                      Body=json.dumps(summary, indent=2).encode(), **extra)  # fmt: skip

    def describe_replication_task_assessment_runs(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationTaskAssessmentRuns (every request member is acted on)."""
        with self.lock:
            items = filtered(
                sorted(self.state.assessment_runs.values(), key=lambda r: r.created),
                filters,
                {
                    "replication-task-assessment-run-arn": lambda r: [r.arn],
                    "replication-task-arn": lambda r: [r.task_arn],
                    "replication-instance-arn": lambda r: [r.instance_arn],
                    "status": lambda r: [r.status],
                },
                what="assessment runs",
            )
            return page_body(
                "ReplicationTaskAssessmentRuns", items, self._run_api, max_records, marker
            )

    def describe_replication_task_individual_assessments(
        self,
        *,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationTaskIndividualAssessments (every request member is acted on)."""
        with self.lock:
            pairs = [(run, a) for run in sorted(self.state.assessment_runs.values(),
                                                key=lambda r: r.created)
                     for a in run.assessments]  # fmt: skip
            items = filtered(
                pairs,
                filters,
                {
                    "replication-task-assessment-run-arn": lambda p: [p[0].arn],
                    "replication-task-arn": lambda p: [p[0].task_arn],
                    "status": lambda p: [p[1].status],
                },
                what="individual assessments",
            )
            return page_body(
                "ReplicationTaskIndividualAssessments", items,
                lambda pair: pair[1].to_api(pair[0].arn), max_records, marker,
            )  # fmt: skip

    def describe_applicable_individual_assessments(
        self,
        *,
        replication_task_arn: str | None = None,
        replication_instance_arn: str | None = None,
        replication_config_arn: str | None = None,
        source_engine_name: str | None = None,
        target_engine_name: str | None = None,
        migration_type: str | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeApplicableIndividualAssessments: for a task (or replication config), or for
        an engine pair and migration type (every request member is acted on)."""
        with self.lock:
            if replication_task_arn is not None:
                kind = str(self._task(replication_task_arn).migration_type)
            elif replication_config_arn is not None:
                kind = self._get(self.replication_configs, replication_config_arn,
                                 "Replication config").replication_type  # fmt: skip
            else:
                if replication_instance_arn is not None:
                    self._instance(replication_instance_arn)
                if not (source_engine_name and target_engine_name and migration_type):
                    raise InvalidParameterCombinationException(
                        "Give ReplicationTaskArn, ReplicationConfigArn, or SourceEngineName, "
                        "TargetEngineName and MigrationType."
                    )
                kind = migration_type
                if source_engine_name not in POSTGRES_ENGINES or target_engine_name != "s3":
                    return {"IndividualAssessmentNames": []}
            names = [a.name for a in assessment_catalogue.applicable(kind)]
            return page_body("IndividualAssessmentNames", names, lambda n: n, max_records, marker)

    def cancel_replication_task_assessment_run(
        self, *, replication_task_assessment_run_arn: str
    ) -> dict[str, Any]:
        """CancelReplicationTaskAssessmentRun: the assessments not yet done are cancelled; the
        run ends ``cancelling`` (DMS's word for a cancelled run). Refused once it has ended."""
        with self.lock:
            run = self._run(replication_task_assessment_run_arn)
            if run.status not in (RunStatus.STARTING, RunStatus.RUNNING):
                raise InvalidResourceStateFault(
                    f"Assessment run {run.name} is {run.status}; only a starting or running run "
                    "can be cancelled."
                )
            run.request_cancel()
            self._save()
            return {"ReplicationTaskAssessmentRun": self._run_api(run)}

    def delete_replication_task_assessment_run(
        self, *, replication_task_assessment_run_arn: str
    ) -> dict[str, Any]:
        """DeleteReplicationTaskAssessmentRun: the record goes (its result files stay in S3);
        refused while it runs."""
        with self.lock:
            run = self._run(replication_task_assessment_run_arn)
            if run.status in (RunStatus.STARTING, RunStatus.RUNNING):
                raise InvalidResourceStateFault(
                    f"Assessment run {run.name} is {run.status}: cancel it first."
                )
            body = self._run_api(run)
            body["Status"] = "deleting"
            del self.state.assessment_runs[run.arn]
            self.tags.pop(run.arn, None)
            self._save()
            return {"ReplicationTaskAssessmentRun": body}


def _encryption(mode: str | None, key: str | None) -> str | None:
    if mode is None:
        return None
    if mode not in ("SSE_S3", "SSE_KMS"):
        raise InvalidParameterValueException(
            f"ResultEncryptionMode {mode!r} is not valid: use SSE_S3 or SSE_KMS."
        )
    if mode == "SSE_KMS" and not key:
        raise InvalidParameterCombinationException(
            "ResultEncryptionMode SSE_KMS needs ResultKmsKeyArn."
        )
    return mode


def _selected(
    migration_type: str, include_only: list[str] | None, exclude: list[str] | None
) -> list[str]:
    """The assessments a run does: the applicable ones, narrowed by IncludeOnly / Exclude."""
    if include_only and exclude:
        raise InvalidParameterCombinationException("Give IncludeOnly or Exclude, not both.")
    names = [a.name for a in assessment_catalogue.applicable(migration_type)]
    asked = [*(include_only or ()), *(exclude or ())]
    unknown = [n for n in asked if n not in names]
    if unknown:
        raise InvalidParameterValueException(
            f"Individual assessment(s) {', '.join(unknown)} do not apply to this "
            f"{migration_type} task; applicable: {', '.join(names)}."
        )
    if include_only:
        return [n for n in names if n in include_only]
    return [n for n in names if n not in (exclude or ())]
