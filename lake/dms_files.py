"""The S3 objects of one table as DMS writes them, in the order they must be applied.

Under ``[BucketFolder/]schema/table/`` DMS writes the full load as ``LOAD00000001.csv``,
``LOAD00000002.csv``, ... (uppercase hexadecimal; ``.csv.gz`` or ``.parquet`` by the endpoint's
settings) and then the changes as ``yyyyMMdd-HHmmssSSS.csv`` files named after their UTC creation
time, in date folders under the table's folder when DatePartitionEnabled is set (AWS DMS User
Guide, CHAP_Target.S3). The LOAD files come first in name order; the CDC files follow in the order
of their names' timestamps, whatever the date folders' sequence (``DDMMYYYY`` folders do not sort
by time).

Example:
    >>> kind_of("raw/public/album/LOAD0000000A.csv.gz"), kind_of("public/album/2024/01/02/20240102-101112013.parquet")
    ('load', 'cdc')
    >>> kind_of("public/album/notes.txt") is None
    True
    >>> keys = ["t/2024/01/03/20240103-000000000.csv", "t/LOAD00000002.csv",
    ...         "t/03/01/2024/20240102-235959999.csv", "t/LOAD00000001.csv"]
    >>> [o.key for o in in_apply_order([DmsObject(k, "e", 1) for k in keys])]
    ['t/LOAD00000001.csv', 't/LOAD00000002.csv', 't/03/01/2024/20240102-235959999.csv', 't/2024/01/03/20240103-000000000.csv']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from dms_spec.s3_layout import LOAD_FILE

CDC_FILE = re.compile(r"^(?P<stamp>\d{8}-\d{9})\.(csv|csv\.gz|parquet)$")
"""The name of a CDC file (the last part of its key)."""


def kind_of(key: str) -> Literal["load", "cdc"] | None:
    """Whether an object key is a LOAD file, a CDC file, or neither."""
    name = key.rsplit("/", 1)[-1]
    if LOAD_FILE.fullmatch(name):
        return "load"
    if CDC_FILE.match(name):
        return "cdc"
    return None


@dataclass(frozen=True)
class DmsObject:
    """One object DMS wrote: its key, ETag and size."""

    key: str
    etag: str
    size: int

    @property
    def kind(self) -> Literal["load", "cdc"]:
        kind = kind_of(self.key)
        if kind is None:
            raise ValueError(f"{self.key} is not a DMS LOAD or CDC file")
        return kind

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def in_apply_order(objects: Iterable[DmsObject]) -> list[DmsObject]:
    """LOAD files by name, then CDC files by the timestamp in their names (then by key)."""
    return sorted(objects, key=lambda o: (o.kind == "cdc", o.name, o.key))


def list_table_objects(s3: Any, bucket: str, prefix: str) -> list[DmsObject]:
    """The table's LOAD and CDC objects under ``prefix`` (date folders included), in apply
    order; anything else under it (DMS writes nothing else there) is left out."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            if kind_of(key) is not None:
                found.append(DmsObject(key, str(item["ETag"]).strip('"'), int(item["Size"])))
    return in_apply_order(found)
