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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dms_spec.endpoint_settings import parse_extra_connection_attributes, setting_flag
from dms_spec.s3_layout import decode_delimiter, load_extension, table_prefix
from localdms.exceptions import InvalidParameterValueException

__all__ = ["PostgresSource", "S3Target", "parse_extra_connection_attributes"]

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


def _bad(setting: str, value: Any, valid: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(
        f"S3Settings {setting}={value!r} is not valid for localdms: {valid}."
    )


@dataclass(frozen=True)
class S3Target:
    """What localdms does with an S3 target endpoint (AWS DMS User Guide: CHAP_Target.S3)."""

    bucket_name: str
    bucket_folder: str = ""
    data_format: str = "csv"
    compression: str = "none"
    csv_delimiter: str = ","
    csv_row_delimiter: str = "\n"
    csv_null_value: str = ""
    add_column_name: bool = False
    include_op_for_full_load: bool = False
    timestamp_column_name: str = ""
    max_file_size_kb: int = 1_048_576
    cdc_inserts_only: bool = False
    cdc_inserts_and_updates: bool = False
    cdc_max_batch_interval: int = 60
    """Seconds; a CDC file is written at least this often while changes arrive."""
    cdc_min_file_size_kb: int = 32_000
    """A CDC file is written as soon as a table's pending changes reach this size."""
    date_partition_enabled: bool = False
    date_partition_sequence: str = "YYYYMMDD"
    date_partition_delimiter: str = "SLASH"
    date_partition_timezone: str = "UTC"
    parquet_version: str = "parquet-1-0"
    parquet_encoding: str = "rle-dictionary"
    parquet_row_group_length: int = 10_000
    parquet_data_page_size: int = 1_048_576
    parquet_dict_page_size_limit: int = 1_048_576
    parquet_enable_statistics: bool = True
    parquet_timestamp_in_millisecond: bool = False

    @property
    def extension(self) -> str:
        """The LOAD and CDC files' extension (``dms_spec.s3_layout``)."""
        return load_extension(self.data_format, self.compression)

    def table_prefix(self, schema: str, table: str) -> str:
        """``[BucketFolder/]schema/table/`` (``dms_spec.s3_layout``)."""
        return table_prefix(self.bucket_folder, schema, table)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> S3Target:
        """Build from merged S3Settings; raise InvalidParameterValueException on bad values."""
        bucket = settings.get("BucketName")
        if not bucket or not isinstance(bucket, str):
            raise InvalidParameterValueException(
                "The S3 target endpoint needs S3Settings.BucketName (the bucket DMS writes to)."
            )
        data_format = str(settings.get("DataFormat", "csv")).lower()
        if data_format not in ("csv", "parquet"):
            raise _bad("DataFormat", data_format, "valid values are csv and parquet")
        compression = str(settings.get("CompressionType", "none")).lower()
        if compression not in ("none", "gzip"):
            raise _bad("CompressionType", compression, "valid values are none and gzip")
        delimiter = decode_delimiter(str(settings.get("CsvDelimiter", ",")))
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise _bad("CsvDelimiter", delimiter, "one character other than a quote or newline")
        row_delimiter = decode_delimiter(str(settings.get("CsvRowDelimiter", "\n")))
        if not row_delimiter or '"' in row_delimiter or delimiter in row_delimiter:
            raise _bad(
                "CsvRowDelimiter", row_delimiter, "a non-empty string with no quote or delimiter"
            )
        if not setting_flag(settings.get("Rfc4180"), True):
            raise _bad("Rfc4180", settings.get("Rfc4180"), "localdms always quotes per RFC 4180")
        try:
            max_file_size = int(settings.get("MaxFileSize", 1_048_576))
        except (TypeError, ValueError) as exc:
            raise _bad("MaxFileSize", settings.get("MaxFileSize"), "1 to 1048576 (KB)") from exc
        if not 1 <= max_file_size <= 1_048_576:
            raise _bad("MaxFileSize", max_file_size, "1 to 1048576 (KB)")
        return cls(
            bucket_name=bucket,
            bucket_folder=str(settings.get("BucketFolder", "")),
            data_format=data_format,
            compression=compression,
            csv_delimiter=delimiter,
            csv_row_delimiter=row_delimiter,
            csv_null_value=str(settings.get("CsvNullValue", "")),
            add_column_name=setting_flag(settings.get("AddColumnName"), False),
            include_op_for_full_load=setting_flag(settings.get("IncludeOpForFullLoad"), False),
            timestamp_column_name=str(settings.get("TimestampColumnName", "")),
            max_file_size_kb=max_file_size,
            **_cdc_settings(settings),
            **_parquet_settings(settings),
        )


def _int_setting(settings: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = settings.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise _bad(name, value, f"an integer from {low} to {high}") from exc
    if not low <= number <= high:
        raise _bad(name, value, f"an integer from {low} to {high}")
    return number


def _parquet_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The S3Settings of Parquet files, validated as DMS does."""
    version = str(settings.get("ParquetVersion", "parquet-1-0")).lower().replace("_", "-")
    if version not in ("parquet-1-0", "parquet-2-0"):
        raise _bad("ParquetVersion", version, "parquet-1-0 or parquet-2-0")
    encoding = str(settings.get("EncodingType", "rle-dictionary")).lower().replace("_", "-")
    if encoding not in ("rle-dictionary", "plain", "plain-dictionary"):
        raise _bad("EncodingType", encoding, "rle-dictionary, plain or plain-dictionary")
    return {
        "parquet_version": version,
        "parquet_encoding": encoding,
        "parquet_row_group_length": _int_setting(
            settings, "RowGroupLength", 10_000, 1, 100_000_000
        ),
        "parquet_data_page_size": _int_setting(
            settings, "DataPageSize", 1_048_576, 1024, 1_073_741_824
        ),
        "parquet_dict_page_size_limit": _int_setting(
            settings, "DictPageSizeLimit", 1_048_576, 1024, 1_073_741_824
        ),
        "parquet_enable_statistics": setting_flag(settings.get("EnableStatistics"), True),
        "parquet_timestamp_in_millisecond": setting_flag(
            settings.get("ParquetTimestampInMillisecond"), False
        ),
    }


def _cdc_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The S3Settings that shape CDC files, validated as DMS does."""
    inserts_only = setting_flag(settings.get("CdcInsertsOnly"), False)
    inserts_and_updates = setting_flag(settings.get("CdcInsertsAndUpdates"), False)
    if inserts_only and inserts_and_updates:
        raise InvalidParameterValueException(
            "S3Settings CdcInsertsOnly and CdcInsertsAndUpdates cannot both be true."
        )
    if setting_flag(settings.get("PreserveTransactions"), False):
        raise _bad(
            "PreserveTransactions", settings.get("PreserveTransactions"),
            "transaction-order files (CdcPath) are not emulated; CDC files are written per table",
        )  # fmt: skip
    sequence = str(settings.get("DatePartitionSequence", "YYYYMMDD")).upper()
    if sequence not in ("YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"):
        raise _bad(
            "DatePartitionSequence", sequence, "YYYYMMDD, YYYYMMDDHH, YYYYMM, MMYYYYDD or DDMMYYYY"
        )
    delimiter = str(settings.get("DatePartitionDelimiter", "SLASH")).upper()
    if delimiter not in ("SLASH", "DASH", "UNDERSCORE", "NONE"):
        raise _bad("DatePartitionDelimiter", delimiter, "SLASH, DASH, UNDERSCORE or NONE")
    timezone = str(settings.get("DatePartitionTimezone") or "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _bad("DatePartitionTimezone", timezone, "an Area/Location name") from exc
    return {
        "cdc_inserts_only": inserts_only,
        "cdc_inserts_and_updates": inserts_and_updates,
        "cdc_max_batch_interval": _int_setting(settings, "CdcMaxBatchInterval", 60, 1, 3600),
        "cdc_min_file_size_kb": _int_setting(settings, "CdcMinFileSize", 32_000, 1, 1_048_576),
        "date_partition_enabled": setting_flag(settings.get("DatePartitionEnabled"), False),
        "date_partition_sequence": sequence,
        "date_partition_delimiter": delimiter,
        "date_partition_timezone": timezone,
    }


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
