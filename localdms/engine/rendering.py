"""How PostgreSQL values become DMS CSV text (AWS DMS User Guide: CHAP_Target.S3 on .csv files, CHAP_Source.PostgreSQL on source data types).

PostgreSQL does the formatting: localdms builds one ``SELECT`` whose expressions render each
value the way DMS writes it, and streams ``COPY (SELECT ...) TO STDOUT (FORMAT csv)``. No value is
touched in Python. Choices where the reference is UNCONFIRMED (each covered by a test):

* NULL is an empty field (or ``CsvNullValue`` when set); an empty string is ``""``, so the two stay
  distinguishable (PostgreSQL's CSV rule; DMS's stock behaviour here is unconfirmed).
* ``timestamp``/``timestamptz``: ``YYYY-MM-DD HH:MM:SS[.ffffff]`` as PostgreSQL prints it, with
  fractional seconds only when non-zero; timestamptz converted to UTC, no zone suffix. (A fixed
  six-digit ``to_char`` form costs PostgreSQL +54% CPU on a timestamp-heavy table, measured here,
  for a format the sources do not confirm.)
* ``boolean``: ``true``/``false`` (DMS maps it to CHAR(5) "false or true").
* ``bytea``: lowercase hex without the ``\\x`` prefix.
* ``char(n)``: trailing padding trimmed (``TrimSpaceInChar`` defaults to true).
* ``money``: a plain number (DMS maps it to NUMERIC(38,4)), no currency symbol.
* The Op column (``IncludeOpForFullLoad``) comes first, then the ``TimestampColumnName`` column,
  then the data columns. The header name of the Op column is ``Op``.
* LOB truncation at ``LobMaxSize`` is not emulated: values are written whole.
"""

from __future__ import annotations

import csv
import io

from psycopg import sql

from localdms.endpoint_settings import S3Target
from localdms.table_mappings import SourceColumn, TablePlan

SESSION_SETTINGS = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",  # money's text form, which pgoutput sends to change capture
}
"""Every source session's settings (full load and change capture alike), so that PostgreSQL's
text output is the same whatever the server's defaults."""

SESSION_SETUP = "; ".join(f"SET {name} = '{value}'" for name, value in SESSION_SETTINGS.items())
"""``SESSION_SETTINGS`` as statements, run on every full-load connection."""

SESSION_OPTIONS = " ".join(
    f"-c {name}={value.replace(' ', chr(92) + ' ')}" for name, value in SESSION_SETTINGS.items()
)
"""``SESSION_SETTINGS`` as libpq ``options`` (spaces escaped), for connections that cannot run
statements first (the replication protocol)."""


def column_expression(column: SourceColumn) -> sql.Composable:
    """The SELECT expression that renders one column as DMS writes it."""
    ident = sql.Identifier(column.name)
    base = column.base_type
    if base == "timestamptz":
        return sql.SQL("({} AT TIME ZONE 'UTC')").format(ident)
    if base in ("bool", "bpchar"):
        return sql.SQL("{}::text").format(ident)
    if base == "bytea":
        return sql.SQL("encode({}, 'hex')").format(ident)
    if base == "money":
        return sql.SQL("{}::numeric").format(ident)
    return ident


def select_statement(plan: TablePlan, target: S3Target, load_timestamp: str) -> str:
    """The SELECT whose COPY output is the table's LOAD file content.

    Args:
        plan: the table, its kept columns and its filter.
        target: the S3 settings (Op and timestamp columns).
        load_timestamp: the TimestampColumnName value for this load, already formatted.
    """
    expressions: list[sql.Composable] = []
    if target.include_op_for_full_load:
        expressions.append(sql.Literal("I"))
    if target.timestamp_column_name:
        expressions.append(sql.Literal(load_timestamp))
    expressions.extend(column_expression(column) for column, _ in plan.columns)
    statement = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(expressions),
        sql.Identifier(plan.source.schema, plan.source.name),
    )
    if plan.where is not None:
        statement = sql.SQL("{} WHERE {}").format(statement, plan.where)
    return statement.as_string(None)


def header_line(plan: TablePlan, target: S3Target) -> bytes:
    """The AddColumnName header row, quoted like the data, or ``b""`` when disabled."""
    if not target.add_column_name:
        return b""
    names = ["Op"] if target.include_op_for_full_load else []
    if target.timestamp_column_name:
        names.append(target.timestamp_column_name)
    names.extend(name for _, name in plan.columns)
    buffer = io.StringIO()
    csv.writer(
        buffer, delimiter=target.csv_delimiter, lineterminator=target.csv_row_delimiter
    ).writerow(names)
    return buffer.getvalue().encode()


class RowDelimiterTranslator:
    """Rewrite COPY's ``\\n`` row ends into ``CsvRowDelimiter``, leaving quoted newlines alone.

    COPY output is row-aligned per chunk but a quoted value may hold newlines, so quote parity is
    tracked across the chunk's quote-separated segments.

    Example:
        >>> RowDelimiterTranslator("\\r\\n").translate(b'a,"x\\ny"\\nb,c\\n')
        b'a,"x\\ny"\\r\\nb,c\\r\\n'
    """

    def __init__(self, row_delimiter: str) -> None:
        self.row_delimiter = row_delimiter.encode()
        self.in_quotes = False

    def translate(self, chunk: bytes) -> bytes:
        segments = chunk.split(b'"')
        for index, segment in enumerate(segments):
            if index:
                self.in_quotes = not self.in_quotes
            if not self.in_quotes and b"\n" in segment:
                segments[index] = segment.replace(b"\n", self.row_delimiter)
        return b'"'.join(segments)
