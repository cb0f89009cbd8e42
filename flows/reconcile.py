"""Count the rows DMS wrote to S3, to compare with the rows DMS says it loaded.

Each completed table's LOAD objects are listed under its prefix (``dms_spec.s3_layout``) and
their rows counted: Parquet from the file footer (two ranged GETs, no data read), CSV and gzip
CSV streamed in 1 MiB chunks (bounded memory whatever the size), with RFC 4180 quoting honoured
(a row delimiter inside a quoted value is part of the value, so a value with a newline is one
row) and the header row excluded when the endpoint has AddColumnName (DMS writes one per file).

Example:
    >>> count_csv_rows([b'1,"a\\nb"\\n2,', b'c\\n'], b"\\n")
    2
    >>> count_csv_rows([b"id\\r", b"\\n1\\r\\n"], b"\\r\\n")
    2
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dms_spec.s3_layout import is_load_file
from flows.target import TargetEndpoint

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TableObjects:
    """A table's LOAD objects in S3 and the rows they hold."""

    objects: int
    rows: int
    bytes: int


def count_csv_rows(chunks: Iterable[bytes], row_delimiter: bytes) -> int:
    """Rows in a stream of CSV bytes: row delimiters outside quotes, plus an unterminated last row.

    Quotes toggle the quoted state one by one (an escaped ``""`` toggles twice), so the delimiters
    inside quotes are those in every other quote-separated segment; both counts run in C.
    A delimiter split across two chunks is held back until the next chunk.
    """
    rows = 0
    quoted = False
    held = b""
    tail = b""
    for chunk in chunks:
        data = held + chunk
        held = _partial_delimiter_at_end(data, row_delimiter)
        if held:
            data = data[: -len(held)]
        if not data:
            continue
        segments = data.split(b'"')
        inside = b'"'.join(segments[0 if quoted else 1 :: 2])
        rows += data.count(row_delimiter) - inside.count(row_delimiter)
        if (len(segments) - 1) % 2:
            quoted = not quoted
        tail = (tail + data[-len(row_delimiter) :])[-len(row_delimiter) :]
    tail = (tail + held)[-len(row_delimiter) :]
    if tail and tail != row_delimiter:
        rows += 1  # the last row has no delimiter after it
    return rows


def _partial_delimiter_at_end(data: bytes, delimiter: bytes) -> bytes:
    """The longest proper prefix of ``delimiter`` that ``data`` ends with (b"" if none, or if it
    ends with the whole delimiter). Exact for delimiters no proper prefix of which is also a
    suffix (``\n``, ``\r\n``, ``|``); a delimiter such as ``\n\n`` is ambiguous in CSV anyway."""
    if data.endswith(delimiter):
        return b""
    for length in range(len(delimiter) - 1, 0, -1):
        if data.endswith(delimiter[:length]):
            return delimiter[:length]
    return b""


def gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream chunk by chunk (several gzip members are read one after another)."""
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)
    for chunk in chunks:
        while chunk:
            yield decompressor.decompress(chunk)
            if not decompressor.eof:
                break
            chunk = decompressor.unused_data
            decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)
    yield decompressor.flush()


class _RangedObject(io.RawIOBase):
    """A read-only, seekable view of one S3 object through ranged GETs (for Parquet footers)."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int) -> None:
        self._s3, self._bucket, self._key, self._size = s3, bucket, key, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._position + size)
        if end <= self._position:
            return b""
        body = self._s3.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{end - 1}"
        )["Body"].read()
        self._position += len(body)
        return bytes(body)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def object_rows(s3: Any, target: TargetEndpoint, key: str, size: int) -> int:
    """The data rows of one LOAD object (blocking: run it in a worker thread)."""
    if target.settings.data_format == "parquet":
        import pyarrow.parquet as pq  # only Parquet targets pay for importing pyarrow

        return int(pq.ParquetFile(_RangedObject(s3, target.bucket, key, size)).metadata.num_rows)
    body = s3.get_object(Bucket=target.bucket, Key=key)["Body"]
    chunks: Iterable[bytes] = body.iter_chunks(CHUNK_BYTES)
    if key.endswith(".gz"):
        chunks = gunzip(chunks)
    rows = count_csv_rows(chunks, target.settings.csv_row_delimiter.encode())
    return rows - 1 if target.settings.add_column_name and rows else rows


def table_objects(s3: Any, target: TargetEndpoint, schema: str, table: str) -> TableObjects:
    """List a table's LOAD objects and count their rows (blocking: run it in a worker thread)."""
    prefix = target.table_prefix(schema, table)
    objects = rows = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            # Only this table's own LOAD files: not a deeper folder, not CDC files.
            if "/" in key[len(prefix) :] or not is_load_file(key):
                continue
            objects += 1
            size += int(item["Size"])
            rows += object_rows(s3, target, key, int(item["Size"]))
    return TableObjects(objects=objects, rows=rows, bytes=size)
