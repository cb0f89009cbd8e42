"""What a failed run says: DMS's failure format (``Last Error <text> Stop Reason <reason> Error
Level <level>``, built by ``dms_spec.lifecycle.last_error``) and the reasons a user can act on.

Driver errors are told apart by their exception classes (asyncpg's map SQLSTATEs to classes),
never by their text; the password never appears in a message.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import asyncpg
import botocore.exceptions

from dms_spec.lifecycle import last_error
from dms_spec.status import StopReason
from localdms.endpoint_settings import PostgresSource
from localdms.engine.capture_source import CdcError
from localdms.table_mappings import TablePlan

NO_TABLES_MESSAGE = last_error(
    "No tables were found at task initialization. Either the selected table(s) or schemas(s) no "
    "longer exist or no match was found for the table selection pattern(s). If you would like to "
    "start a Task that does not initially capture any tables, set Task Setting "
    "FailOnNoTablesCaptured to false and restart task.",
    StopReason.FATAL_ERROR,
)


def fatal_message(text: str) -> str:
    """Wrap ``text`` in DMS's task failure format.

    Example:
        >>> fatal_message("boom")
        'Last Error  boom Stop Reason FATAL_ERROR Error Level FATAL'
    """
    return last_error(text, StopReason.FATAL_ERROR)


RESUME_HINT = (
    "Start the task with resume-processing once it is reachable again: the slot keeps every "
    "change after the RecoveryCheckpoint, so nothing is lost."
)
"""What a task failed by a recoverable error says to do. Only the failure says it: while
localdms restarts capture by itself (``dms_spec.recovery``), its log and events say so instead."""


def cdc_failure(exc: CdcError) -> str:
    """A CDC failure in DMS's task failure format; recoverable ones can be resumed.

    Example:
        >>> cdc_failure(CdcError("Failed to write CDC files to S3: refused.", recoverable=True))[:80]
        'Last Error  Failed to write CDC files to S3: refused. Start the task with resume'
    """
    if exc.recoverable:
        return last_error(f"{exc} {RESUME_HINT}", StopReason.RECOVERABLE_ERROR)
    return fatal_message(str(exc))


class EnvironmentalError(Exception):
    """What DMS calls an environmental error in a full load: the source or S3 went away for a
    while. The run restarts the load of the tables not yet completed, as ``dms_spec.recovery``
    says, instead of failing a table. ``str()`` is the reason; ``from_source`` says whether the
    source was lost (its snapshot with it)."""

    def __init__(self, message: str, from_source: bool) -> None:
        super().__init__(message)
        self.from_source = from_source


_S3_BUSY = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
                      "RequestTimeTooSkewed", "Throttling", "ThrottlingException"})  # fmt: skip


def source_went_away(exc: BaseException) -> bool:
    """Whether a source error is environmental: the connection was refused, reset or closed,
    or the server is shutting down or starting (SQLSTATE classes 08 and 57), not a refusal of
    what was asked (a permission, a bad query, a wrong password).

    Example:
        >>> source_went_away(ConnectionRefusedError()), source_went_away(asyncpg.AdminShutdownError())
        (True, True)
        >>> source_went_away(asyncpg.InsufficientPrivilegeError()), source_went_away(ssl.SSLError())
        (False, False)
    """
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.OperatorInterventionError):
        return not isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError)
    if isinstance(exc, ssl.SSLError):
        return False
    sqlstate = str(getattr(exc, "sqlstate", "") or "")  # ADBC's errors carry the SQLSTATE
    return isinstance(exc, OSError | asyncio.TimeoutError) or sqlstate[:2] in ("08", "57")


def s3_unavailable(exc: BaseException) -> bool:
    """Whether an S3 error is environmental: no connection, a timeout, a 5xx or a throttle (what
    botocore's retries gave up on), not a refusal (403, a missing bucket).

    Example:
        >>> s3_unavailable(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
        True
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500 or error.get("Code") in _S3_BUSY
    return isinstance(
        exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError
    )


def table_error(plan: TablePlan, text: str) -> str:
    """A table's failure, as its ``Table error`` statistics and the task's log give it."""
    return f"Failed to load table {plan.source.schema}.{plan.source.name}: {text}"


def source_error(source: PostgresSource, exc: BaseException) -> str:
    """A source failure as a user can act on it (the password never appears)."""
    where = f"{source.host}:{source.port}/{source.database} as {source.username}"
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return (
            f"Failed to connect to the PostgreSQL source {where}: authentication failed "
            f"({exc}). Check the endpoint's Username and Password."
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"Failed to connect to the PostgreSQL source {where}: {exc}. Check DatabaseName."
    if type(exc) is ConnectionError and source.ssl_mode != "none":
        # asyncpg's answer when the server refuses the SSL upgrade (refusals of the TCP
        # connection itself are ConnectionRefusedError, a subclass).
        return (
            f"Failed to connect to the PostgreSQL source {where}: the server does not accept SSL "
            f"connections, and the endpoint's SslMode is {source.ssl_mode}. Turn ssl on in the "
            "server's configuration, or set the endpoint's SslMode to none."
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"Failed to connect to the PostgreSQL source {where}: the server's certificate does "
            f"not pass SslMode {source.ssl_mode} with the endpoint's CertificateArn "
            f"({exc.verify_message or exc}). Import the CA certificate that signed the server's "
            "certificate and set it as the endpoint's CertificateArn"
            + (", and connect by a name the certificate is issued for"
               if source.ssl_mode == "verify-full" else "")
            + "."
        )  # fmt: skip
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return (
            f"Failed to connect to the PostgreSQL source {where}: {exc or type(exc).__name__}. "
            "Check ServerName and Port, and that the server accepts connections."
        )
    return f"PostgreSQL source {where} returned an error: {exc}"


S3_KEY_HINTS = {
    "InvalidAccessKeyId": "S3 does not know the access key",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "AccessDenied": "the credentials may not use the bucket",
}
"""S3's refusals of localdms's own credentials, in words."""


def check_bucket(s3: Any, bucket: str) -> str | None:
    """None when the bucket is reachable, else the reason.

    A HEAD answer has no body, so a refusal (403) is asked again with a one-key listing, whose
    error says which: an unknown access key, a wrong secret, or a missing permission.
    """
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket", "NotFound"):
            return (
                f"The S3 bucket {bucket!r} does not exist. Create it or fix S3Settings.BucketName."
            )
        if code in ("403", "Forbidden"):
            return _refusal(s3, bucket) or f"Cannot access the S3 bucket {bucket!r}: {exc}."
        return f"Cannot access the S3 bucket {bucket!r}: {code} {exc}."
    except botocore.exceptions.BotoCoreError as exc:
        return f"Cannot reach S3 for bucket {bucket!r}: {exc}. Check AWS_ENDPOINT_URL_S3 / network."
    return None


def _refusal(s3: Any, bucket: str) -> str | None:
    try:
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        why = S3_KEY_HINTS.get(code)
        if why:
            return (
                f"S3 refused localdms's credentials for bucket {bucket!r}: {code} ({why}). "
                "localdms writes with the keys of its own environment (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE): give it the S3 store's keys and start "
                "the task again."
            )
    return None
