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
    cut_counter: str | None = None
    """The session setting a full load counts this column's cut values in (``lob_cut``), for a
    truncating column whose type ``lob_within`` can test; None for the others."""

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
            cut = lob_cut(column, self.lob_limit, self.cut_counter)
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
            return lob_cut(column, self.lob_limit, self.cut_counter)
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


BINARY_TEXT_TYPES = frozenset({"text", "xml"})
"""LOB base types that are text or binary-coercible to it (``pg_cast.castmethod`` 'b'; json
and jsonb go through their output functions): the octet length of ``column::text`` is read from
the value's header, without detoasting it."""


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


def lob_within(column: SourceColumn, limit: int) -> sql.Composable | None:
    """A test, in constant time per value, that is true only for values certainly within
    ``limit`` bytes as DMS measures them; None when the column's type has no such test.

    PostgreSQL answers ``octet_length`` of a bytea or text value (and of a binary-coercible cast
    to text) from the value's header, without reading or detoasting the value. A BLOB is within
    the limit exactly when its octet length is; an NCLOB has at most as many characters as
    bytes, so one of at most ``limit / 2`` bytes is within; a CLOB has at most four UTF-8 bytes
    a character and at least one byte a character in any server encoding, so one of at most
    ``limit / 4`` bytes is. Values the test does not pass are measured exactly (``lob_size``).

    Example:
        >>> print(lob_within(SourceColumn("body", "text", "text"), 32768).as_string(None))
        octet_length("body") <= 16384
        >>> lob_within(SourceColumn("doc", "jsonb", "jsonb"), 32768) is None
        True
    """
    ident = sql.Identifier(column.name)
    kind = lob_type(column.base_type)
    if kind == "BLOB":
        return sql.SQL("octet_length({}) <= {}").format(ident, sql.Literal(limit))
    if column.base_type not in BINARY_TEXT_TYPES:
        return None
    text = ident if column.base_type == "text" else sql.SQL("{}::text").format(ident)
    bound = limit // 2 if kind == "NCLOB" else limit // 4
    return sql.SQL("octet_length({}) <= {}").format(text, sql.Literal(bound))


def lob_over(column: SourceColumn, limit: int) -> sql.Composable:
    """A test true for the values over ``limit`` bytes as DMS measures them (``lob_size``),
    measuring only the values ``lob_within`` cannot clear.

    Example:
        >>> print(lob_over(SourceColumn("body", "text", "text"), 8).as_string(None))
        (NOT (octet_length("body") <= 4) AND (2 * char_length("body"::text)) > 8)
    """
    exact = sql.SQL("{} > {}").format(lob_size(column), sql.Literal(limit))
    within = lob_within(column, limit)
    if within is None:
        return exact
    if lob_type(column.base_type) == "BLOB":
        return sql.SQL("NOT ({})").format(within)
    return sql.SQL("(NOT ({}) AND {})").format(within, exact)


def counted(cut: sql.Composable, counter: str, binary: bool) -> sql.Composable:
    """``cut`` unchanged, adding one to the session setting ``counter`` each time it is evaluated.

    ``set_config`` is allowed in a read-only transaction and returns the new value, of which
    nothing (``left(..., 0)``) is appended; the setting is read back after the statement.

    Example:
        >>> print(counted(sql.SQL("x"), "localdms.cut_1", False).as_string(None))
        (x || left(set_config('localdms.cut_1', (current_setting('localdms.cut_1')::int + 1)::text, false), 0))
    """
    name = sql.Literal(counter)
    bump = sql.SQL("left(set_config({}, (current_setting({})::int + 1)::text, false), 0)").format(
        name, name
    )
    if binary:
        bump = sql.SQL("decode({}, 'hex')").format(bump)
    return sql.SQL("({} || {})").format(cut, bump)


def lob_cut(column: SourceColumn, limit: int, counter: str | None = None) -> sql.Composable:
    """A LOB column's value cut to ``limit`` bytes on whole characters, as ``cut_text`` cuts it
    (bytea for a BLOB, text otherwise); a value ``lob_within`` clears is read as it is, so a
    value under the limit costs no more than reading it.

    A CLOB is cut in its UTF-8 bytes at the start of the character that byte ``limit + 1`` is
    in: a lead byte is one whose top two bits are not ``10``, and a character has at most four
    bytes, so it is at most three bytes back.

    Args:
        column: the LOB column.
        limit: the cut, bytes.
        counter: a session setting (set to 0 before the statement) that counts the values
            really cut (``counted``): only where ``lob_within`` applies, whose test keeps the
            exact measure to the few values it does not clear.

    Example:
        >>> print(lob_cut(SourceColumn("body", "text", "text"), 32768).as_string(None))
        CASE WHEN octet_length("body") <= 16384 THEN "body" WHEN char_length("body") <= 16384 THEN "body" ELSE left("body", 16384) END
    """
    ident = sql.Identifier(column.name)
    kind = lob_type(column.base_type)
    within = lob_within(column, limit)
    text = ident if column.base_type == "text" else sql.SQL("{}::text").format(ident)
    if kind == "BLOB":  # within is exact for a BLOB
        cut: sql.Composable = sql.SQL("substring({} from 1 for {})").format(
            ident, sql.Literal(limit)
        )
        if counter is not None:
            cut = counted(cut, counter, binary=True)
        return sql.SQL("CASE WHEN {} THEN {} ELSE {} END").format(within, ident, cut)
    if kind == "NCLOB":
        cut = sql.SQL("left({}, {})").format(text, sql.Literal(limit // 2))
        fits = sql.SQL("char_length({}) <= {}").format(text, sql.Literal(limit // 2))
    else:
        utf8 = sql.SQL("convert_to({}, 'UTF8')").format(text)
        end = sql.SQL(" ").join(
            [sql.SQL("CASE")]
            + [sql.SQL("WHEN get_byte({}, {}) & 192 <> 128 THEN {}").format(
                utf8, sql.Literal(limit - back), sql.Literal(limit - back))
               for back in range(3)]
            + [sql.SQL("ELSE {} END").format(sql.Literal(limit - 3))]
        )  # fmt: skip
        cut = sql.SQL("convert_from(substring({} from 1 for {}), 'UTF8')").format(utf8, end)
        fits = sql.SQL("octet_length({}) <= {}").format(utf8, sql.Literal(limit))
    if within is None:  # jsonb, arrays...: no constant-time test, so one cast, then the cut
        if kind == "NCLOB":
            return cut  # left() of a shorter value is the value
        return sql.SQL("CASE WHEN {} THEN {} ELSE {} END").format(fits, text, cut)
    if counter is not None:
        cut = counted(cut, counter, binary=False)
    return sql.SQL("CASE WHEN {} THEN {} WHEN {} THEN {} ELSE {} END").format(
        within, text, fits, text, cut
    )


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
    for position, (column, name) in enumerate(plan.columns):
        output = OutputColumn(name, ColumnKind.DATA, column, lob_limit)
        if output.truncates and lob_limit is not None and lob_within(column, lob_limit):
            output = replace(output, cut_counter=f"localdms.cut_{position}")
        columns.append(output)
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
