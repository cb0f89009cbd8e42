"""The column plan of a table's files: which columns, in which order, under which header, read
with which SELECT expression and written as which Arrow type.

The CSV and Parquet full loads and the CDC files all take their columns from here, so the three
cannot disagree (AWS DMS User Guide: CHAP_Target.S3, "Indicating source DB operations in migrated
S3 data" for the Op column, ``TimestampColumnName`` under "Extra connection attributes", and
CHAP_Source.PostgreSQL, "Source data types"):

* the order is the Op column (when written), the ``TimestampColumnName`` column (when set), then
  the table's kept columns under their output names (after rename rules);
* a CSV value is PostgreSQL's text output in ``session.SESSION_SETTINGS`` with the few
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
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from psycopg import sql

from dms_spec.lob import cut_text, is_lob_type, lob_type, text_size
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
    """Limited LOB mode's cut in bytes (``dms_spec.lob.limited_lob_size``): a LOB column's values
    are truncated to it as DMS measures them (``dms_spec.lob``); None keeps them whole."""

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

    def over_limit(self, value: str) -> bool:
        """Whether a captured (pgoutput text) value is longer than ``lob_limit`` as DMS measures
        it, and so is cut (always False for a column that does not truncate).

        Example:
            >>> column = SourceColumn("body", "text", "text")
            >>> OutputColumn("body", ColumnKind.DATA, column, lob_limit=4).over_limit("abc")
            True
        """
        if not self.truncates or self.lob_limit is None or self.source is None:
            return False
        if self.source.base_type == "bytea":
            digits = len(value) - 2 if value.startswith("\\x") else len(value)
            return digits > 2 * self.lob_limit
        return text_size(value, str(lob_type(self.source.base_type))) > self.lob_limit

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
        if self.truncates and self.lob_limit is not None:
            cut = lob_cut(column, self.lob_limit)
            return sql.SQL("encode({}, 'hex')").format(cut) if base == "bytea" else cut
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
            return cut_text(value, str(lob_type(base)), self.lob_limit)
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
        if self.truncates and self.lob_limit is not None:
            return lob_cut(column, self.lob_limit)
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


def lob_size(column: SourceColumn) -> sql.Composable:
    """A LOB column's value size in bytes as DMS measures it (``dms_spec.lob``): a BLOB's bytes,
    a CLOB's UTF-8 bytes, two bytes a character of an NCLOB.

    Example:
        >>> print(lob_size(SourceColumn("doc", "xml", "xml")).as_string(None))
        octet_length(convert_to("doc"::text, 'UTF8'))
    """
    ident = sql.Identifier(column.name)
    kind = lob_type(column.base_type)
    if kind == "BLOB":
        return sql.SQL("octet_length({})").format(ident)
    if kind == "CLOB":
        return sql.SQL("octet_length(convert_to({}::text, 'UTF8'))").format(ident)
    return sql.SQL("(2 * char_length({}::text))").format(ident)


def lob_cut(column: SourceColumn, limit: int) -> sql.Composable:
    """A LOB column's value cut to ``limit`` bytes on whole characters, as ``cut_text`` cuts it
    (bytea for a BLOB, text otherwise).

    A CLOB is cut in its UTF-8 bytes at the start of the character that byte ``limit + 1`` is
    in: a lead byte is one whose top two bits are not ``10``, and a character has at most four
    bytes, so it is at most three bytes back.
    """
    ident = sql.Identifier(column.name)
    kind = lob_type(column.base_type)
    if kind == "BLOB":
        return sql.SQL("substring({} from 1 for {})").format(ident, sql.Literal(limit))
    if kind == "NCLOB":
        return sql.SQL("left({}::text, {})").format(ident, sql.Literal(limit // 2))
    utf8 = sql.SQL("convert_to({}::text, 'UTF8')").format(ident)
    end = sql.SQL(" ").join(
        [sql.SQL("CASE")]
        + [sql.SQL("WHEN get_byte({}, {}) & 192 <> 128 THEN {}").format(
            utf8, sql.Literal(limit - back), sql.Literal(limit - back))
           for back in range(3)]
        + [sql.SQL("ELSE {} END").format(sql.Literal(limit - 3))]
    )  # fmt: skip
    return sql.SQL(
        "CASE WHEN octet_length({utf8}) <= {limit} THEN {ident}::text "
        "ELSE convert_from(substring({utf8} from 1 for {end}), 'UTF8') END"
    ).format(utf8=utf8, limit=sql.Literal(limit), ident=ident, end=end)


def without_lobs(plan: TablePlan) -> TablePlan:
    """The plan without its LOB columns (``SupportLobs`` false: "LOB columns are excluded from
    the migration"), in the full load and in change capture alike.

    Example:
        >>> from localdms.table_mappings import SourceTable
        >>> columns = (SourceColumn("id", "integer", "int4"), SourceColumn("doc", "jsonb", "jsonb"))
        >>> plan = TablePlan(SourceTable("s", "t", "table", columns), "s", "t",
        ...                  tuple((c, c.name) for c in columns))
        >>> [name for _, name in without_lobs(plan).columns]
        ['id']
    """
    kept = tuple(
        (column, name) for column, name in plan.columns if not is_lob_type(column.base_type)
    )
    return replace(plan, columns=kept)


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
