"""What the backend keeps beside the resources of ``resources.py``: imported certificates, the
events of instances and tasks, and assessment runs, whose statuses change only through their
methods here (as a resource's do in ``resources.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dms_spec.assessments import NOT_DONE, AssessmentStatus, RunStatus

MAX_EVENTS = 1000
"""Events kept (the oldest go first); DescribeEvents reads from these."""


@dataclass
class Event:
    """One DMS event (``dms_spec.events``) of a replication instance or task."""

    source_identifier: str
    source_arn: str
    source_type: str
    event_id: str
    category: str
    message: str
    date: float

    def to_api(self) -> dict[str, Any]:
        return {
            "SourceIdentifier": self.source_identifier,
            "SourceType": self.source_type,
            "Message": self.message,
            "EventCategories": [self.category],
            "Date": self.date,
        }

    def log_line(self) -> str:
        """The event as a line of its task's log (DescribeReplicationInstanceTaskLogs sizes)."""
        return f"{self.date:.3f} {self.event_id} {self.message}\n"


@dataclass
class Certificate:
    """A certificate from ImportCertificate: a PEM CA certificate or an Oracle wallet."""

    arn: str
    identifier: str
    created: float
    owner: str
    pem: str | None = None
    wallet: str | None = None
    """The wallet's bytes, base64 (JSON state)."""
    kms_key_id: str | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    signing_algorithm: str | None = None
    key_length: int | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "CertificateIdentifier": self.identifier,
            "CertificateCreationDate": self.created,
            "CertificateArn": self.arn,
            "CertificateOwner": self.owner,
        }
        optional = {
            "CertificatePem": self.pem,
            "CertificateWallet": self.wallet,  # a blob: base64 in the JSON protocol
            "ValidFromDate": self.valid_from,
            "ValidToDate": self.valid_to,
            "SigningAlgorithm": self.signing_algorithm,
            "KeyLength": self.key_length,
            "KmsKeyId": self.kms_key_id,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


@dataclass
class IndividualAssessment:
    """One individual assessment of an assessment run (``dms_spec.assessments``)."""

    arn: str
    name: str
    status: str = AssessmentStatus.PENDING
    started: float | None = None
    message: str = ""
    objects: list[str] = field(default_factory=list)

    def to_api(self, run_arn: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ReplicationTaskIndividualAssessmentArn": self.arn,
            "ReplicationTaskAssessmentRunArn": run_arn,
            "IndividualAssessmentName": self.name,
            "Status": self.status,
        }
        if self.started is not None:
            body["ReplicationTaskIndividualAssessmentStartDate"] = self.started
        return body

    def start(self, now: float) -> None:
        self.status, self.started = AssessmentStatus.RUNNING, now

    def record(self, status: str, message: str, objects: list[str]) -> None:
        """The check's finding: its status, message and the objects it names."""
        self.status, self.message, self.objects = status, message, objects

    def cancel(self) -> None:
        """The run was cancelled: an assessment not done is ``cancelled``."""
        if self.status in NOT_DONE:
            self.status = AssessmentStatus.CANCELLED


@dataclass
class AssessmentRun:
    """A premigration assessment run of a task (StartReplicationTaskAssessmentRun)."""

    arn: str
    name: str
    task_arn: str
    instance_arn: str
    status: str
    created: float
    role_arn: str
    bucket: str
    folder: str = ""
    encryption_mode: str | None = None
    kms_key_arn: str | None = None
    assessments: list[IndividualAssessment] = field(default_factory=list)
    last_failure_message: str | None = None
    cancel_requested: bool = False
    task_status: str = ""
    """The task's status before the run (it shows ``testing`` meanwhile)."""
    fail_on_failure: bool = True
    """A DMS Serverless run's FailOnAssessmentFailure: a failed run keeps the replication from
    starting."""

    def is_cancelled(self) -> bool:
        """Whether CancelReplicationTaskAssessmentRun was called (read as the run goes on)."""
        return self.cancel_requested

    # ------------------------------------------------------------- transitions of a run
    def start(self) -> None:
        """The run checks the source: ``running``."""
        self.status = RunStatus.RUNNING

    def next_assessment(self, now: float) -> None:
        """The next pending assessment starts (none once the run is cancelled)."""
        following = next(
            (a for a in self.assessments if a.status == AssessmentStatus.PENDING), None
        )
        if following is not None and not self.cancel_requested:
            following.start(now)

    def record(self, name: str, status: str, message: str, objects: list[str]) -> None:
        """An assessment's finding; then the next one starts."""
        next(a for a in self.assessments if a.name == name).record(status, message, objects)
        self.next_assessment(time.time())

    def conclude(self, status: str) -> None:
        """Every assessment ran: the run's status from theirs (``dms_spec.assessments``)."""
        self.status = status

    def error(self, message: str) -> None:
        """The run could not go on (``error-executing``), saying why."""
        self.status, self.last_failure_message = RunStatus.ERROR_EXECUTING, message

    def interrupt(self) -> None:
        """localdms died while the run ran: ``error-executing``, to be started again."""
        self.error("localdms stopped while the assessment ran: start another run.")

    def request_cancel(self) -> None:
        """CancelReplicationTaskAssessmentRun accepted: ``cancelling`` (DMS's word for a
        cancelled run); the running check ends, the others do not start."""
        self.cancel_requested = True
        self.status = RunStatus.CANCELLING

    def cancelled(self) -> None:
        """The cancelled run ended: what had not run is ``cancelled``."""
        self.request_cancel()
        for individual in self.assessments:
            individual.cancel()

    def note_failures(self) -> None:
        """LastFailureMessage names the failed assessments, unless it says what failed already."""
        failed = [a.name for a in self.assessments if a.status == AssessmentStatus.FAILED]
        if failed and not self.last_failure_message:
            self.last_failure_message = "Failed: " + ", ".join(failed)

    @property
    def result_prefix(self) -> str:
        """Where the result files go: ``[ResultLocationFolder/]<AssessmentRunName>/``."""
        folder = self.folder.strip("/")
        return f"{folder}/{self.name}/" if folder else f"{self.name}/"

    def statistics(self) -> dict[str, int]:
        statuses = [a.status for a in self.assessments]
        return {key.capitalize(): statuses.count(key)
                for key in (AssessmentStatus.PASSED, AssessmentStatus.FAILED, AssessmentStatus.ERROR,
                            AssessmentStatus.WARNING, AssessmentStatus.CANCELLED,
                            AssessmentStatus.SKIPPED)}  # fmt: skip

    def to_api(self, latest: bool) -> dict[str, Any]:
        done = sum(a.status not in NOT_DONE for a in self.assessments)
        body: dict[str, Any] = {
            "ReplicationTaskAssessmentRunArn": self.arn,
            "ReplicationTaskArn": self.task_arn,
            "Status": self.status,
            "ReplicationTaskAssessmentRunCreationDate": self.created,
            "AssessmentProgress": {
                "IndividualAssessmentCount": len(self.assessments),
                "IndividualAssessmentCompletedCount": done,
            },
            "ServiceAccessRoleArn": self.role_arn,
            "ResultLocationBucket": self.bucket,
            "ResultLocationFolder": self.folder,
            "AssessmentRunName": self.name,
            "IsLatestTaskAssessmentRun": latest,
            "ResultStatistic": self.statistics(),
        }
        optional = {
            "ResultEncryptionMode": self.encryption_mode,
            "ResultKmsKeyArn": self.kms_key_arn,
            "LastFailureMessage": self.last_failure_message,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    def status_api(self) -> dict[str, Any]:
        """The run as a DMS Serverless replication's ``PremigrationAssessmentStatuses`` item."""
        task = self.to_api(latest=True)
        body: dict[str, Any] = {
            "PremigrationAssessmentRunArn": self.arn,
            "FailOnAssessmentFailure": self.fail_on_failure,
            "Status": self.status,
            "PremigrationAssessmentRunCreationDate": self.created,
            "AssessmentProgress": task["AssessmentProgress"],
            "ResultLocationBucket": self.bucket,
            "ResultLocationFolder": self.folder,
            "ResultStatistic": task["ResultStatistic"],
        }
        for name in ("LastFailureMessage", "ResultEncryptionMode", "ResultKmsKeyArn"):
            if name in task:
                body[name] = task[name]
        return body

    @property
    def failed(self) -> bool:
        """Whether the run ended as a failure (an assessment failed, or the run could not go
        on)."""
        return self.status in (RunStatus.FAILED, RunStatus.ERROR_EXECUTING)


@dataclass
class TaskAssessment:
    """The latest legacy task assessment of a task (StartReplicationTaskAssessment)."""

    task_arn: str
    task_identifier: str
    status: str
    """``running``, then the finding's status (``passed``, ``warning``, ``error``)."""
    started: float
    bucket: str
    key: str
    completed: float | None = None
    results: str = ""
    """The result file's JSON text (AssessmentResults)."""

    def to_api(self, detailed: bool, url: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ReplicationTaskIdentifier": self.task_identifier,
            "ReplicationTaskArn": self.task_arn,
            "AssessmentStatus": self.status,
            "AssessmentResultsFile": self.key,
        }
        if self.completed is not None:
            body["ReplicationTaskLastAssessmentDate"] = self.completed
        if detailed:  # "only if you provide ReplicationTaskArn in the request"
            body["AssessmentResults"] = self.results
            if url is not None:
                body["S3ObjectUrl"] = url
        return body

    def conclude(self, status: str, results: str, now: float) -> None:
        """The check ran: its finding's status and the result file's text."""
        self.status, self.results, self.completed = status, results, now

    def interrupt(self) -> None:
        """localdms died while it ran: ``error``."""
        self.status = AssessmentStatus.ERROR
