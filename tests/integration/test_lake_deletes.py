"""How the lake deletes rows: position delete files (merge-on-read), one per data file, and a data
file rewritten once a fifth of it is deleted. DMS-shaped Parquet files are written by hand into
moto's S3 (keys checked), so each test knows which rows each file holds; the table is read back as
a consumer reads it (a pyiceberg scan, which applies the delete files) and through its metadata
(the snapshot summary, the files it lists)."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFileContent
from pyiceberg.table import Table

from dms_spec.s3_target import S3Target
from lake.apply import (
    COMPACT_FILES,
    LAST_CDC_OBJECT,
    REWRITE_DELETED,
    LakeTable,
    SyncResult,
    TableSpec,
)
from lake.catalogs import file_io
from lake.dms_files import list_table_objects
from lake.row_delta import MERGE_MANIFESTS
from tests.integration.test_lake_apply import catalog_for

pytestmark = pytest.mark.integration

ROWS = 1_000


class Source:
    """A table's rows as the source holds them, and the DMS files that say so."""

    def __init__(self, s3: Any, bucket: str, key: tuple[str, ...] = ("id",)) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.clock = itertools.count(1)
        self.schema = pa.schema([])

    def load(self, rows: list[dict[str, Any]]) -> None:
        """The full load (again: a reload removes the table's CDC files, as DMS's
        DROP_AND_CREATE does, and writes new LOAD files)."""
        for obj in self.objects():
            self.s3.delete_object(Bucket=self.bucket, Key=obj.key)
        self.rows = {self._key(r): r for r in rows}
        table = pa.Table.from_pylist(rows)
        self.schema = table.schema
        self._put("app/t/LOAD00000001.parquet", table)

    def change(self, changes: list[tuple[str, dict[str, Any]]]) -> None:
        """One CDC file: (Op, row) in commit order."""
        for op, row in changes:
            if op == "D":
                self.rows.pop(self._key(row))
            else:
                self.rows[self._key(row)] = row
        schema = pa.schema([pa.field("Op", pa.string()), *self.schema])
        table = pa.Table.from_pylist([{"Op": op, **row} for op, row in changes], schema)
        self._put(f"app/t/2026/12/08/20261208-{next(self.clock):09d}.parquet", table)

    def objects(self) -> list[Any]:
        return list_table_objects(self.s3, self.bucket, "app/t/")

    def _key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.key)

    def _put(self, key: str, table: pa.Table) -> None:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=sink.getvalue())


def row(i: int, v: str = "v") -> dict[str, Any]:
    return {"id": i, "v": f"{v}{i}"}


def lake_for(s3: Any, s3_server: Any, tmp_path: Any, key: tuple[str, ...] = ("id",),
             batch_files: int = 100) -> tuple[Catalog, LakeTable, Source]:  # fmt: skip
    s3.create_bucket(Bucket="lake")
    catalog = catalog_for(s3_server, tmp_path, "lake")
    target = S3Target.from_settings({"BucketName": "lake", "DataFormat": "parquet"})
    spec = TableSpec("app", "t", ("app", "t"), key=key)
    lake = LakeTable(catalog, spec, target, file_io(catalog), "lake", batch_files)
    return catalog, lake, Source(s3, "lake", key)


def scanned(table: Table, key: tuple[str, ...] = ("id",)) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in key): r for r in table.scan().to_arrow().to_pylist()}


def files(table: Table) -> tuple[set[str], dict[str, int]]:
    """The table's data files, and its delete files' row counts by the data file they name."""
    data, deletes = set(), {}
    for task in table.scan().plan_files():
        data.add(task.file.file_path)
        for delete in task.delete_files:
            assert delete.content == DataFileContent.POSITION_DELETES
            deletes[task.file.file_path] = deletes.get(task.file.file_path, 0) + delete.record_count
    return data, deletes


def summary(table: Table) -> dict[str, str]:
    snapshot = table.current_snapshot()
    assert snapshot is not None
    assert snapshot.summary is not None
    return dict(snapshot.summary.additional_properties)


def test_changes_delete_by_position_and_leave_the_data_files(s3, s3_server, tmp_path):
    catalog, lake, source = lake_for(s3, s3_server, tmp_path)
    source.load([row(i) for i in range(1, ROWS + 1)])
    lake.sync(source.objects())
    table = catalog.load_table(("app", "t"))
    (load_file,), deletes = files(table)
    assert deletes == {}

    source.change(
        [("U", row(i, "u")) for i in range(10, 110, 10)]
        + [("D", {"id": i, "v": None}) for i in range(7, 12)]
        + [("I", row(i)) for i in range(2_000, 2_005)]
    )
    result = lake.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    data, deletes = files(table)
    assert load_file in data, "the LOAD data file was rewritten"
    assert deletes == {load_file: 14}  # 10 updated, 5 deleted, one key (10) both
    assert summary(table)["total-position-deletes"] == "14"
    assert scanned(table) == source.rows
    assert result.rows == len(source.rows) == ROWS - 5 + 5
    assert (result.inserts, result.updates, result.deletes) == (5, 10, 5)


def test_a_key_changed_again_is_deleted_where_it_now_is_and_counted_once(s3, s3_server, tmp_path):
    catalog, lake, source = lake_for(s3, s3_server, tmp_path)
    source.load([row(i) for i in range(1, ROWS + 1)])
    lake.sync(source.objects())
    (load_file,), _ = files(catalog.load_table(("app", "t")))
    source.change([("U", row(i, "first")) for i in range(1, 51)])
    lake.sync(source.objects())
    data, _ = files(catalog.load_table(("app", "t")))
    (first_batch,) = data - {load_file}

    source.change([("U", row(i, "second")) for i in range(1, 6)])
    result = lake.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    data, deletes = files(table)
    assert {load_file, first_batch} <= data
    assert deletes[load_file] == 50, "the LOAD file's rows 1-5 are deleted once, not twice"
    assert deletes[first_batch] == 5
    assert summary(table)["total-position-deletes"] == "55"
    assert scanned(table) == source.rows
    assert result.rows == ROWS


def test_a_data_file_all_deleted_leaves_the_table(s3, s3_server, tmp_path):
    catalog, lake, source = lake_for(s3, s3_server, tmp_path)
    source.load([row(i) for i in range(1, ROWS + 1)])
    lake.sync(source.objects())
    (load_file,), _ = files(catalog.load_table(("app", "t")))
    source.change([("I", row(i)) for i in range(5_000, 5_010)])
    lake.sync(source.objects())
    (inserted,) = files(catalog.load_table(("app", "t")))[0] - {load_file}

    source.change([("U", row(i, "again")) for i in range(5_000, 5_010)])
    lake.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    data, deletes = files(table)
    assert inserted not in data, "the file whose every row changed is dropped, not masked"
    assert len(data) == 2
    assert deletes == {}
    assert scanned(table) == source.rows


def test_a_data_file_a_fifth_deleted_is_rewritten_without_its_deleted_rows(s3, s3_server, tmp_path):
    catalog, lake, source = lake_for(s3, s3_server, tmp_path)
    source.load([row(i) for i in range(1, ROWS + 1)])
    lake.sync(source.objects())
    (load_file,), _ = files(catalog.load_table(("app", "t")))
    below = int(ROWS * REWRITE_DELETED) - 1
    source.change([("D", {"id": i, "v": None}) for i in range(1, below + 1)])
    lake.sync(source.objects())
    assert files(catalog.load_table(("app", "t")))[1] == {load_file: below}

    source.change([("D", {"id": below + 1, "v": None}), ("U", row(ROWS, "u"))])
    result = lake.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    data, deletes = files(table)
    assert load_file not in data
    assert deletes == {}
    assert summary(table)["total-position-deletes"] == "0"
    assert summary(table)["total-records"] == str(len(source.rows))
    assert scanned(table) == source.rows
    assert result.rows == ROWS - below - 1


def test_a_rebuild_drops_the_delete_files_with_the_data_files(s3, s3_server, tmp_path):
    catalog, lake, source = lake_for(s3, s3_server, tmp_path)
    source.load([row(i) for i in range(1, ROWS + 1)])
    lake.sync(source.objects())
    source.change([("U", row(i, "u")) for i in range(1, 50)])
    lake.sync(source.objects())
    assert summary(catalog.load_table(("app", "t")))["total-delete-files"] == "1"

    source.load([row(i, "reloaded") for i in range(1, 301)])  # a reload: new ETag
    result = lake.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    assert result.rebuilt
    assert files(table)[1] == {}
    totals = summary(table)
    assert (totals["total-delete-files"], totals["total-position-deletes"]) == ("0", "0")
    assert totals["total-records"] == "300"
    assert scanned(table) == source.rows


def test_a_compound_key_is_found_by_all_of_its_columns(s3, s3_server, tmp_path):
    key = ("region", "id")
    catalog, lake, source = lake_for(s3, s3_server, tmp_path, key=key)
    source.load([{"region": r, "id": i, "v": "v"} for r in ("eu", "us") for i in range(1, 201)])
    lake.sync(source.objects())

    source.change([
        ("U", {"region": "eu", "id": 5, "v": "changed"}),
        ("D", {"region": "us", "id": 5, "v": None}),
        ("I", {"region": "ap", "id": 5, "v": "new"}),
    ])  # fmt: skip
    result = lake.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    assert list(files(table)[1].values()) == [2]
    assert scanned(table, key) == source.rows
    assert result.rows == 400


def test_many_commits_keep_the_manifests_and_the_small_files_few(s3, s3_server, tmp_path):
    """Each batch adds a small data file spanning the keys it inserted and updated, so a later
    batch would read them all: once there are ``COMPACT_FILES``, a batch merges them first."""
    catalog, lake, source = lake_for(s3, s3_server, tmp_path, batch_files=1)
    source.load([row(i) for i in range(1, ROWS + 1)])
    lake.sync(source.objects())
    commits = MERGE_MANIFESTS + 8
    for n in range(commits):
        source.change([("U", row(n % 50 + 1, f"u{n}-")), ("I", row(10_000 + n))])

    result: SyncResult = lake.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    assert result.commits == commits
    snapshot = table.current_snapshot()
    assert snapshot is not None
    assert len(snapshot.manifests(table.io)) <= MERGE_MANIFESTS
    data, deletes = files(table)
    assert len(data) < COMPACT_FILES
    merges = [s for s in table.snapshots() if (s.summary or {}).get("dms.compaction") == "true"]
    assert merges, "no batch merged the small files"
    assert scanned(table) == source.rows
    assert result.rows == ROWS + commits
    assert int(summary(table)["total-position-deletes"]) == sum(deletes.values())


def test_a_commit_racing_another_writer_is_refused_and_applied_by_the_next_run(
    s3, s3_server, tmp_path
):
    """Positions are found in the snapshot a commit replaces: when another writer commits in
    between, the commit fails with nothing of it applied, and the next run applies the batch."""
    catalog, lake, source = lake_for(s3, s3_server, tmp_path)
    source.load([row(i) for i in range(1, ROWS + 1)])
    lake.sync(source.objects())
    source.change([("U", row(5, "changed")), ("D", {"id": 6, "v": None})])

    class Racing(LakeTable):
        def _delete_keys(self, tx: Any, delta: Any, live: Any, keys: pa.Table) -> None:
            other = catalog.load_table(("app", "t"))
            schema = other.schema().as_arrow()
            other.append(pa.table({"id": [99_999], "v": ["other"]}, schema=schema))
            super()._delete_keys(tx, delta, live, keys)

    racing = Racing(lake.catalog, lake.spec, lake.target, lake.file_io, "lake")
    with pytest.raises(CommitFailedException, match="changed while this run applied"):
        racing.sync(source.objects())

    table = catalog.load_table(("app", "t"))
    assert table.properties[LAST_CDC_OBJECT] == ""
    rows = scanned(table)
    assert rows[(5,)] == row(5)
    assert rows[(6,)] == row(6)
    assert rows[(99_999,)] == {"id": 99_999, "v": "other"}

    result = lake.sync(source.objects())
    source.rows[(99_999,)] = {"id": 99_999, "v": "other"}
    assert result.cdc_objects == 1
    assert scanned(catalog.load_table(("app", "t"))) == source.rows
