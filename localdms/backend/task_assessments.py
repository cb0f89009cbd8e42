"""The legacy task assessment: StartReplicationTaskAssessment and
DescribeReplicationTaskAssessmentResults.

"Starts the replication task assessment for unsupported data types in the source database ...
The task must be in the stopped state [and] must have successful connections to the source and
target" (API reference); the results are in "the Amazon S3 bucket that DMS creates in your
Amazon Web Services account", and Describe "always returns the latest results". localdms runs
the ``unsupported-data-types-in-source`` check of the assessment runs (``assessment_runs.py``) on a
thread while the task shows ``testing``, creates that bucket (``dms-<account>-localdms``) in its
S3 if needed, and writes ``<task>/<task>-<UTC time>.json``. DMS publishes neither the file's
schema nor the AssessmentStatus values; localdms's are the check's (``passed``, ``warning``,
``error``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions

from dms_spec.assessments import AssessmentStatus
from dms_spec.status import ConnectionStatus, TaskStatus
from localdms.backend.base import BackendBase
from localdms.backend.queries import page_body
from localdms.backend.records import TaskAssessment
from localdms.engine.assessment_checks import Finding, run_assessments
from localdms.exceptions import DmsFault, InvalidResourceStateFault
from localdms.pacing import hold
from localdms.table_mappings import validate_table_mappings

log = logging.getLogger(__name__)

LEGACY_CHECK = "unsupported-data-types-in-source"
URL_SECONDS = 3600
"""How long an S3ObjectUrl (a presigned GET of the result file) is valid."""


class TaskAssessmentBackend(BackendBase):
    """The legacy task assessment operations."""

    @property
    def _assessment_bucket(self) -> str:
        return f"dms-{self.account_id}-localdms"

    def start_replication_task_assessment(self, *, replication_task_arn: str) -> dict[str, Any]:
        """StartReplicationTaskAssessment (every request member is acted on)."""
        with self.lock:
            self._advance()
            task = self._task(replication_task_arn)
            if task.status != TaskStatus.STOPPED:
                raise InvalidResourceStateFault(
                    f"Replication task {task.arn} is {task.status}; a task assessment needs a "
                    "stopped task (or use StartReplicationTaskAssessmentRun, which also takes "
                    "ready and failed tasks)."
                )
            for endpoint_arn in (task.source_arn, task.target_arn):
                connection = self.connections.get((endpoint_arn, task.instance_arn))
                if connection is None or connection.status != ConnectionStatus.SUCCESSFUL:
                    endpoint = self._endpoint(endpoint_arn)
                    raise InvalidResourceStateFault(
                        f"Endpoint {endpoint.identifier} has no successful connection from the "
                        "task's replication instance: run TestConnection first."
                    )
            started = time.time()
            stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
            assessment = TaskAssessment(
                task_arn=task.arn, task_identifier=task.identifier, status=AssessmentStatus.RUNNING,
                started=started, bucket=self._assessment_bucket,
                key=f"{task.identifier}/{task.identifier}-{stamp}.json",
            )  # fmt: skip
            self.state.task_assessments[task.arn] = assessment
            task.begin_testing()
            self._save()
            body = {"ReplicationTask": task.to_api(started)}
            threading.Thread(
                target=self._assess_task, args=(assessment, time.monotonic()),
                name=f"assess-{task.identifier}", daemon=True,
            ).start()  # fmt: skip
            return body

    def _assess_task(self, assessment: TaskAssessment, since: float) -> None:
        """The assessment, on its own thread: check, write the file, give the task back."""
        hold(self.transition_seconds, since)  # the task shows `testing` first
        with self.lock:
            task = self.tasks.get(assessment.task_arn)
            if task is None:
                return
            rules = validate_table_mappings(task.table_mappings)
            migration_type, settings = str(task.migration_type), dict(task.settings)
            try:
                source = self._source(self._endpoint(task.source_arn))
            except DmsFault as fault:
                source, problem = None, fault.message
        if source is None:
            finding = Finding(LEGACY_CHECK, AssessmentStatus.ERROR, problem)
        else:
            try:
                (finding,) = run_assessments(source, rules, migration_type, settings,
                                             [LEGACY_CHECK])  # fmt: skip
            except Exception as exc:  # the thread's top frame: record, never die silently
                log.exception("task assessment of %s failed", assessment.task_identifier)
                finding = Finding(
                    LEGACY_CHECK, AssessmentStatus.ERROR, f"The check could not run: {exc!r}"
                )
        document = {
            "replication-task-identifier": assessment.task_identifier,
            "replication-task-arn": assessment.task_arn,
            "assessment": finding.name,
            "status": finding.status,
            "message": finding.message,
            "objects": finding.objects,
        }
        results = json.dumps(document, indent=2)
        try:
            s3 = self.s3_factory()
            with contextlib.suppress(botocore.exceptions.ClientError):  # it is there already
                s3.create_bucket(Bucket=assessment.bucket)
            s3.put_object(Bucket=assessment.bucket, Key=assessment.key, Body=results.encode())
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            finding = Finding(
                finding.name, AssessmentStatus.ERROR, finding.message, finding.objects
            )
            results = json.dumps({**document, "status": AssessmentStatus.ERROR, "message": (
                f"Writing s3://{assessment.bucket}/{assessment.key} failed: {error.get('Code')}: "
                f"{error.get('Message')}."
            )}, indent=2)  # fmt: skip
        with self.lock:
            assessment.conclude(finding.status, results, time.time())
            task = self.tasks.get(assessment.task_arn)
            if task is not None:
                task.end_testing(TaskStatus.STOPPED)
            log.info("task assessment of %s: %s", assessment.task_identifier, finding.status)
            self._save()

    def describe_replication_task_assessment_results(
        self,
        *,
        replication_task_arn: str | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeReplicationTaskAssessmentResults (every request member is acted on): the
        latest result of the task, with its JSON and a presigned S3ObjectUrl, or of every task."""
        with self.lock:
            if replication_task_arn is not None:
                self._task(replication_task_arn)
                found = self.state.task_assessments.get(replication_task_arn)
                items = [found] if found is not None else []
            else:
                items = sorted(self.state.task_assessments.values(), key=lambda a: a.started)
            detailed = replication_task_arn is not None
            s3 = self.s3_factory() if detailed and items else None

            def api(assessment: TaskAssessment) -> dict[str, Any]:
                url = None
                if s3 is not None and assessment.completed is not None:
                    url = s3.generate_presigned_url(
                        "get_object", ExpiresIn=URL_SECONDS,
                        Params={"Bucket": assessment.bucket, "Key": assessment.key},
                    )  # fmt: skip
                return assessment.to_api(detailed, url)

            body = page_body("ReplicationTaskAssessmentResults", items, api, max_records, marker)
            return {"BucketName": self._assessment_bucket, **body}
