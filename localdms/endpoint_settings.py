"""Endpoint settings that localdms acts on: the PostgreSQL source and the S3 target.

Values arrive as ``S3Settings`` / ``PostgreSQLSettings`` objects or as ExtraConnectionAttributes
(``key=value;...`` in lower camel case); both are accepted, the settings object winning.
Settings DMS has that change nothing here are kept and reported back, but not acted on.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dms_spec.endpoint_settings import parse_extra_connection_attributes, setting_flag
from dms_spec.s3_target import S3SettingsError, S3Target
from localdms.exceptions import InvalidParameterValueException

__all__ = ["PostgresSource", "S3Target", "parse_extra_connection_attributes", "s3_target"]

POSTGRES_ENGINES = ("postgres", "postgresql", "aurora-postgresql")
S3_ENGINES = ("s3",)

S3_KEYS = [
    "ServiceAccessRoleArn",
    "BucketName",
    "BucketFolder",
    "CsvDelimiter",
    "CsvRowDelimiter",
    "CsvNullValue",
    "CsvNoSupValue",
    "UseCsvNoSupValue",
    "AddColumnName",
    "AddTrailingPaddingCharacter",
    "Rfc4180",
    "MaxFileSize",
    "CompressionType",
    "EncryptionMode",
    "ServerSideEncryptionKmsKeyId",
    "DataFormat",
    "EncodingType",
    "DictPageSizeLimit",
    "RowGroupLength",
    "DataPageSize",
    "ParquetVersion",
    "EnableStatistics",
    "ParquetTimestampInMillisecond",
    "IncludeOpForFullLoad",
    "CdcInsertsOnly",
    "CdcInsertsAndUpdates",
    "TimestampColumnName",
    "UseTaskStartTimeForFullLoadTimestamp",
    "DatePartitionEnabled",
    "DatePartitionSequence",
    "DatePartitionDelimiter",
    "DatePartitionTimezone",
    "PreserveTransactions",
    "CdcPath",
    "CdcMaxBatchInterval",
    "CdcMinFileSize",
    "CannedAclForObjects",
    "ExpectedBucketOwner",
    "GlueCatalogGeneration",
    "IgnoreHeaderRows",
    "ExternalTableDefinition",
]


def _not_emulated(setting: str, value: Any, valid: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(
        f"S3Settings {setting}={value!r} is not valid for localdms: {valid}."
    )


def s3_target(settings: dict[str, Any]) -> S3Target:
    """The S3 target of merged S3Settings, as DMS reads them (``dms_spec.s3_target``), and as far
    as localdms emulates it.

    Raises:
        InvalidParameterValueException: a value DMS refuses, or one that asks for what localdms
            does not emulate (``Rfc4180=false``, ``PreserveTransactions``), saying which.
    """
    if not setting_flag(settings.get("Rfc4180"), True):
        raise _not_emulated(
            "Rfc4180", settings.get("Rfc4180"), "localdms always quotes per RFC 4180"
        )
    if setting_flag(settings.get("PreserveTransactions"), False):
        raise _not_emulated(
            "PreserveTransactions", settings.get("PreserveTransactions"),
            "transaction-order files (CdcPath) are not emulated; CDC files are written per table",
        )  # fmt: skip
    try:
        return S3Target.from_settings(settings)
    except S3SettingsError as exc:
        raise InvalidParameterValueException(str(exc)) from None


CONNECT_TIMEOUT_SECONDS = 10
"""How long a connection to the source may take before it fails (every connection's default)."""


@dataclass(frozen=True)
class PostgresSource:
    """How to reach a PostgreSQL source endpoint."""

    host: str
    port: int
    database: str
    username: str
    password: str
    slot_name: str = ""
    """PostgreSQLSettings.SlotName: an existing logical slot CDC tasks read (not created here)."""
    ssl_mode: str = "none"
    """The endpoint's SslMode: ``none`` (plain), ``require`` (encrypted, not verified),
    ``verify-ca`` (the server's certificate signed by ``ca_pem``) or ``verify-full`` (and issued
    for ``host``)."""
    ca_pem: str | None = None
    """The PEM of the endpoint's CertificateArn (ImportCertificate), for the verify modes."""
    fail_tasks_on_lob_truncation: bool = False
    """PostgreSQLSettings.FailTasksOnLobTruncation: a LOB over LobMaxSize fails the task."""

    # Every connection to the source is made from these: the task's asyncpg pool and the
    # connection test, CDC's psycopg2 (replication) connections, and ADBC's libpq URI.

    def asyncpg_arguments(self, timeout: float = CONNECT_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Keyword arguments of ``asyncpg.connect`` / ``create_pool``."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.username,
            "password": self.password,
            "database": self.database,
            "timeout": timeout,
            "ssl": self._tls_context(),
        }

    def _tls_context(self) -> ssl.SSLContext | bool:
        if self.ssl_mode == "none":
            return False
        if self.ssl_mode == "require":
            return _unverified_tls()
        context = ssl.create_default_context(cadata=self.ca_pem)
        context.check_hostname = self.ssl_mode == "verify-full"
        return context

    @property
    def ca_file(self) -> str | None:
        """``ca_pem`` as a file, for libpq's ``sslrootcert`` (written once per certificate)."""
        if self.ca_pem is None:
            return None
        digest = hashlib.sha256(self.ca_pem.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / "localdms-certificates" / f"{digest}.pem"
        if not path.exists():
            path.parent.mkdir(mode=0o700, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(self.ca_pem)
            partial.replace(path)
        return str(path)

    def psycopg2_arguments(self, timeout: float = CONNECT_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Keyword arguments of ``psycopg2.connect`` (libpq's own sslmode)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.username,
            "password": self.password,
            "dbname": self.database,
            "connect_timeout": int(timeout),
            "sslmode": self.libpq_sslmode,
            **({"sslrootcert": self.ca_file} if self.ca_file else {}),
        }

    def libpq_uri(self, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
        """A libpq URI (ADBC). It holds the password: never log it."""
        user = urllib.parse.quote(self.username, safe="")
        password = urllib.parse.quote(self.password, safe="")
        database = urllib.parse.quote(self.database, safe="")
        return (
            f"postgresql://{user}:{password}@{self.host}:{self.port}/{database}"
            f"?sslmode={self.libpq_sslmode}&connect_timeout={int(timeout)}"
            + (f"&sslrootcert={urllib.parse.quote(self.ca_file)}" if self.ca_file else "")
        )

    @property
    def libpq_sslmode(self) -> str:
        return "disable" if self.ssl_mode == "none" else self.ssl_mode

    def __repr__(self) -> str:  # never show the password
        return (
            f"PostgresSource(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"username={self.username!r})"
        )

    @classmethod
    def from_endpoint(
        cls,
        fields: dict[str, Any],
        settings: dict[str, Any],
        secret: dict[str, Any] | None = None,
        ca_pem: str | None = None,
    ) -> PostgresSource:
        """Take each value from the Secrets Manager secret (when the endpoint names one), then
        PostgreSQLSettings, then the endpoint's own fields.

        Args:
            secret: the endpoint's secret as DMS reads it (``username``, ``password``, ``host``,
                ``port``, ``dbname``, the form RDS writes); None to check the endpoint without it
                (then the connection values may come from the secret later).
            ca_pem: the PEM of the endpoint's CertificateArn, for SslMode verify-ca/verify-full.
        """
        secret = secret or {}
        values = {
            "ServerName": secret.get("host") or settings.get("ServerName") or fields.get("ServerName"),
            "Port": secret.get("port") or settings.get("Port") or fields.get("Port"),
            "DatabaseName": secret.get("dbname") or settings.get("DatabaseName")
            or fields.get("DatabaseName"),
            "Username": secret.get("username") or settings.get("Username") or fields.get("Username"),
            "Password": secret.get("password") or settings.get("Password") or fields.get("Password"),
        }  # fmt: skip
        uses_secret = bool(settings.get("SecretsManagerSecretId"))
        if uses_secret and not settings.get("SecretsManagerAccessRoleArn"):
            raise InvalidParameterValueException(
                "PostgreSQLSettings SecretsManagerSecretId needs SecretsManagerAccessRoleArn, the "
                "role DMS assumes to read the secret."
            )
        missing = [key for key, value in values.items() if value in (None, "")]
        if missing and not (uses_secret and not secret):
            raise InvalidParameterValueException(
                "A PostgreSQL source endpoint needs "
                + ", ".join(missing)
                + (" (in its Secrets Manager secret, or as parameters)" if uses_secret
                   else " (as parameters or in PostgreSQLSettings, or a Secrets Manager secret)")
                + "."
            )  # fmt: skip
        mode = ssl_mode(fields.get("SslMode"), fields.get("CertificateArn"))
        slot = str(settings.get("SlotName") or "")
        if slot and not re.fullmatch(r"[a-z0-9_]{1,63}", slot):
            raise InvalidParameterValueException(
                f"PostgreSQLSettings SlotName={slot!r} is not a replication slot name: use 1 to 63 "
                "lower-case letters, digits and underscores."
            )
        return cls(
            host=str(values["ServerName"] or ""),
            port=int(values["Port"] or 0),
            database=str(values["DatabaseName"] or ""),
            username=str(values["Username"] or ""),
            password=str(values["Password"] or ""),
            slot_name=slot,
            fail_tasks_on_lob_truncation=setting_flag(settings.get("FailTasksOnLobTruncation")),
            ssl_mode=mode,
            ca_pem=ca_pem if mode in ("verify-ca", "verify-full") else None,
        )


SSL_MODES = ("none", "require", "verify-ca", "verify-full")


def ssl_mode(value: Any, certificate_arn: Any) -> str:
    """An endpoint's SslMode, checked as DMS checks it: ``verify-ca`` and ``verify-full`` need
    the CA certificate as a DMS certificate (``CertificateArn``, from ImportCertificate).

    Example:
        >>> ssl_mode("REQUIRE", None)
        'require'
    """
    mode = str(value or "none").lower()
    if mode not in SSL_MODES:
        raise InvalidParameterValueException(
            f"SslMode {value!r} is not valid: use none, require, verify-ca or verify-full."
        )
    if mode in ("verify-ca", "verify-full") and not certificate_arn:
        raise InvalidParameterValueException(
            f"SslMode {mode} needs a CertificateArn: import the CA certificate that signed the "
            "server's certificate (aws dms import-certificate) and give its ARN, or use SslMode "
            "require (encrypted, not verified)."
        )
    return mode


def _unverified_tls() -> ssl.SSLContext:
    """TLS as DMS's SslMode require: encrypted, with no certificate or host check."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
