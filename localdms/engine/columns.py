"""The column plan of a table's files: which columns, in which order, under which header, read
with which SELECT expression and written as which Arrow type.

The CSV and Parquet full loads and the CDC files all take their columns from here, so the three
cannot disagree (AWS DMS User Guide: CHAP_Target.S3, "Indicating source DB operations in migrated
S3 data" for the Op column, ``TimestampColumnName`` under "Extra connection attributes", and
CHAP_Source.PostgreSQL, "Source data types"):

* the order is the Op column (when written), the ``TimestampColumnName`` column (when set), then
  the table's kept columns under their output names (after rename rules);
* a CSV value is PostgreSQL's text output in ``rendering.SESSION_SETTINGS`` with the few
  reformattings DMS's CSV form needs (``csv_expression`` in SQL for a full load, ``cdc_text`` on
  the text pgoutput sends for change capture; one table of types, ``REFORMATTED``, says which);
* a Parquet value is read with ``parquet_expression`` and written as ``arrow_type`` (the type
  map is in ``parquet_writer``'s docstring).

Example:
    >>> from localdms.endpoint_settings import S3Target
    >>> from localdms.table_mappings import SourceTable, TablePlan
    >>> table = SourceTable("s", "t", "table", (SourceColumn("id", "integer", "int4"),))
    >>> plan = TablePlan(table, "s", "t", ((table.columns[0], "id"),), None)
    >>> target = S3Target.from_settings({"BucketName": "b", "TimestampColumnName": "ts"})
    >>> [c.header for c in output_columns(plan, target, op_column=True)]
    ['Op', 'ts', 'id']
    >>> load_select(plan, target, "2024-01-02 03:04:05", parquet=False)
    'SELECT \\'2024-01-02 03:04:05\\', "id" FROM "s"."t"'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from psycopg import sql

from dms_spec.lob import is_lob_type
from localdms.endpoint_settings import S3Target
from localdms.table_mappings import SourceColumn, TablePlan

if TYPE_CHECKING:
    import pyarrow as pa

NUMERIC_TYPMOD = re.compile(r"numeric\((\d+),(\d+)\)")

REFORMATTED = frozenset({"timestamptz", "bool", "bpchar", "bytea", "money"})
"""Base types whose CSV value differs from PostgreSQL's text output (see ``csv_expression``)."""


class ColumnKind(StrEnum):
    """Where a column's values come from."""

    OP = "op"
    """The Op column: ``I`` in a full load, the change's operation in CDC files."""
    TIMESTAMP = "timestamp"
    """``TimestampColumnName``: the load's start in a full load, the commit time in CDC files."""
    DATA = "data"
    """A source column."""


@dataclass(frozen=True)
class OutputColumn:
    """One column of a table's files.

    Args:
        header: the name in the header row and the Parquet schema.
        kind: where the values come from.
        source: the source column (``kind`` DATA only).
    """

    header: str
    kind: ColumnKind
    source: SourceColumn | None = None
    lob_limit: int | None = None
    """Limited LOB mode's cut (``dms_spec.lob.limited_lob_size``): a LOB column's values are
    truncated to this many characters (bytes for bytea); None keeps them whole."""

    def _source(self) -> SourceColumn:
        if self.source is None:
            raise ValueError(f"{self.header} is a column DMS adds, not a source column")
        return self.source

    @property
    def truncates(self) -> bool:
        """Whether values are cut at ``lob_limit`` (a LOB column in limited LOB mode)."""
        return (
            self.source is not None
            and self.lob_limit is not None
            and is_lob_type(self.source.base_type)
        )

    @property
    def reformatted(self) -> bool:
        """Whether the CSV value differs from PostgreSQL's text output (``REFORMATTED``)."""
        return self.source is not None and self.source.base_type in REFORMATTED

    def csv_expression(self) -> sql.Composable:
        """The SELECT expression that renders a source column as DMS's CSV writes it.

        Example:
            >>> column = SourceColumn("paid", "boolean", "bool")
            >>> OutputColumn("paid", ColumnKind.DATA, column).csv_expression().as_string(None)
            '"paid"::text'
        """
        column = self._source()
        ident = sql.Identifier(column.name)
        base = column.base_type
        if self.truncates:
            limit = sql.Literal(self.lob_limit)
            if base == "bytea":
                return sql.SQL("encode(substring({} from 1 for {}), 'hex')").format(ident, limit)
            return sql.SQL("left({}::text, {})").format(ident, limit)
        if base == "timestamptz":
            return sql.SQL("({} AT TIME ZONE 'UTC')").format(ident)
        if base in ("bool", "bpchar"):
            return sql.SQL("{}::text").format(ident)
        if base == "bytea":
            return sql.SQL("encode({}, 'hex')").format(ident)
        if base == "money":
            return sql.SQL("{}::numeric").format(ident)
        return ident

    def cdc_text(self, value: str) -> str:
        """A pgoutput text value as ``csv_expression`` renders the same value.

        Example:
            >>> column = SourceColumn("t", "timestamp with time zone", "timestamptz")
            >>> OutputColumn("t", ColumnKind.DATA, column).cdc_text("2024-01-02 03:04:05.5+00")
            '2024-01-02 03:04:05.5'
        """
        base = self._source().base_type
        if self.truncates and self.lob_limit is not None:
            if base == "bytea":
                hex_digits = value[2:] if value.startswith("\\x") else value
                return hex_digits[: 2 * self.lob_limit]
            return value[: self.lob_limit]
        if base == "timestamptz":
            return value.replace("+00", "", 1)
        if base == "bool":
            return "true" if value == "t" else "false"
        if base == "bpchar":
            return value.rstrip(" ")
        if base == "bytea":
            return value[2:] if value.startswith("\\x") else value
        if base == "money":
            return value.replace("$", "").replace(",", "")
        return value

    def parquet_expression(self) -> sql.Composable:
        """The SELECT expression a Parquet load reads a source column with."""
        column = self._source()
        if self.truncates:
            ident, limit = sql.Identifier(column.name), sql.Literal(self.lob_limit)
            if column.base_type == "bytea":
                return sql.SQL("substring({} from 1 for {})").format(ident, limit)
            return sql.SQL("left({}::text, {})").format(ident, limit)
        return _parquet_read(column)[0]

    def arrow_type(self) -> pa.DataType:
        """The Arrow type the column is written as (the added columns are strings).

        Example:
            >>> column = SourceColumn("price", "numeric(12,2)", "numeric")
            >>> OutputColumn("price", ColumnKind.DATA, column).arrow_type()
            Decimal128Type(decimal128(12, 2))
        """
        if self.source is None:
            import pyarrow as pa

            return pa.string()
        return _parquet_read(self.source)[1]


def output_columns(
    plan: TablePlan, target: S3Target, op_column: bool, lob_limit: int | None = None
) -> tuple[OutputColumn, ...]:
    """The columns of the table's files, in order.

    Args:
        plan: the table and its kept columns under their output names.
        target: the S3 settings (``TimestampColumnName``).
        op_column: whether the files have the Op column (``IncludeOpForFullLoad`` for LOAD files,
            ``cdc_output.op_column`` for CDC files).
        lob_limit: where LOB values are cut (``OutputColumn.lob_limit``).
    """
    columns = [OutputColumn("Op", ColumnKind.OP)] if op_column else []
    if target.timestamp_column_name:
        columns.append(OutputColumn(target.timestamp_column_name, ColumnKind.TIMESTAMP))
    columns.extend(
        OutputColumn(name, ColumnKind.DATA, column, lob_limit) for column, name in plan.columns
    )
    return tuple(columns)


def load_select(
    plan: TablePlan,
    target: S3Target,
    load_timestamp: str,
    parquet: bool,
    lob_limit: int | None = None,
) -> str:
    """The SELECT whose rows are the table's LOAD files (COPY's CSV text, or ADBC's Arrow).

    Args:
        plan: the table, its kept columns and its filter.
        target: the S3 settings (Op and timestamp columns).
        load_timestamp: the TimestampColumnName value for this load, already formatted.
        parquet: read for Parquet (typed) rather than CSV (text).
        lob_limit: where LOB values are cut (limited LOB mode), or None.
    """
    expressions: list[sql.Composable] = []
    for column in output_columns(plan, target, target.include_op_for_full_load, lob_limit):
        if column.kind == ColumnKind.OP:
            expressions.append(sql.Literal("I"))
        elif column.kind == ColumnKind.TIMESTAMP:
            expressions.append(sql.Literal(load_timestamp))
        else:
            expressions.append(column.parquet_expression() if parquet else column.csv_expression())
    statement = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(expressions),
        sql.Identifier(plan.source.schema, plan.source.name),
    )
    if plan.where is not None:
        statement = sql.SQL("{} WHERE {}").format(statement, plan.where)
    return statement.as_string(None)


def _parquet_read(column: SourceColumn) -> tuple[sql.Composable, pa.DataType]:
    """How a Parquet load reads a column and the Arrow type it writes (coupled: a numeric wider
    than Arrow's decimals is read as text and written as a string)."""
    import pyarrow as pa

    ident = sql.Identifier(column.name)
    text = sql.SQL("{}::text").format(ident)
    simple = {
        "int2": pa.int16(),
        "int4": pa.int32(),
        "int8": pa.int64(),
        "float4": pa.float32(),
        "float8": pa.float64(),
        "date": pa.date32(),
        "time": pa.time32("ms"),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "bytea": pa.binary(),
        "text": pa.string(),
        "varchar": pa.string(),
    }
    base = column.base_type
    if base in simple:
        return ident, simple[base]
    if base == "numeric":
        match = NUMERIC_TYPMOD.fullmatch(column.type_name.replace(" ", ""))
        if match is None:
            return sql.SQL("round({}, 6)").format(ident), pa.decimal128(28, 6)
        precision, scale = int(match.group(1)), int(match.group(2))
        if precision > 38:
            return text, pa.string()
        return ident, pa.decimal128(precision, scale)
    if base == "money":
        return sql.SQL("{}::numeric").format(ident), pa.decimal128(38, 4)
    return text, pa.string()
