"""How captured changes become DMS's CDC files on S3 (AWS DMS User Guide: CHAP_Target.S3, "Using Amazon S3 as a target").

A CDC file holds one table's changes in commit order, one row per change: the Op column (``I``,
``U`` or ``D``; see ``op_column``), the TimestampColumnName column (the commit time), then the
table's columns as the full load writes them. An update row is the after-image; a delete row is
the before-image PostgreSQL sends: the key columns only (the others NULL) unless the table has
REPLICA IDENTITY FULL. Files are named ``yyyyMMdd-HHmmssSSS.csv`` (UTC creation time) under the
table's folder, or under ``<table>/<date>/`` with DatePartitionEnabled (the date of the first
commit in the file).

Values arrive as PostgreSQL's text output in the same session settings as the full load, so the
few types the full load reformats in SQL are reformatted here the same way
(``columns.OutputColumn.cdc_text``): timestamptz without its ``+00``, booleans as
``true``/``false``, char(n) trimmed, bytea without ``\\x``, money as a plain number. The columns
and their order are ``columns.output_columns``, as for the full load.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from localdms.endpoint_settings import S3Target
from localdms.engine.columns import ColumnKind, OutputColumn, output_columns
from localdms.engine.pgoutput import UNCHANGED_TOAST, Value
from localdms.table_mappings import TablePlan

PARTITION_FORMATS = {
    "YYYYMMDD": ("%Y", "%m", "%d"),
    "YYYYMMDDHH": ("%Y", "%m", "%d", "%H"),
    "YYYYMM": ("%Y", "%m"),
    "MMYYYYDD": ("%m", "%Y", "%d"),
    "DDMMYYYY": ("%d", "%m", "%Y"),
}
PARTITION_DELIMITERS = {"SLASH": "/", "DASH": "-", "UNDERSCORE": "_", "NONE": ""}


def cdc_file_name(created: datetime, extension: str) -> str:
    """``yyyyMMdd-HHmmssSSS`` of the (UTC) creation time, plus the extension.

    Example:
        >>> cdc_file_name(datetime(2023, 9, 5, 15, 12, 44, 585123, tzinfo=UTC), ".csv")
        '20230905-151244585.csv'
    """
    stamp = created.astimezone(UTC)
    return f"{stamp:%Y%m%d-%H%M%S}{stamp.microsecond // 1000:03d}{extension}"


def partition_folder(target: S3Target, commit_time: datetime) -> str:
    """The DatePartitionEnabled folder (with a trailing slash), or ``""`` when disabled.

    Example:
        >>> target = S3Target("b", date_partition_enabled=True, date_partition_delimiter="DASH")
        >>> partition_folder(target, datetime(2022, 10, 23, 1, 38, tzinfo=UTC))
        '2022-10-23/'
    """
    if not target.date_partition_enabled:
        return ""
    when = commit_time.astimezone(ZoneInfo(target.date_partition_timezone))
    parts = [when.strftime(piece) for piece in PARTITION_FORMATS[target.date_partition_sequence]]
    delimiter = PARTITION_DELIMITERS[target.date_partition_delimiter]
    return (delimiter.join(parts) if delimiter else "".join(parts)) + "/"


def commit_timestamp(commit_time: datetime) -> str:
    """The TimestampColumnName value of a change: ``yyyy-MM-dd HH:mm:ss.SSSSSS`` (UTC)."""
    return commit_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def op_column(target: S3Target) -> bool:
    """Whether CDC rows carry the Op field (``S3Target.cdc_op_column``, which the lake reads by)."""
    return target.cdc_op_column


def written_ops(target: S3Target) -> frozenset[str]:
    """The operations CDC files hold (``S3Target.cdc_ops``)."""
    return target.cdc_ops


class LobOverLimit(Exception):
    """A change holds a LOB value over LobMaxSize, and the policy (``str()``) suspends the table
    or stops the task."""


@dataclass
class TableOutput:
    """Renders one table's changes and holds them until the next flush.

    Args:
        plan: the table, its kept columns and their output names.
        target: the S3 settings.
    """

    plan: TablePlan
    target: S3Target
    rows: list[bytes] = field(default_factory=list)
    """The pending rows as CSV lines (CSV targets)."""
    records: list[list[str | None]] = field(default_factory=list)
    """The pending rows as text values (Parquet targets; typed when the file is written)."""
    size: int = 0
    first_commit: datetime | None = None
    truncated: bool = False
    counts: dict[str, int] = field(default_factory=lambda: {"I": 0, "U": 0, "D": 0, "DDL": 0})
    unchanged_toast_seen: bool = False
    lob_limit: int | None = None
    """Where LOB values are cut (limited LOB mode), as in the full load."""
    truncation_policy: str = "LOG_ERROR"
    """What a change with a LOB value over ``lob_limit`` does (DataTruncationErrorPolicy):
    LOG_ERROR writes it cut, IGNORE_RECORD leaves it out, and SUSPEND_TABLE and STOP_TASK raise
    ``LobOverLimit`` for the capture to act on."""
    suspended: bool = False
    """The table was suspended (SUSPEND_TABLE): its later changes are not written."""
    truncation_seen: bool = False
    """A change held a LOB value over ``lob_limit`` (the capture warns once per table)."""

    def __post_init__(self) -> None:
        self._ops = written_ops(self.target)
        self._op_column = op_column(self.target)
        self._columns = output_columns(self.plan, self.target, self._op_column, self.lob_limit)
        self._layouts: dict[tuple[str, ...], list[tuple[int, OutputColumn]]] = {}

    def _layout(self, columns: tuple[str, ...]) -> list[tuple[int, OutputColumn]]:
        """Where each data column is in the relation's columns (-1: not sent), cached."""
        layout = self._layouts.get(columns)
        if layout is None:
            position = {name: index for index, name in enumerate(columns)}
            layout = [
                (position.get(column.source.name, -1), column)
                for column in self._columns
                if column.source is not None
            ]
            self._layouts[columns] = layout
        return layout

    def add(
        self,
        op: str,
        columns: tuple[str, ...],
        values: Sequence[Value],
        commit_time: datetime,
    ) -> None:
        """Add one change (values in the relation's column order) if the target keeps it."""
        self.counts[op] += 1
        if op not in self._ops:
            return
        layout = self._layout(columns)
        if self.lob_limit is not None and self._over_limit(layout, values):
            self.truncation_seen = True
            if self.truncation_policy == "IGNORE_RECORD":
                return
            if self.truncation_policy in ("SUSPEND_TABLE", "STOP_TASK"):
                raise LobOverLimit(self.truncation_policy)
        fields: list[str | None] = [
            op if column.kind == ColumnKind.OP else commit_timestamp(commit_time)
            for column in self._columns
            if column.source is None
        ]
        for index, column in layout:
            value = values[index] if index >= 0 else None
            if value is UNCHANGED_TOAST:
                self.unchanged_toast_seen = True
                value = None
            if value is not None and (column.reformatted or column.truncates):
                value = column.cdc_text(str(value))
            fields.append(value)  # type: ignore[arg-type]
        self.append_row(fields, commit_time)

    @staticmethod
    def _over_limit(layout: list[tuple[int, OutputColumn]], values: Sequence[Value]) -> bool:
        for index, column in layout:
            if column.truncates and index >= 0:
                value = values[index]
                if isinstance(value, str) and column.over_limit(value):
                    return True
        return False

    @property
    def pending(self) -> bool:
        """Whether rows wait for the next file."""
        return bool(self.rows or self.records)

    def append_row(self, fields: Sequence[str | None], commit_time: datetime) -> None:
        if self.first_commit is None:
            self.first_commit = commit_time
        if self.target.data_format == "parquet":
            self.records.append(list(fields))
            self.size += sum(len(value) for value in fields if value is not None)
            return
        field = self._field
        line = self.target.csv_delimiter.join([field(value) for value in fields])
        row = (line + self.target.csv_row_delimiter).encode()
        self.rows.append(row)
        self.size += len(row)

    def truncate(self) -> None:
        """TRUNCATE: the table's pending rows and (at the flush) all its files go."""
        self.rows.clear()
        self.records.clear()
        self.size = 0
        self.first_commit = None
        self.truncated = True
        self.counts["DDL"] += 1

    def header(self) -> bytes:
        if not self.target.add_column_name:
            return b""
        return (
            self.target.csv_delimiter.join(self._field(c.header) for c in self._columns)
            + self.target.csv_row_delimiter
        ).encode()

    def file_body(self) -> bytes:
        if self.target.data_format == "parquet":
            # Imported here: pyarrow is loaded only by processes that write Parquet.
            from localdms.engine.parquet_writer import cdc_parquet_file, file_schema

            schema = file_schema(self.plan, self.target, self._op_column)
            return cdc_parquet_file(schema, self.records, self.target)
        body = self.header() + b"".join(self.rows)
        return gzip.compress(body, compresslevel=6) if self.target.compression == "gzip" else body

    def reset(self) -> None:
        self.rows, self.size, self.first_commit, self.truncated = [], 0, None, False
        self.records = []
        self.counts = {"I": 0, "U": 0, "D": 0, "DDL": 0}

    def _field(self, value: str | None) -> str:
        """One CSV field as PostgreSQL's COPY (FORMAT csv) quotes it, so LOAD and CDC files agree."""
        target = self.target
        if value is None:
            return target.csv_null_value
        if (
            value == target.csv_null_value
            or target.csv_delimiter in value
            or '"' in value
            or "\n" in value
            or "\r" in value
            or value == "\\."
        ):
            return '"' + value.replace('"', '""') + '"'
        return value
