"""Position delete files: which rows of a data file hold the keys a batch of changes touches.

A batch of changes removes every key it touches (``lake.changes``). Rather than rewrite each
data file holding one of those keys (copy-on-write), ``lake.apply`` finds where the keys are
(``positions_of``: the data file's key columns only, after its key bounds say it may hold one)
and writes those positions to a delete file (``write_deletes``) that every Iceberg reader
applies (merge-on-read; the Iceberg spec's "Position Delete Files").

Each data file has at most one delete file, holding all of its deleted positions: a batch that
deletes more rows of the file writes a new one with the old positions and the new, and removes
the old (as Iceberg v3's deletion vectors are kept). So finding what is already deleted reads
one small file, readers merge one delete file per data file, and the table's
``total-position-deletes`` counts each deleted row once.

Example:
    >>> import pyarrow as pa
    >>> union_positions(pa.array([2, 7], pa.int64()), pa.array([7, 3], pa.int64()))
    <pyarrow.lib.Int64Array object at ...>
    [
      2,
      3,
      7
    ]
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.conversions import from_bytes, to_bytes
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.typedef import Record
from pyiceberg.types import IntegerType, LongType

FILE_PATH_ID = 2147483546
"""The field id of a delete file's ``file_path`` column (reserved by the Iceberg spec)."""
POS_ID = 2147483545
"""The field id of a delete file's ``pos`` column."""
DELETE_SCHEMA = pa.schema(
    [
        pa.field("file_path", pa.string(), False, {b"PARQUET:field_id": str(FILE_PATH_ID)}),
        pa.field("pos", pa.int64(), False, {b"PARQUET:field_id": str(POS_ID)}),
    ]
)
_POS = "__dms_pos"


def referenced_path(delete_file: DataFile) -> str | None:
    """The one data file a delete file refers to: its ``file_path`` bounds, when they are equal
    (how pyiceberg's readers index it; a v2 manifest has no ``referenced_data_file``)."""
    lower = (delete_file.lower_bounds or {}).get(FILE_PATH_ID)
    upper = (delete_file.upper_bounds or {}).get(FILE_PATH_ID)
    return lower.decode() if lower is not None and lower == upper else None


def might_hold(data_file: DataFile, schema: Schema, key: list[str], keys: pa.Table) -> bool:
    """Whether the data file's bounds of an integer key column leave room for one of ``keys``
    (other keys are not pruned: string bounds may be truncated)."""
    column = schema.find_field(key[0])
    lower, upper = data_file.lower_bounds or {}, data_file.upper_bounds or {}
    if not isinstance(column.field_type, (IntegerType, LongType)):
        return True
    if column.field_id not in lower or column.field_id not in upper:
        return True
    low = from_bytes(column.field_type, lower[column.field_id])
    high = from_bytes(column.field_type, upper[column.field_id])
    values = keys.column(key[0])
    return bool(pc.any(pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))).as_py())


def positions_of(io: FileIO, data_file: DataFile, key: list[str], keys: pa.Table) -> pa.Array:
    """The positions (0-based, ascending) of the rows of ``data_file`` whose key is in ``keys``."""
    with io.new_input(data_file.file_path).open() as stream:
        held = pq.read_table(stream, columns=key)
    if len(key) == 1:
        wanted = keys.column(key[0]).cast(held.schema.field(key[0]).type)
        mask = pc.is_in(held.column(key[0]), value_set=wanted)
        return pc.indices_nonzero(mask).cast(pa.int64())
    wanted_keys = pa.table([keys.column(k).cast(held.schema.field(k).type) for k in key], names=key)
    numbered = held.append_column(_POS, pa.array(range(held.num_rows), pa.int64()))
    found = numbered.join(wanted_keys, keys=key, join_type="inner").column(_POS).combine_chunks()
    return pc.take(found, pc.array_sort_indices(found))


def read_positions(io: FileIO, delete_file: DataFile) -> pa.Array:
    """The positions a delete file deletes."""
    with io.new_input(delete_file.file_path).open() as stream:
        return pq.read_table(stream, columns=["pos"]).column("pos").combine_chunks()


def union_positions(old: pa.Array, new: pa.Array) -> pa.Array:
    """Both sets of positions, ascending, each once."""
    both = pa.chunked_array([old, new], pa.int64())
    distinct = pc.unique(both)
    return pc.take(distinct, pc.array_sort_indices(distinct))


def write_deletes(io: FileIO, path: str, data_path: str, positions: pa.Array) -> DataFile:
    """A delete file at ``path`` deleting ``positions`` (ascending) of ``data_path``."""
    rows = pa.table([pa.array([data_path] * len(positions), pa.string()), positions],
                    schema=DELETE_SCHEMA)  # fmt: skip
    buffer = pa.BufferOutputStream()
    pq.write_table(rows, buffer, compression="zstd")
    body = buffer.getvalue()
    with io.new_output(path).create(overwrite=True) as out:
        out.write(body.to_pybytes())
    first, last = positions[0].as_py(), positions[-1].as_py()
    return DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=len(positions),
        file_size_in_bytes=body.size,
        lower_bounds={FILE_PATH_ID: data_path.encode(), POS_ID: to_bytes(LongType(), first)},
        upper_bounds={FILE_PATH_ID: data_path.encode(), POS_ID: to_bytes(LongType(), last)},
        sort_order_id=None,
        spec_id=0,
        equality_ids=None,
        key_metadata=None,
    )
