"""A batch of DMS changes reduced to what it does to the table: the last change of each key.

A CDC file lists a table's changes in commit order, so within a batch of files only the last
change of a key counts: inserted then updated is the update's row, updated twice is the second,
deleted then inserted again is the insert's row, inserted then deleted is nothing. Applying a
batch is then: remove every key the batch touches, add back the rows whose last change is an
insert or an update. A delete row may hold only the key (PostgreSQL's before-image without
REPLICA IDENTITY FULL): only its key is read.

Example:
    >>> import pyarrow as pa
    >>> batch = pa.table({"Op": ["I", "U", "I", "D", "D", "I"], "id": [1, 1, 2, 2, 3, 3],
    ...                   "v": ["a", "b", "c", None, None, "d"]})
    >>> last = last_change_per_key(batch, ["id"])
    >>> last.to_pydict()
    {'Op': ['U', 'D', 'I'], 'id': [1, 2, 3], 'v': ['b', None, 'd']}
    >>> touched_keys(last, ["id"]).to_pydict(), upserts(last).to_pydict()
    ({'id': [1, 2, 3]}, {'id': [1, 3], 'v': ['b', 'd']})
    >>> op_counts(batch)
    {'I': 3, 'U': 1, 'D': 2}
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lake.readers import OP

_ROW = "__dms_row"


def last_change_per_key(changes: pa.Table, key: list[str]) -> pa.Table:
    """The last row of each key (in ``changes``' order), in the order those rows came."""
    indexed = changes.append_column(_ROW, pa.array(range(changes.num_rows), pa.int64()))
    last = indexed.group_by(key, use_threads=False).aggregate([(_ROW, "max")])
    rows = pc.sort_indices(last[f"{_ROW}_max"])
    return changes.take(pc.take(last[f"{_ROW}_max"], rows))


def touched_keys(last: pa.Table, key: list[str]) -> pa.Table:
    """The keys a reduced batch changes (every one is removed before the upserts are added)."""
    return last.select(key)


def upserts(last: pa.Table) -> pa.Table:
    """The rows a reduced batch adds: those whose last change is not a delete, without Op."""
    if OP not in last.column_names:
        return last
    kept = last.filter(pc.not_equal(last[OP], "D"))
    return kept.drop_columns([OP])


def op_counts(changes: pa.Table) -> dict[str, int]:
    """How many inserts, updates and deletes a batch holds (before reduction), as DMS counts."""
    if OP not in changes.column_names:
        return {"I": changes.num_rows, "U": 0, "D": 0}
    counted = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(changes[OP]).to_pylist()}
    return {op: counted.get(op, 0) for op in ("I", "U", "D")}
