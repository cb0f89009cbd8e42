"""What the backend keeps that has no lifecycle of its own: imported certificates and the
events of instances and tasks. (Resources with statuses are in ``resources.py``.)"""

from __future__ import annotations

from dataclasses import dataclass
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
