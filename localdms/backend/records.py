"""What the backend keeps beside the resources of ``resources.py``: imported certificates, the
events of instances and tasks, and premigration assessment runs (whose statuses change only in
``assessments.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    status: str = "pending"
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

    def is_cancelled(self) -> bool:
        """Whether CancelReplicationTaskAssessmentRun was called (read as the run goes on)."""
        return self.cancel_requested

    @property
    def result_prefix(self) -> str:
        """Where the result files go: ``[ResultLocationFolder/]<AssessmentRunName>/``."""
        folder = self.folder.strip("/")
        return f"{folder}/{self.name}/" if folder else f"{self.name}/"

    def statistics(self) -> dict[str, int]:
        statuses = [a.status for a in self.assessments]
        return {key.capitalize(): statuses.count(key)
                for key in ("passed", "failed", "error", "warning", "cancelled", "skipped")}  # fmt: skip

    def to_api(self, latest: bool) -> dict[str, Any]:
        done = sum(a.status not in ("pending", "running") for a in self.assessments)
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
