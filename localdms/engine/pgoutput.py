"""Parsing PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

``pgoutput`` is the decoding plugin built into every PostgreSQL since 10, so CDC needs no extension
on the source. Each change arrives as one binary message; the message formats are PostgreSQL's
"Logical Replication Message Formats" (protocol documentation, chapter 55.9). Column values arrive
as text, from the types' output functions, in the replication session's settings (localdms sets
UTC, ISO dates and hex bytea on that session, as for the full load).

Example:
    >>> parse(b"B" + bytes(8) + bytes(8) + (7).to_bytes(4, "big"))
    Begin(final_lsn=0, commit_time=datetime.datetime(2000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), xid=7)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

UNCHANGED_TOAST = object()
"""A value that did not change and is stored out of line (TOAST): pgoutput does not send it."""

Value = str | None | object
"""A column value: its text form, None for NULL, or ``UNCHANGED_TOAST``."""


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str
    """``d`` default (primary key), ``n`` nothing, ``f`` full, ``i`` index."""
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    relation_oid: int
    old: tuple[Value, ...] | None
    """The key (``K``) or whole (``O``, REPLICA IDENTITY FULL) old row, when it was sent."""
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: tuple[Value, ...]
    """The key columns (others NULL), or the whole row with REPLICA IDENTITY FULL."""


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]


@dataclass(frozen=True)
class LogicalMessage:
    """A ``pg_logical_emit_message`` record (sent with the ``messages`` option)."""

    prefix: str
    content: bytes


@dataclass(frozen=True)
class Other:
    """A message CDC does not act on (type, origin, logical decoding message)."""

    kind: str


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | LogicalMessage | Other


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return int(value)

    def byte(self) -> str:
        value = chr(self.data[self.offset])
        self.offset += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\x00", self.offset)
        value = self.data[self.offset : end].decode()
        self.offset = end + 1
        return value

    def timestamp(self) -> datetime:
        return POSTGRES_EPOCH + timedelta(microseconds=self.take("!q"))

    def tuple(self) -> tuple[Value, ...]:
        """TupleData: the hot path of CDC (one call per changed row), so kept flat."""
        data, offset = self.data, self.offset
        count = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        values: list[Value] = []
        append = values.append
        for _ in range(count):
            kind = data[offset]
            offset += 1
            if kind == 0x74 or kind == 0x62:  # 't' text, 'b' binary
                length = int.from_bytes(data[offset : offset + 4], "big")
                offset += 4
                append(data[offset : offset + length].decode())
                offset += length
            elif kind == 0x6E:  # 'n' NULL
                append(None)
            elif kind == 0x75:  # 'u' unchanged TOAST
                append(UNCHANGED_TOAST)
            else:
                raise ValueError(f"unknown pgoutput tuple value kind {chr(kind)!r}")
        self.offset = offset
        return tuple(values)


def parse(payload: bytes) -> Message:
    """Decode one pgoutput message."""
    reader = _Reader(payload)
    kind = reader.byte()
    if kind == "B":
        return Begin(reader.take("!Q"), reader.timestamp(), reader.take("!I"))
    if kind == "C":
        reader.byte()  # flags, unused
        return Commit(reader.take("!Q"), reader.take("!Q"), reader.timestamp())
    if kind == "R":
        oid = reader.take("!I")
        schema, name = reader.string(), reader.string()
        identity = reader.byte()
        columns = []
        for _ in range(reader.take("!H")):
            flags = reader.take("!B")
            column_name = reader.string()
            type_oid = reader.take("!I")
            reader.take("!i")  # typmod
            columns.append(RelationColumn(column_name, type_oid, bool(flags & 1)))
        return Relation(oid, schema, name, identity, tuple(columns))
    if kind == "I":
        oid = reader.take("!I")
        reader.byte()  # 'N'
        return Insert(oid, reader.tuple())
    if kind == "U":
        oid = reader.take("!I")
        marker = reader.byte()
        old = None
        if marker in ("K", "O"):
            old = reader.tuple()
            marker = reader.byte()
        return Update(oid, old, reader.tuple())
    if kind == "D":
        oid = reader.take("!I")
        reader.byte()  # 'K' or 'O'
        return Delete(oid, reader.tuple())
    if kind == "T":
        count = reader.take("!I")
        reader.byte()  # options (CASCADE, RESTART IDENTITY)
        return Truncate(tuple(reader.take("!I") for _ in range(count)))
    if kind == "M":
        reader.byte()  # flags: transactional or not
        reader.take("!Q")  # the message's LSN
        prefix = reader.string()
        length = reader.take("!I")
        return LogicalMessage(prefix, payload[reader.offset : reader.offset + length])
    return Other(kind)


def format_lsn(lsn: int) -> str:
    """PostgreSQL's ``X/X`` form of a WAL position.

    Example:
        >>> format_lsn(0x4AF_B00000D0)
        '4AF/B00000D0'
    """
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """The WAL position of ``X/X`` text; ValueError when it is not one.

    Example:
        >>> parse_lsn("4AF/B00000D0") == 0x4AF_B00000D0
        True
    """
    high, sep, low = text.strip().partition("/")
    if not sep:
        raise ValueError(f"{text!r} is not a PostgreSQL LSN (like 4AF/B00000D0)")
    return (int(high, 16) << 32) | int(low, 16)
