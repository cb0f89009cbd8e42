"""One Iceberg table kept equal to a source table from DMS's LOAD and CDC files.

``sync`` brings the table up to date with the objects DMS has written and returns what it did:

1. The LOAD files build the table. When the table is new, or the LOAD objects differ from those
   it was built from (a ``reload-target`` writes new ones), the table is rebuilt from them in one
   commit: readers see the old rows or the new, never part of both.
2. The CDC files not yet applied follow, ``batch_files`` at a time, each batch one commit:
   every key the batch touches is deleted and the rows whose last change is an insert or an
   update are added (``lake.changes``). Deletes are merge-on-read: the rows' positions go to
   position delete files (``lake.position_deletes``), so a batch costs what it changes and the
   key columns of the data files that may hold its keys, not a rewrite of those files; a data
   file is rewritten only once ``REWRITE_DELETED`` of it is deleted.

Each commit is one snapshot (``lake.row_delta``) and records what it applied: in the snapshot's
summary, ``dms.applied-objects`` (the objects' keys, newline-separated), ``dms.commit`` (the
commit's id) and ``dms.inserts``/``dms.updates``/``dms.deletes``; in the table's properties, in the same commit, ``dms.load-objects`` (the LOAD objects and ETags the
table was built from) and ``dms.last-cdc-object`` (the last CDC object applied). DMS names CDC
files in the order it writes them, so every CDC object up to that one is applied and none after:
a second run applies nothing, and a run killed between commits resumes at the next batch. The
state lives in properties, not only in snapshots, so expiring snapshots forgets nothing.

A column that appears in the files (added in the source: DMS writes it from then on) is added to
the table; a column that disappears or changes type is refused (``SchemaChangeError``).

A table needs a key (``TableSpec.key``; DMS does not write keys). Without one, ``without_key:
append`` appends every row the files hold, LOAD and CDC, with their Op (a change log).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata

from dms_spec.s3_target import S3Target
from lake.changes import last_change_per_key, op_counts, touched_keys, upserts
from lake.dms_files import DmsObject
from lake.position_deletes import (
    might_hold,
    positions_of,
    read_positions,
    union_positions,
    write_deletes,
)
from lake.readers import OP, FileRows, read_object
from lake.row_delta import LiveFiles, RowDelta, live_files

LOAD_OBJECTS = "dms.load-objects"
"""Table property: the LOAD objects (key → ETag) the table was built from."""
LAST_CDC_OBJECT = "dms.last-cdc-object"
"""Table property: the last CDC object applied (its key)."""
APPLIED_OBJECTS = "dms.applied-objects"
"""Snapshot summary: the objects a commit applied, newline-separated."""
COMMIT = "dms.commit"
"""Snapshot summary: the id of the commit."""
TARGET_FILE_BYTES = 64 * 1024 * 1024
"""The tables' ``write.target-file-size-bytes`` (of Arrow data; pyiceberg's default is 512 MiB).
A batch of changes reads the key columns of each data file that may hold one of its keys, one
object at a time, so fewer files cost fewer requests: on the 2 M-row benchmark table, a batch
spread over every key took 1.28 s with 16 MiB files (15 of them) and 0.80 s with 64 MiB (5). A
data file is rewritten once ``REWRITE_DELETED`` of it is deleted, so its size is also what one
such rewrite costs."""
APPEND_BYTES = TARGET_FILE_BYTES
"""Arrow data gathered from the LOAD files before it is written during a rebuild: one data file's
worth (pyiceberg writes what it is given as files of its own, and its streaming writer holds the
whole stream at once), so memory holds that much whatever the table's size: the benchmark's rebuild
peaks at 585 MB RSS, against 505 MB with 16 MiB."""
REWRITE_DELETED = 0.2
"""The share of a data file's rows deleted (by position delete files) at which a batch rewrites
the file without them instead: readers then skip no more than this share of what they read."""
SMALL_FILE_BYTES = 8 * 1024 * 1024
"""A data file smaller than this (Parquet bytes) is small: each batch of changes adds one."""
COMPACT_FILES = 16
"""Small data files at which a batch first merges them (``_compact``): a batch reads the key
columns of every data file whose key bounds may hold one of its keys, and a batch's file spans
the keys it inserted and updated, so without merging every batch would read every earlier one."""
COMPACT_BYTES = 16 * 1024 * 1024
"""Parquet bytes of small files merged into one file at a time (the smallest first), which is
what the merge holds in memory."""
DELETE_THREADS = 8
"""Data files searched for a batch's keys at once (each is a read of its key columns from S3)."""
_NO_POSITIONS = pa.array([], pa.int64())
APPEND_BYTES = TARGET_FILE_BYTES
"""Arrow data gathered from the LOAD files before it is written during a rebuild: about one data
file's worth (twice as much doubled the pool memory of a 2 M-row rebuild, 93 → 182 MB, and
saved 4 % of its time), so memory holds that much whatever the table's size."""


class SchemaChangeError(ValueError):
    """A file's columns changed in a way the table cannot follow (a column dropped or retyped)."""


@dataclass(frozen=True)
class TableSpec:
    """One source table and how it becomes an Iceberg table."""

    schema_name: str
    table_name: str
    identifier: tuple[str, str]
    """The Iceberg table: (namespace, name)."""
    key: tuple[str, ...] = ()
    """The columns that identify a row; empty for a table without a key."""
    without_key: Literal["refuse", "append"] = "refuse"
    column_types: dict[str, str] = field(default_factory=dict)
    """Iceberg type names by column, for CSV files (``lake.readers``)."""

    @property
    def name(self) -> str:
        return f"{self.schema_name}.{self.table_name}"


@dataclass
class SyncResult:
    """What one ``sync`` did to a table."""

    table: str
    identifier: str
    rebuilt: bool = False
    load_objects: int = 0
    cdc_objects: int = 0
    rows_loaded: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    commits: int = 0
    snapshot_id: int | None = None
    rows: int | None = None
    """Rows in the table after the sync (from the snapshot summary)."""
    columns_added: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    """The keys of the objects applied, in order."""

    @property
    def changed(self) -> bool:
        return bool(self.applied)


class LakeTable:
    """Keeps one Iceberg table current from one source table's DMS objects.

    Args:
        catalog: where the table is (``lake.catalogs``).
        spec: the source table, its key and types.
        target: the target endpoint's S3 settings (how the files are written).
        file_io: reads the DMS objects.
        bucket: the bucket the objects are in.
        batch_files: CDC objects applied per commit.
    """

    def __init__(
        self,
        catalog: Catalog,
        spec: TableSpec,
        target: S3Target,
        file_io: FileIO,
        bucket: str,
        batch_files: int = 100,
    ) -> None:
        if not spec.key and spec.without_key == "refuse":
            raise ValueError(
                f"{spec.name} has no key in the lake config: give its key columns (lake.tables."
                f'{spec.name}.key, e.g. ["id"]), or without_key: append to append every change'
            )
        self.catalog, self.spec, self.target = catalog, spec, target
        self.file_io, self.bucket, self.batch_files = file_io, bucket, batch_files
        self._metadata_of: tuple[Transaction, int, TableMetadata] | None = None

    def load(self) -> Table | None:
        try:
            return self.catalog.load_table(self.spec.identifier)
        except NoSuchTableError:
            return None

    def sync(
        self, objects: list[DmsObject], on_commit: Callable[[SyncResult], None] | None = None
    ) -> SyncResult:
        """Apply what the table lacks of ``objects`` (the table's objects in apply order,
        ``lake.dms_files``); ``on_commit`` is called after each commit (progress)."""
        spec = self.spec
        result = SyncResult(spec.name, ".".join(spec.identifier))
        table = self.load()
        loads = [o for o in objects if o.kind == "load"]
        built_from = {o.key: o.etag for o in loads}
        if table is None or json.loads(table.properties.get(LOAD_OBJECTS, "{}")) != built_from:
            cdc = [o for o in objects if o.kind == "cdc"]
            if table is None and not loads and not cdc:
                return result  # DMS has written nothing for the table yet
            table = self._rebuild(table, loads, built_from, result, cdc[0] if cdc else None)
            result.commits += 1
            if on_commit:
                on_commit(result)
        last = table.properties.get(LAST_CDC_OBJECT, "")
        pending = [o for o in objects if o.kind == "cdc" and _after(o, last)]
        for start in range(0, len(pending), self.batch_files):
            self._apply_changes(table, pending[start : start + self.batch_files], result)
            result.commits += 1
            if on_commit:
                on_commit(result)
        snapshot = table.current_snapshot()
        if snapshot is not None:
            result.snapshot_id = snapshot.snapshot_id
            if snapshot.summary is not None:
                totals = snapshot.summary.additional_properties
                if "total-records" in totals:
                    deleted = int(totals.get("total-position-deletes", 0))
                    result.rows = int(totals["total-records"]) - deleted
        return result

    # The full load ------------------------------------------------------------------------

    def _rebuild(
        self,
        table: Table | None,
        loads: list[DmsObject],
        built_from: dict[str, str],
        result: SyncResult,
        first_cdc: DmsObject | None = None,
    ) -> Table:
        """The table as the LOAD objects hold it, in one commit (created when missing: with the
        columns of the first LOAD file, or of the first CDC file for a task without a full load,
        a ``cdc`` task)."""
        files = [(o, self._read(o)) for o in loads]
        if table is None:
            if files:
                first = files[0][1].schema
            else:
                assert first_cdc is not None
                first = self._read(first_cdc).schema
            table = self._create(first)
        result.rebuilt = True
        properties = {LOAD_OBJECTS: json.dumps(built_from, sort_keys=True), LAST_CDC_OBJECT: ""}
        summary = {APPLIED_OBJECTS: "\n".join(o.key for o in loads), "dms.rebuild": "true",
                   COMMIT: uuid.uuid4().hex}  # fmt: skip
        with table.transaction() as tx:
            live = live_files(tx)
            delta = RowDelta(tx, live, summary)
            for entry in live.entries():
                delta.remove(entry.data_file)
            for obj, rows in files:
                self._evolve(tx, rows.schema, result)
                for chunk in _gathered(rows.batches, APPEND_BYTES):
                    result.rows_loaded += chunk.num_rows
                    self._write(tx, delta, self._conform(tx, chunk))
                result.load_objects += 1
                result.applied.append(obj.key)
            delta.commit()
            tx.set_properties(properties)
        return table

    def _create(self, schema: pa.Schema) -> Table:
        spec = self.spec
        columns = [f for f in schema if f.name != OP or not spec.key]
        missing = [k for k in spec.key if k not in schema.names]
        if missing:
            raise ValueError(
                f"{spec.name}: key column(s) {', '.join(missing)} are not in DMS's files "
                f"(columns: {', '.join(f.name for f in columns)}); fix its key in lake_tables"
            )
        arrow_schema = pa.schema(
            pa.field(f.name, f.type, nullable=f.name not in spec.key) for f in columns
        )
        self.catalog.create_namespace_if_not_exists(spec.identifier[0])
        table = self.catalog.create_table(
            spec.identifier, schema=arrow_schema,
            properties={"dms.source-table": spec.name, "format-version": "2",
                        "write.target-file-size-bytes": str(TARGET_FILE_BYTES)},
        )  # fmt: skip
        if spec.key:
            with table.update_schema() as update:
                update.set_identifier_fields(*spec.key)
        return table

    # The changes --------------------------------------------------------------------------

    def _apply_changes(self, table: Table, batch: list[DmsObject], result: SyncResult) -> None:
        """Apply CDC objects in one commit: delete every key they touch, add the last rows."""
        key = list(self.spec.key)
        parts: list[pa.RecordBatch] = []
        with table.transaction() as tx:
            for obj in batch:
                rows = self._read(obj)
                self._evolve(tx, pa.schema(f for f in rows.schema if f.name != OP), result)
                parts.extend(self._aligned(tx, b) for b in rows.batches)
            changes = pa.Table.from_batches(parts) if parts else None
            counts = op_counts(changes) if changes is not None else {"I": 0, "U": 0, "D": 0}
            summary = {
                APPLIED_OBJECTS: "\n".join(o.key for o in batch), COMMIT: uuid.uuid4().hex,
                "dms.inserts": str(counts["I"]), "dms.updates": str(counts["U"]),
                "dms.deletes": str(counts["D"]),
            }  # fmt: skip
            if changes is not None and changes.num_rows:
                live = self._compact(tx, live_files(tx), summary[COMMIT])
                delta = RowDelta(tx, live, summary)
                if key:
                    last = last_change_per_key(changes, key)
                    self._delete_keys(tx, delta, live, touched_keys(last, key))
                    added = upserts(last)
                else:
                    added = changes
                self._write(tx, delta, self._conform(tx, added))
                delta.commit()
            tx.set_properties({LAST_CDC_OBJECT: batch[-1].key})
        result.cdc_objects += len(batch)
        result.inserts += counts["I"]
        result.updates += counts["U"]
        result.deletes += counts["D"]
        result.applied.extend(o.key for o in batch)

    def _delete_keys(
        self, tx: Transaction, delta: RowDelta, live: LiveFiles, keys: pa.Table
    ) -> None:
        """Delete the rows holding ``keys``: in each data file that holds one, its positions go
        to the file's delete file; a file with ``REWRITE_DELETED`` of its rows deleted is
        rewritten without them instead (``lake.position_deletes``)."""
        key = list(self.spec.key)
        if live.unreferenced:
            raise ValueError(
                f"{self.spec.name}: the Iceberg table has delete files that name no single data "
                "file (written by another engine); compact it (rewrite_position_delete_files) "
                "or drop it to have it rebuilt"
            )
        schema = self._metadata(tx).schema()
        candidates = [
            e.data_file for e in live.data.values()
            if might_hold(e.data_file, schema, key, keys)
        ]  # fmt: skip
        locations = tx._table.location_provider()
        one_rewrite = threading.Lock()

        def delete_in(data_file: DataFile) -> tuple[list[DataFile], list[DataFile]]:
            """(files to add, files to remove) for one data file."""
            found = positions_of(self.file_io, data_file, key, keys)
            if not len(found):
                return [], []
            old, before = self._deleted(live, data_file)
            deleted = union_positions(before, found)
            if len(deleted) == len(before):
                return [], []  # deleted by an earlier batch (the key's newer row is elsewhere)
            removed = [old] if old is not None else []
            if len(deleted) >= REWRITE_DELETED * data_file.record_count:
                with one_rewrite:  # a data file's rows in memory at a time, not one per thread
                    kept = self._kept_rows(tx, data_file, deleted)
                    return self._write_files(tx, delta, kept), [data_file, *removed]
            path = locations.new_data_location(
                f"{delta.commit_uuid}-{uuid.uuid4()}-deletes.parquet"
            )
            return [write_deletes(self.file_io, path, data_file.file_path, deleted)], removed

        with ThreadPoolExecutor(max_workers=DELETE_THREADS) as pool:
            for added, removed in pool.map(delete_in, candidates):
                for data_file in added:
                    delta.add(data_file)
                for data_file in removed:
                    delta.remove(data_file)

    def _compact(self, tx: Transaction, live: LiveFiles, commit: str) -> LiveFiles:
        """With ``COMPACT_FILES`` small data files, merge the smallest (up to ``COMPACT_BYTES``)
        into one, without the rows their delete files delete, in a snapshot of its own in the
        batch's transaction; returns the files the batch then starts from."""
        small = sorted(
            (e.data_file for e in live.data.values()
             if e.data_file.file_size_in_bytes < SMALL_FILE_BYTES),
            key=lambda f: f.file_size_in_bytes,
        )  # fmt: skip
        if len(small) < COMPACT_FILES:
            return live
        chosen, size = small[:2], sum(f.file_size_in_bytes for f in small[:2])
        for data_file in small[2:]:
            size += data_file.file_size_in_bytes
            if size > COMPACT_BYTES:
                break
            chosen.append(data_file)
        delta = RowDelta(tx, live, {COMMIT: commit, "dms.compaction": "true"})
        parts = []
        for data_file in chosen:
            delete_file, deleted = self._deleted(live, data_file)
            if delete_file is not None:
                delta.remove(delete_file)
            parts.append(self._kept_rows(tx, data_file, deleted))
            delta.remove(data_file)
        self._write(tx, delta, pa.concat_tables(parts))
        delta.commit()
        return live_files(tx)

    def _deleted(self, live: LiveFiles, data_file: DataFile) -> tuple[DataFile | None, pa.Array]:
        """A data file's delete file (None without one) and the positions it deletes."""
        entry = live.deletes.get(data_file.file_path)
        if entry is None:
            return None, _NO_POSITIONS
        return entry.data_file, read_positions(self.file_io, entry.data_file)

    def _kept_rows(self, tx: Transaction, data_file: DataFile, deleted: pa.Array) -> pa.Table:
        """The rows of a data file that ``deleted`` (positions) leaves, in the table's schema."""
        with self.file_io.new_input(data_file.file_path).open() as stream:
            rows = pq.read_table(stream)
        keep = pc.invert(pc.is_in(pa.array(range(rows.num_rows), pa.int64()), value_set=deleted))
        return self._conform(tx, rows.filter(keep))

    def _write(self, tx: Transaction, delta: RowDelta, rows: pa.Table) -> None:
        for data_file in self._write_files(tx, delta, rows):
            delta.add(data_file)

    def _write_files(self, tx: Transaction, delta: RowDelta, rows: pa.Table) -> list[DataFile]:
        """``rows`` written as data files of the table (pyiceberg's writer), not yet added."""
        if not rows.num_rows:
            return []
        return list(
            _dataframe_to_data_files(
                self._metadata(tx), rows, tx._table.io,
                write_uuid=delta.commit_uuid, counter=delta.file_counter,
            )
        )  # fmt: skip

    def _metadata(self, tx: Transaction) -> TableMetadata:
        """The transaction's table metadata. pyiceberg builds it anew at each
        ``tx.table_metadata``, copying every snapshot the table has (at 200 snapshots, 36 ms a
        time); it only changes when the transaction stages an update, so it is kept until then."""
        held = self._metadata_of
        if held is None or held[0] is not tx or held[1] != len(tx._updates):
            held = self._metadata_of = (tx, len(tx._updates), tx.table_metadata)
        return held[2]

    # Columns ------------------------------------------------------------------------------

    def _read(self, obj: DmsObject) -> FileRows:
        url = f"s3://{self.bucket}/{obj.key}"
        return read_object(self.file_io, url, self.target, obj.kind, self.spec.column_types)

    def _evolve(self, tx: Transaction, schema: pa.Schema, result: SyncResult) -> None:
        """Add the file's new columns to the table; refuse a column dropped or retyped."""
        current = self._metadata(tx).schema().as_arrow()
        data = pa.schema(f for f in schema if f.name != OP or not self.spec.key)
        gone = [n for n in current.names if n not in data.names]
        if gone:
            raise SchemaChangeError(
                f"{self.spec.name}: DMS's files no longer have column(s) {', '.join(gone)}. "
                "Dropped or renamed columns are not followed: reload the table in DMS "
                "(reload-target) after recreating it in the lake, or restore the column"
            )
        retyped = [
            f"{f.name} ({_plain(current.field(f.name).type)} → {_plain(f.type)})"
            for f in data
            if f.name in current.names and not _same_type(current.field(f.name).type, f.type)
        ]
        if retyped:
            raise SchemaChangeError(
                f"{self.spec.name}: column type changed: {', '.join(retyped)}; only added columns "
                "are followed: drop the Iceberg table and run again to rebuild it"
            )
        added = [f for f in data if f.name not in current.names]
        if added:
            with tx.update_schema() as update:
                update.union_by_name(pa.schema(added))
            result.columns_added.extend(f.name for f in added)

    def _aligned(self, tx: Transaction, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A change batch in the table's column order (Op first; columns the file lacks, as it
        predates them, NULL)."""
        schema = self._metadata(tx).schema().as_arrow()
        arrays, fields = [], []
        if OP in batch.schema.names and self.spec.key:
            arrays.append(batch.column(OP))
            fields.append(pa.field(OP, pa.string()))
        for f in schema:
            index = batch.schema.get_field_index(f.name)
            arrays.append(batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, f.type))
            fields.append(pa.field(f.name, f.type))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _conform(self, tx: Transaction, rows: pa.Table) -> pa.Table:
        """``rows`` in the table's schema (names, order, types and key columns not null)."""
        schema = self._metadata(tx).schema().as_arrow()
        columns = [
            rows.column(f.name) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
            for f in schema
        ]
        return pa.Table.from_arrays(columns, names=schema.names).cast(
            _nullable_except(schema, self.spec.key)
        )


def _after(obj: DmsObject, last: str) -> bool:
    """Whether a CDC object comes after the one applied last (by its name's timestamp)."""
    if not last:
        return True
    last_name = last.rsplit("/", 1)[-1]
    return (obj.name, obj.key) > (last_name, last)


def _gathered(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Batches gathered into tables of about ``size`` bytes of Arrow data."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.nbytes
        if count >= size:
            yield pa.Table.from_batches(held)
            held, count = [], 0
    if held:
        yield pa.Table.from_batches(held)


def _nullable_except(schema: pa.Schema, key: tuple[str, ...]) -> pa.Schema:
    return pa.schema(pa.field(f.name, f.type, nullable=f.name not in key) for f in schema)


def _plain(arrow_type: pa.DataType) -> pa.DataType:
    """string for large_string and binary for large_binary (pyiceberg reads them large)."""
    return {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}.get(
        arrow_type, arrow_type
    )


def _same_type(table_type: pa.DataType, file_type: pa.DataType) -> bool:
    """Equal types, counting string/large_string and binary/large_binary as one."""
    return bool(_plain(table_type).equals(_plain(file_type)))
