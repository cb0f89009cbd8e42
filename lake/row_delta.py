"""One Iceberg snapshot that adds data files and position delete files and removes files.

This is Iceberg's ``RowDelta`` (with ``RewriteFiles``' removal), which pyiceberg 0.12 does not
have: its scans apply position deletes, but its writes commit appends, overwrites and
copy-on-write deletes only, and a copy-on-write delete rewrites every data file holding a key it
removes, so a batch of changes spread over a table costs the whole table. ``lake.apply`` writes
the delete files (``lake.position_deletes``) and the data files (pyiceberg's writer); this
module commits them.

It is built on pyiceberg's snapshot producer, a private class (hence ``pyiceberg<0.13`` in
pyproject.toml): the manifest list, the snapshot summary (``total-position-deletes`` and the
rest), the commit and the cleanup of a failed one stay pyiceberg's. What is here is what that
producer leaves to its subclasses: which manifests the new snapshot has. Added data files go in a
data manifest and added delete files in a delete manifest (pyiceberg has no writer for one: it is
its v2 writer with ``content`` set to deletes); a manifest holding a removed file is rewritten
with that file's entry marked deleted and the others existing; and the manifests of each kind are
merged into one once there are ``MERGE_MANIFESTS`` of them, so planning a scan reads a bounded
number of manifests however many commits the table has had.

A concurrent commit to the table is refused rather than retried: the positions were found in the
snapshot this one replaces.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriter,
    ManifestWriterV2,
)
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update import UpdatesAndRequirements
from pyiceberg.table.update.snapshot import _SnapshotProducer
from pyiceberg.typedef import EMPTY_DICT

from lake.position_deletes import referenced_path

MERGE_MANIFESTS = 16
"""Manifests of one kind (data or deletes) that are merged into one."""


class _DeleteManifestWriter(ManifestWriterV2):
    """pyiceberg's v2 manifest writer, for a manifest of delete files."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


@dataclass
class LiveFiles:
    """The files of a snapshot: its data files, and the position delete file of each."""

    snapshot_id: int | None = None
    manifests: list[tuple[ManifestFile, list[ManifestEntry]]] = field(default_factory=list)
    """The snapshot's manifests, each with its live entries (read once, for the commit too)."""
    data: dict[str, ManifestEntry] = field(default_factory=dict)
    """Data files by path."""
    deletes: dict[str, ManifestEntry] = field(default_factory=dict)
    """Position delete files by the path of the data file they refer to (one each, as
    ``lake.apply`` writes them)."""
    unreferenced: list[ManifestEntry] = field(default_factory=list)
    """Delete files that name no single data file (written by another engine)."""

    def entries(self) -> list[ManifestEntry]:
        return [e for _, entries in self.manifests for e in entries]


def live_files(tx: Transaction) -> LiveFiles:
    """The data and delete files of the transaction's current snapshot (its manifests read in
    parallel)."""
    snapshot = tx.table_metadata.current_snapshot()
    if snapshot is None:
        return LiveFiles()
    io = tx._table.io
    manifests = snapshot.manifests(io)
    with ThreadPoolExecutor(max_workers=8) as pool:
        entries = list(pool.map(lambda m: m.fetch_manifest_entry(io, discard_deleted=True),
                                manifests))  # fmt: skip
    live = LiveFiles(snapshot.snapshot_id, list(zip(manifests, entries, strict=True)))
    for entry in live.entries():
        data_file = entry.data_file
        if data_file.content == DataFileContent.DATA:
            live.data[data_file.file_path] = entry
        elif (path := referenced_path(data_file)) is not None:
            live.deletes[path] = entry
        else:
            live.unreferenced.append(entry)
    return live


class RowDelta(_SnapshotProducer["RowDelta"]):
    """Adds data and delete files and removes files, in one snapshot of ``tx``.

    Args:
        tx: the transaction the snapshot is committed in.
        live: the files of the snapshot it replaces (``live_files(tx)``).
        snapshot_properties: added to the snapshot's summary.

    ``add`` and ``remove`` files, then ``commit()``: the snapshot is staged in ``tx`` and lands
    with it.
    """

    def __init__(
        self, tx: Transaction, live: LiveFiles, snapshot_properties: dict[str, str] = EMPTY_DICT
    ) -> None:
        super().__init__(
            Operation.APPEND, tx, tx._table.io, snapshot_properties=snapshot_properties
        )
        self.file_counter: itertools.count[int] = itertools.count(0)
        """For pyiceberg's data file writer: numbers the files written under this commit's id."""
        self._removed: set[str] = set()
        self._live = live
        self._metadata_held: TableMetadata | None = None

    def add(self, data_file: DataFile) -> RowDelta:
        """Add a data file or a position delete file."""
        self._added_data_files.append(data_file)
        return self

    def remove(self, data_file: DataFile) -> RowDelta:
        """Remove a data file or a delete file the current snapshot has."""
        self._deleted_data_files.add(data_file)
        self._removed.add(data_file.file_path)
        return self

    def _commit(self) -> UpdatesAndRequirements:
        deletes = any(f.content != DataFileContent.DATA for f in self._added_data_files)
        self._operation = Operation.OVERWRITE if deletes or self._removed else Operation.APPEND
        return super()._commit()

    def _validate_concurrency(self) -> None:
        if self._commit_window is not None and not self._commit_window.is_empty():
            raise CommitFailedException(
                "the Iceberg table changed while this run applied changes to it (another run or "
                "engine wrote to it); nothing was committed: run again"
            )

    def _deleted_entries(self) -> list[ManifestEntry]:
        return []  # written by _manifests, in the rewritten manifests

    def _existing_manifests(self) -> list[ManifestFile]:
        return []  # written by _manifests

    def schema(self) -> Schema:
        return self._metadata().schema()

    def spec(self, spec_id: int) -> PartitionSpec:
        return self._metadata().specs()[spec_id]

    def _metadata(self) -> TableMetadata:
        """The transaction's metadata, read once for the manifests (pyiceberg copies every
        snapshot at each ``table_metadata``; nothing changes it while they are written)."""
        if self._metadata_held is None:
            self._metadata_held = self._transaction.table_metadata
        return self._metadata_held

    def _manifests(self) -> list[ManifestFile]:
        self._metadata_held = None
        added = {
            content: [f for f in self._added_data_files if _kind(f) == content]
            for content in (ManifestContent.DATA, ManifestContent.DELETES)
        }
        manifests: list[ManifestFile] = []
        for content, files in added.items():
            if files:
                with self._writer(content) as writer:
                    for data_file in files:
                        writer.add_entry(
                            ManifestEntry.from_args(
                                status=ManifestEntryStatus.ADDED, snapshot_id=self._snapshot_id,
                                sequence_number=None, file_sequence_number=None,
                                data_file=data_file,
                            )
                        )  # fmt: skip
                manifests.append(writer.to_manifest_file())
        if self._parent_snapshot_id != self._live.snapshot_id:
            raise CommitFailedException(
                "the Iceberg table changed while this run applied changes to it; nothing was "
                "committed: run again"
            )
        kept: dict[ManifestContent, list[tuple[ManifestFile, list[ManifestEntry]]]] = {
            ManifestContent.DATA: [],
            ManifestContent.DELETES: [],
        }
        for manifest, entries in self._live.manifests:
            if entries:  # else only entries deleted by an earlier snapshot
                kept[manifest.content].append((manifest, entries))
        for content, old in kept.items():
            if len(old) + 1 >= MERGE_MANIFESTS:
                manifests.extend(self._rewrite(content, old))
                continue
            for manifest, entries in old:
                if any(e.data_file.file_path in self._removed for e in entries):
                    manifests.extend(self._rewrite(content, [(manifest, entries)]))
                else:
                    manifests.append(manifest)
        return manifests

    def _rewrite(
        self, content: ManifestContent, manifests: list[tuple[ManifestFile, list[ManifestEntry]]]
    ) -> list[ManifestFile]:
        """``manifests`` as one: their live entries existing, or deleted by this snapshot when
        removed (none when nothing is left)."""
        entries = [e for _, manifest_entries in manifests for e in manifest_entries]
        if not entries:
            return []
        with self._writer(content, manifests[0][0].partition_spec_id) as writer:
            for entry in entries:
                if entry.data_file.file_path in self._removed:
                    writer.delete(entry)
                else:
                    writer.existing(entry)
        return [writer.to_manifest_file()]

    def _writer(self, content: ManifestContent, spec_id: int | None = None) -> ManifestWriter:
        metadata = self._metadata()
        spec = metadata.specs()[spec_id] if spec_id is not None else metadata.spec()
        if content == ManifestContent.DATA:
            return self.new_manifest_writer(spec)
        return _DeleteManifestWriter(
            spec, self.schema(), self.new_manifest_output(), self._snapshot_id, self._compression
        )


def _kind(data_file: DataFile) -> ManifestContent:
    if data_file.content == DataFileContent.DATA:
        return ManifestContent.DATA
    return ManifestContent.DELETES
