"""Endpoint settings that localdms acts on: the PostgreSQL source and the S3 target.

Values arrive as ``S3Settings`` / ``PostgreSQLSettings`` objects or as ExtraConnectionAttributes
(``key=value;...`` in lower camel case); both are accepted, the settings object winning.
Settings DMS has that change nothing here are kept and reported back, but not acted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localdms.exceptions import InvalidParameterValueException

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


def parse_extra_connection_attributes(text: str | None) -> dict[str, str]:
    """Parse ``key=value;key=value`` into a dict with the keys in UpperCamelCase.

    Example:
        >>> parse_extra_connection_attributes("bucketFolder=raw;compressionType=GZIP;")
        {'BucketFolder': 'raw', 'CompressionType': 'GZIP'}
    """
    result: dict[str, str] = {}
    for part in (text or "").split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            key = key.strip()
            if key:
                result[key[0].upper() + key[1:]] = value.strip()
    return result


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "y", "yes", "1")


def _bad(setting: str, value: Any, valid: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(
        f"S3Settings {setting}={value!r} is not valid for localdms: {valid}."
    )


@dataclass(frozen=True)
class S3Target:
    """What localdms does with an S3 target endpoint (reference §5)."""

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

    @property
    def extension(self) -> str:
        return ".csv.gz" if self.compression == "gzip" else ".csv"

    def table_prefix(self, schema: str, table: str) -> str:
        """``[BucketFolder/]schema/table/``."""
        folder = self.bucket_folder.strip("/")
        return f"{folder + '/' if folder else ''}{schema}/{table}/"

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> S3Target:
        """Build from merged S3Settings; raise InvalidParameterValueException on bad values."""
        bucket = settings.get("BucketName")
        if not bucket or not isinstance(bucket, str):
            raise InvalidParameterValueException(
                "The S3 target endpoint needs S3Settings.BucketName (the bucket DMS writes to)."
            )
        data_format = str(settings.get("DataFormat", "csv")).lower()
        if data_format != "csv":
            raise _bad("DataFormat", data_format, "localdms writes csv")
        compression = str(settings.get("CompressionType", "none")).lower()
        if compression not in ("none", "gzip"):
            raise _bad("CompressionType", compression, "valid values are none and gzip")
        delimiter = str(settings.get("CsvDelimiter", ","))
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise _bad("CsvDelimiter", delimiter, "one character other than a quote or newline")
        row_delimiter = str(settings.get("CsvRowDelimiter", "\n"))
        if not row_delimiter or '"' in row_delimiter or delimiter in row_delimiter:
            raise _bad(
                "CsvRowDelimiter", row_delimiter, "a non-empty string with no quote or delimiter"
            )
        if not _flag(settings.get("Rfc4180"), True):
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
            add_column_name=_flag(settings.get("AddColumnName"), False),
            include_op_for_full_load=_flag(settings.get("IncludeOpForFullLoad"), False),
            timestamp_column_name=str(settings.get("TimestampColumnName", "")),
            max_file_size_kb=max_file_size,
        )


@dataclass(frozen=True)
class PostgresSource:
    """How to reach a PostgreSQL source endpoint."""

    host: str
    port: int
    database: str
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password
        return (
            f"PostgresSource(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"username={self.username!r})"
        )

    @classmethod
    def from_endpoint(cls, fields: dict[str, Any], settings: dict[str, Any]) -> PostgresSource:
        """Take each value from PostgreSQLSettings first, then the endpoint's own fields."""
        values = {
            "ServerName": settings.get("ServerName") or fields.get("ServerName"),
            "Port": settings.get("Port") or fields.get("Port"),
            "DatabaseName": settings.get("DatabaseName") or fields.get("DatabaseName"),
            "Username": settings.get("Username") or fields.get("Username"),
            "Password": settings.get("Password") or fields.get("Password"),
        }
        missing = [key for key, value in values.items() if value in (None, "")]
        if missing:
            raise InvalidParameterValueException(
                "A PostgreSQL source endpoint needs "
                + ", ".join(missing)
                + " (as parameters or in PostgreSQLSettings)."
            )
        return cls(
            host=str(values["ServerName"]),
            port=int(values["Port"]),  # type: ignore[arg-type]
            database=str(values["DatabaseName"]),
            username=str(values["Username"]),
            password=str(values["Password"]),
        )
