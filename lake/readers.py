"""A DMS object as Arrow record batches: columns named and typed as the table's.

Parquet files keep the types DMS gave them (``localdms.engine.parquet_writer`` lists them: a
boolean is the string ``true``/``false``, jsonb a string, bytea binary); the few Arrow types
Iceberg has no type for are widened (int8/int16 to int32, time32 to time64 in microseconds,
timestamps in milliseconds to microseconds).

CSV files carry no types, so they come from the table's ``column_types`` (Iceberg type names:
``long``, ``decimal(38,10)``, ``timestamptz``...) and otherwise are strings. Their column names
come from the header DMS writes with AddColumnName; without one they are the Op and
TimestampColumnName columns DMS puts first, then the columns of ``column_types`` in order, so a
CSV endpoint without AddColumnName needs ``column_types`` listing every column. Values follow
DMS's CSV rules (``dms_spec.s3_layout`` and the guide's CHAP_Target.S3): the endpoint's
delimiter, ``"`` quoting with ``""`` inside, values that span lines, an unquoted CsvNullValue
(empty by default) for NULL and a quoted one for the string itself, booleans as ``true`` and
``false``, timestamptz in UTC without its offset, bytea in hexadecimal.

Every file streams: Parquet by row group, CSV by blocks (``BLOCK_BYTES``), gzip decompressed as
it is read.

Example:
    >>> import io
    >>> from dms_spec.s3_target import S3Target
    >>> target = S3Target("b", add_column_name=True)
    >>> body = b'Op,id,name\\nI,1,"a, b"\\nD,2,\\n'
    >>> rows = csv_rows(lambda: io.BytesIO(body), target, {"id": "long"}, [])
    >>> rows.schema.types
    [DataType(string), DataType(int64), DataType(string)]
    >>> [b.to_pylist() for b in rows.batches]
    [[{'Op': 'I', 'id': 1, 'name': 'a, b'}, {'Op': 'D', 'id': 2, 'name': None}]]
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import TypeAdapter
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.types import IcebergType

from dms_spec.s3_target import S3Target

OP = "Op"
"""The operation column DMS puts first in CDC files (and in LOAD files with IncludeOpForFullLoad)."""
BLOCK_BYTES = 16 * 1024 * 1024
"""How much CSV is parsed at a time."""
BATCH_ROWS = 131_072
"""Rows per record batch read from a Parquet file."""
WINDOW_BYTES = 16 * 1024 * 1024
"""How much of a Parquet file (uncompressed) is fetched at a time."""

_ICEBERG_TYPE: TypeAdapter[IcebergType] = TypeAdapter(IcebergType)


class FileLayoutError(ValueError):
    """A file cannot be read as the table's: the message says which setting makes it work."""


def arrow_type(iceberg_type: str) -> pa.DataType:
    """The Arrow type of an Iceberg type name (strings and binaries not large).

    Example:
        >>> arrow_type("decimal(38,10)"), arrow_type("timestamptz"), arrow_type("string")
        (Decimal128Type(decimal128(38, 10)), TimestampType(timestamp[us, tz=UTC]), DataType(string))
    """
    try:
        parsed = _ICEBERG_TYPE.validate_python(iceberg_type)
    except ValueError as exc:
        raise FileLayoutError(
            f"{iceberg_type!r} is not an Iceberg type: use one of boolean, int, long, float, "
            "double, decimal(P,S), date, time, timestamp, timestamptz, string, binary"
        ) from exc
    if not parsed.is_primitive or str(parsed) == "uuid":
        raise FileLayoutError(f"{iceberg_type!r}: give a primitive type other than uuid (string)")
    converted = schema_to_pyarrow(parsed)
    assert isinstance(converted, pa.DataType)
    return {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}.get(
        converted, converted
    )


def widened(field_type: pa.DataType) -> pa.DataType:
    """The Arrow type Iceberg stores a Parquet column of ``field_type`` as.

    Example:
        >>> widened(pa.int16()), widened(pa.time32("ms")), widened(pa.timestamp("ms", "UTC"))
        (DataType(int32), Time64Type(time64[us]), TimestampType(timestamp[us, tz=UTC]))
    """
    if pa.types.is_int8(field_type) or pa.types.is_int16(field_type):
        return pa.int32()
    if pa.types.is_time(field_type):
        return pa.time64("us")
    if pa.types.is_timestamp(field_type) and field_type.unit != "us":
        return pa.timestamp("us", field_type.tz)
    if pa.types.is_large_string(field_type):
        return pa.string()
    if pa.types.is_large_binary(field_type):
        return pa.binary()
    return field_type


@dataclass(frozen=True)
class FileRows:
    """A file's columns, and its rows as record batches of that schema (read as iterated)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]


def read_object(
    file_io: FileIO, url: str, target: S3Target, kind: str, column_types: dict[str, str]
) -> FileRows:
    """One DMS object (``url``: ``s3://bucket/key``) as typed rows, streamed through
    ``file_io`` (the lake's S3 access, ``lake.catalogs``)."""
    if url.endswith(".parquet"):
        return parquet_rows(file_io.new_input(url).open(seekable=True))

    def open_stream() -> BinaryIO:
        stream = file_io.new_input(url).open(seekable=False)
        return pa.CompressedInputStream(stream, "gzip") if url.endswith(".gz") else stream  # type: ignore[return-value]

    return csv_rows(open_stream, target, column_types, leading_columns(target, kind))


def parquet_rows(source: Any) -> FileRows:
    """A Parquet file's rows (``source``: a random-access file), types widened for Iceberg.

    Row groups are read in windows of about ``WINDOW_BYTES``: pyarrow pre-buffers (coalesces the
    reads of) every row group it is asked for at once, which held a whole 130 MB LOAD file in
    memory; reading without pre-buffering made one ranged GET per column chunk instead, twenty
    times slower from S3.
    """
    reader = pq.ParquetFile(source)
    schema = pa.schema(pa.field(f.name, widened(f.type)) for f in reader.schema_arrow)

    def batches() -> Iterator[pa.RecordBatch]:
        for window in _row_group_windows(reader.metadata, WINDOW_BYTES):
            for batch in reader.iter_batches(batch_size=BATCH_ROWS, row_groups=window):
                yield batch if batch.schema.equals(schema) else batch.cast(schema)

    return FileRows(schema, batches())


def _row_group_windows(metadata: Any, size: int) -> Iterator[list[int]]:
    """Consecutive row groups of about ``size`` bytes (uncompressed) each."""
    window: list[int] = []
    held = 0
    for index in range(metadata.num_row_groups):
        window.append(index)
        held += metadata.row_group(index).total_byte_size
        if held >= size:
            yield window
            window, held = [], 0
    if window:
        yield window


def leading_columns(target: S3Target, kind: str) -> list[str]:
    """The columns DMS writes before the table's own: Op, then TimestampColumnName."""
    op = target.cdc_op_column if kind == "cdc" else target.include_op_for_full_load
    return [OP] * op + [target.timestamp_column_name] * bool(target.timestamp_column_name)


def csv_rows(
    open_stream: Callable[[], BinaryIO],
    target: S3Target,
    column_types: dict[str, str],
    leading: list[str],
) -> FileRows:
    """A DMS CSV file's rows, typed by ``column_types``.

    Args:
        open_stream: opens the file's bytes, decompressed (twice when it has a header: once for
            the names).
        leading: the columns before the table's own (``leading_columns``), when the file has
            no header.

    Raises:
        FileLayoutError: the file has no header and ``column_types`` does not name the columns,
            or the row delimiter is one Arrow's CSV reader cannot split on.
    """
    if target.csv_row_delimiter not in ("\n", "\r\n"):
        raise FileLayoutError(
            f"CsvRowDelimiter {target.csv_row_delimiter!r} cannot be read: set the endpoint's "
            "CsvRowDelimiter to \\n (the default), or DataFormat=parquet"
        )
    if target.add_column_name:
        with open_stream() as head:
            names = _header(head.read(64 * 1024), target.csv_delimiter)
        skip = 1
    elif column_types:
        names, skip = [*leading, *column_types], 0
    else:
        raise FileLayoutError(
            "the endpoint writes CSV without a header (AddColumnName false), so its columns are "
            "unknown: give the table's column_types in lake_tables (every column, in order), "
            "or set AddColumnName=true or DataFormat=parquet on the target endpoint"
        )
    wanted = {name: arrow_type(column_types.get(name, "string")) for name in names}
    wanted.update({name: pa.string() for name in leading if name in wanted})
    read_as = {name: _read_type(t) for name, t in wanted.items()}
    schema = pa.schema(pa.field(name, wanted[name]) for name in names)
    return FileRows(schema, _csv_batches(open_stream, target, names, wanted, read_as, skip))


def _csv_batches(
    open_stream: Callable[[], BinaryIO],
    target: S3Target,
    names: list[str],
    wanted: dict[str, pa.DataType],
    read_as: dict[str, pa.DataType],
    skip: int,
) -> Iterator[pa.RecordBatch]:
    schema = pa.schema(pa.field(name, wanted[name]) for name in names)
    stream = open_stream()
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=skip, block_size=BLOCK_BYTES, use_threads=True
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=target.csv_delimiter, quote_char='"', double_quote=True,
            escape_char=False, newlines_in_values=True,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=read_as, null_values=[target.csv_null_value], strings_can_be_null=True,
            quoted_strings_can_be_null=False, true_values=["true"], false_values=["false"],
        ),
    )  # fmt: skip
    with stream:
        for batch in reader:
            yield pa.RecordBatch.from_arrays(
                [_converted(batch.column(i), wanted[name]) for i, name in enumerate(names)],
                schema=schema,
            )


def _header(head: bytes, delimiter: str) -> list[str]:
    """The names in a file's first row (``head``: its first bytes)."""
    line = bytes(head).split(b"\n", 1)[0].rstrip(b"\r").decode()
    return next(csv.reader(io.StringIO(line), delimiter=delimiter))


def _read_type(wanted: pa.DataType) -> pa.DataType:
    """What Arrow's CSV reader parses a column of type ``wanted`` as."""
    if pa.types.is_timestamp(wanted):
        return pa.timestamp(wanted.unit)  # DMS writes UTC without an offset
    if pa.types.is_time(wanted) or pa.types.is_binary(wanted):
        return pa.string()
    return wanted


def _converted(column: pa.Array, wanted: pa.DataType) -> pa.Array:
    """A parsed column as ``wanted``: UTC put on timestamptz, time from its text, bytea from
    hexadecimal."""
    if column.type.equals(wanted):
        return column
    if pa.types.is_timestamp(wanted):
        return column.cast(wanted)
    if pa.types.is_time(wanted):
        stamps = pc.binary_join_element_wise("1970-01-01 ", column, "")
        return stamps.cast(pa.timestamp("us")).cast(wanted)
    if pa.types.is_binary(wanted):
        return pa.array([None if v is None else bytes.fromhex(v) for v in column.to_pylist()],
                        type=pa.binary())  # fmt: skip
    return column.cast(wanted)
