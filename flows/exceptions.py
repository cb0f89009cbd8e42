"""The flow's errors: terminal ones fail at once with the reason; transient ones are retried.

Each carries what it is about as attributes and says what to do in its message. They are the
failures a run is expected to meet (DMS says no, a table fails, S3 disagrees, time runs out), so
they are logged and printed without a Python traceback (``flows.run_logging``); any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "SlowDown",
    }
)


WAITER_TIMED_OUT = "Max attempts exceeded"
"""The ``reason`` botocore gives a ``WaiterError`` that ran out of attempts (its other reasons are
a failure state or an error response)."""


def waiter_timed_out(exc: botocore.exceptions.WaiterError) -> bool:
    """Whether a waiter gave up for time, read from the error's structured ``reason``.

    Example:
        >>> waiter_timed_out(botocore.exceptions.WaiterError(
        ...     name="FullLoadStarted", reason="Max attempts exceeded", last_response={}))
        True
    """
    return bool(exc.kwargs.get("reason") == WAITER_TIMED_OUT)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same call later may succeed (throttling, 5xx, lost connections)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TRANSIENT_ERROR_CODES or status >= 500
    return isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionClosedError
        | botocore.exceptions.ReadTimeoutError
        | botocore.exceptions.ConnectTimeoutError
        | ConnectionError,
    )


class DmsIngestionError(Exception):
    """Base class of the flow's own errors (all terminal)."""


class ConfigError(DmsIngestionError):
    """The job's configuration is invalid; nothing was sent to AWS."""


class CredentialsError(DmsIngestionError):
    """The AwsCredentials block named could not be loaded."""


class ReplicationTaskConflictError(DmsIngestionError):
    """The existing replication task cannot be reused as the config asks (e.g. it is running)."""

    def __init__(self, message: str, task_identifier: str, status: str) -> None:
        super().__init__(message)
        self.task_identifier = task_identifier
        self.status = status


class ReplicationTaskFailedError(DmsIngestionError):
    """The replication task failed or stopped without finishing; the report says why."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


class CdcUnhealthyError(DmsIngestionError):
    """The CDC watch's verdict is not healthy; the message says why, ``.report`` the rest."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


class ReplicationTimeoutError(DmsIngestionError):
    """The task did not finish within the configured timeout."""


class PreflightFailedError(DmsIngestionError):
    """``preflight: fail`` and the premigration assessment failed (or could not run); nothing
    was started. ``.preflight`` holds the findings."""

    def __init__(self, message: str, preflight: Any = None) -> None:
        super().__init__(message)
        self.preflight = preflight


class TargetMismatchError(DmsIngestionError):
    """The config contradicts the target endpoint DMS describes; nothing was created or started."""


class TableLoadError(DmsIngestionError):
    """A table ended in 'Table error'; its subflow run fails with this."""


API_ERROR_HINTS = {
    "UnrecognizedClientException": (
        "The access key is not known to AWS: check the AwsCredentials block's keys (or the "
        "environment's AWS_ACCESS_KEY_ID) and its region."
    ),
    "InvalidSignatureException": (
        "The secret key does not match the access key: check the AwsCredentials block's "
        "aws_secret_access_key."
    ),
    "AccessDeniedException": (
        "The credentials lack a DMS permission: attach the IAM policy of docs/aws/index.md "
        "(Running against AWS)."
    ),
    "ResourceNotFoundFault": (
        "Check the ARNs in the environment (DMS_SOURCE_ENDPOINT_ARN, DMS_TARGET_ENDPOINT_ARN, "
        "DMS_REPLICATION_INSTANCE_ARN) against `aws dms describe-endpoints` / "
        "`describe-replication-instances` in the same account and region."
    ),
}
"""What to do about the DMS errors a user can fix, appended to their message."""


S3_ERROR_HINTS = {
    "InvalidAccessKeyId": (
        "This S3 does not know the access key: give the AwsCredentials block the keys of the S3 "
        "store the target endpoint writes to (`python -m blocks --profile local` takes "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment; for MinIO, its user's "
        "keys)."
    ),
    "SignatureDoesNotMatch": (
        "The secret key does not match the access key: check the AwsCredentials block's "
        "aws_secret_access_key."
    ),
    "AccessDenied": (
        "The credentials may not read the bucket: allow s3:ListBucket and s3:GetObject on it "
        "(the IAM policy of docs/aws/index.md)."
    ),
    "NoSuchBucket": (
        "The target endpoint's bucket does not exist in the S3 the flow's client reaches: check "
        "the block's endpoint (or AWS_ENDPOINT_URL_S3) and region."
    ),
}
"""What to do about the S3 errors of the flow's own reads (the reconciliation)."""


class S3AccessError(DmsIngestionError):
    """The flow could not read the target's objects; DMS's load itself may have succeeded."""

    def __init__(self, operation: str, code: str, message: str, where: str) -> None:
        hint = S3_ERROR_HINTS.get(code)
        super().__init__(
            f"Reading {where} to check DMS's row counts failed: S3 {operation}: {code}: "
            f"{message}" + (f" {hint}" if hint else "")
        )
        self.operation = operation
        self.code = code


class DmsApiError(DmsIngestionError):
    """A DMS call failed with a terminal error; the message carries the code and DMS's words."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        hint = API_ERROR_HINTS.get(code)
        super().__init__(
            f"DMS {operation} failed: {code}: {message}" + (f" {hint}" if hint else "")
        )
        self.operation = operation
        self.code = code
