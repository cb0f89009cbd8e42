"""An S3 target endpoint's settings, parsed once for the flow and for localdms.

The flow reads the target endpoint's S3Settings (``flows/target.py``) and localdms writes by them
(``localdms/endpoint_settings.py``): both take them from ``S3Target.from_settings``, so the two
agree on every value and default, and a value DMS would refuse is refused with the same words.
What localdms does not emulate (``Rfc4180=false``, ``PreserveTransactions``) it refuses on top, in
its own module.

Example:
    >>> target = S3Target.from_settings({"BucketName": "lake", "BucketFolder": "/raw/",
    ...                                  "CsvRowDelimiter": "\\\\n", "DataFormat": "parquet"})
    >>> target.folder, target.csv_row_delimiter, target.extension, target.table_prefix("s", "t")
    ('raw', '\\n', '.parquet', 'raw/s/t/')
    >>> S3Target.from_settings({"BucketName": "lake", "CompressionType": "zstd"})
    Traceback (most recent call last):
    dms_spec.s3_target.S3SettingsError: S3Settings CompressionType='zstd' is not valid: valid values are none and gzip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dms_spec.endpoint_settings import setting_flag
from dms_spec.s3_layout import decode_delimiter, load_extension, table_prefix


class S3SettingsError(ValueError):
    """An S3Settings value DMS does not take.

    Args:
        setting: the member's name.
        value: the value given.
        valid: what is valid instead.
    """

    def __init__(self, setting: str, value: Any, valid: str) -> None:
        self.setting, self.value, self.valid = setting, value, valid
        super().__init__(f"S3Settings {setting}={value!r} is not valid: {valid}.")


@dataclass(frozen=True)
class S3Target:
    """An S3 target endpoint's settings as DMS reads them (AWS DMS User Guide: CHAP_Target.S3,
    and the S3Settings reference for the values and defaults)."""

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
    def cdc_op_column(self) -> bool:
        """Whether CDC rows carry the Op field (AWS DMS User Guide: CHAP_Target.S3, "Indicating
        source DB operations in migrated S3 data"): always, unless CdcInsertsOnly or
        CdcInsertsAndUpdates is set, and then as IncludeOpForFullLoad says."""
        if self.cdc_inserts_only or self.cdc_inserts_and_updates:
            return self.include_op_for_full_load
        return True

    @property
    def cdc_ops(self) -> frozenset[str]:
        """The operations CDC files hold: all, inserts only, or inserts and updates."""
        if self.cdc_inserts_only:
            return frozenset("I")
        if self.cdc_inserts_and_updates:
            return frozenset("IU")
        return frozenset("IUD")

    @property
    def extension(self) -> str:
        """The LOAD and CDC files' extension (``dms_spec.s3_layout``)."""
        return load_extension(self.data_format, self.compression)

    def table_prefix(self, schema: str, table: str) -> str:
        """``[BucketFolder/]schema/table/`` (``dms_spec.s3_layout``)."""
        return table_prefix(self.bucket_folder, schema, table)

    @property
    def folder(self) -> str:
        """BucketFolder without its leading and trailing slashes ("" for none)."""
        return self.bucket_folder.strip("/")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> S3Target:
        """Build from merged S3Settings (``dms_spec.endpoint_settings.merged_settings``); a
        member given empty counts as not given.

        Raises:
            S3SettingsError: a value DMS does not take, naming it and what is valid.
        """
        settings = {key: value for key, value in settings.items() if value not in (None, "")}
        bucket = settings.get("BucketName")
        if not bucket or not isinstance(bucket, str):
            raise S3SettingsError(
                "BucketName", bucket, "the bucket DMS writes to (an S3 target endpoint needs one)"
            )
        data_format = str(settings.get("DataFormat", "csv")).lower()
        if data_format not in ("csv", "parquet"):
            raise S3SettingsError("DataFormat", data_format, "valid values are csv and parquet")
        compression = str(settings.get("CompressionType", "none")).lower()
        if compression not in ("none", "gzip"):
            raise S3SettingsError("CompressionType", compression, "valid values are none and gzip")
        delimiter = decode_delimiter(str(settings.get("CsvDelimiter", ",")))
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise S3SettingsError(
                "CsvDelimiter", delimiter, "one character other than a quote or newline"
            )
        row_delimiter = decode_delimiter(str(settings.get("CsvRowDelimiter", "\n")))
        if not row_delimiter or '"' in row_delimiter or delimiter in row_delimiter:
            raise S3SettingsError(
                "CsvRowDelimiter", row_delimiter, "a non-empty string with no quote or delimiter"
            )
        try:
            max_file_size = int(settings.get("MaxFileSize", 1_048_576))
        except (TypeError, ValueError) as exc:
            raise S3SettingsError(
                "MaxFileSize", settings.get("MaxFileSize"), "1 to 1048576 (KB)"
            ) from exc
        if not 1 <= max_file_size <= 1_048_576:
            raise S3SettingsError("MaxFileSize", max_file_size, "1 to 1048576 (KB)")
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


INT_MAX = 2**31 - 1
"""The guide's "any valid integer" for the Parquet sizes and the CDC batch conditions."""


def _int_setting(
    settings: dict[str, Any], name: str, default: int, low: int = 1, high: int = INT_MAX
) -> int:
    value = settings.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise S3SettingsError(name, value, f"an integer from {low} to {high}") from exc
    if not low <= number <= high:
        raise S3SettingsError(name, value, f"an integer from {low} to {high}")
    return number


def _parquet_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The S3Settings of Parquet files: the values the guide lists (CHAP_Target.S3)."""
    version = str(settings.get("ParquetVersion", "parquet-1-0")).lower().replace("_", "-")
    if version not in ("parquet-1-0", "parquet-2-0"):
        raise S3SettingsError("ParquetVersion", version, "parquet-1-0 or parquet-2-0")
    encoding = str(settings.get("EncodingType", "rle-dictionary")).lower().replace("_", "-")
    if encoding not in ("rle-dictionary", "plain", "plain-dictionary"):
        raise S3SettingsError("EncodingType", encoding, "rle-dictionary, plain or plain-dictionary")
    return {
        "parquet_version": version,
        "parquet_encoding": encoding,
        "parquet_row_group_length": _int_setting(settings, "RowGroupLength", 10_000),
        "parquet_data_page_size": _int_setting(settings, "DataPageSize", 1_048_576),
        "parquet_dict_page_size_limit": _int_setting(settings, "DictPageSizeLimit", 1_048_576),
        "parquet_enable_statistics": setting_flag(settings.get("EnableStatistics"), True),
        "parquet_timestamp_in_millisecond": setting_flag(
            settings.get("ParquetTimestampInMillisecond"), False
        ),
    }


def _cdc_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The S3Settings that shape CDC files: the values the guide lists (CHAP_Target.S3)."""
    inserts_only = setting_flag(settings.get("CdcInsertsOnly"), False)
    inserts_and_updates = setting_flag(settings.get("CdcInsertsAndUpdates"), False)
    if inserts_only and inserts_and_updates:
        raise S3SettingsError(
            "CdcInsertsAndUpdates", True, "not together with CdcInsertsOnly (one of the two)"
        )
    sequence = str(settings.get("DatePartitionSequence", "YYYYMMDD")).upper()
    if sequence not in ("YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"):
        raise S3SettingsError(
            "DatePartitionSequence", sequence, "YYYYMMDD, YYYYMMDDHH, YYYYMM, MMYYYYDD or DDMMYYYY"
        )
    delimiter = str(settings.get("DatePartitionDelimiter", "SLASH")).upper()
    if delimiter not in ("SLASH", "DASH", "UNDERSCORE", "NONE"):
        raise S3SettingsError(
            "DatePartitionDelimiter", delimiter, "SLASH, DASH, UNDERSCORE or NONE"
        )
    timezone = str(settings.get("DatePartitionTimezone") or "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise S3SettingsError("DatePartitionTimezone", timezone, "an Area/Location name") from exc
    return {
        "cdc_inserts_only": inserts_only,
        "cdc_inserts_and_updates": inserts_and_updates,
        "cdc_max_batch_interval": _int_setting(settings, "CdcMaxBatchInterval", 60),
        "cdc_min_file_size_kb": _int_setting(settings, "CdcMinFileSize", 32_000),
        "date_partition_enabled": setting_flag(settings.get("DatePartitionEnabled"), False),
        "date_partition_sequence": sequence,
        "date_partition_delimiter": delimiter,
        "date_partition_timezone": timezone,
    }
