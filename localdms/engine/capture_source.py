"""The source side of change capture: what a CDC task creates on PostgreSQL, the checks it makes
first, and the stop position it honours (AWS DMS User Guide: CHAP_Source.PostgreSQL, "Enabling
CDC using a self-managed PostgreSQL database").

What a CDC task creates on the source (and what deleting the task drops):

* a logical replication slot ``localdms_<task id>`` using ``pgoutput``, the decoding plugin built
  into PostgreSQL (no extension to install; DMS itself prefers pglogical, then test_decoding);
* two publications naming the task's tables: ``localdms_<task id>`` publishes inserts, updates,
  deletes and truncates of the tables that have a replica identity (a primary key, a replica
  identity index, or REPLICA IDENTITY FULL); ``localdms_<task id>_ins`` publishes only inserts and
  truncates of the others. DMS ignores updates and deletes of tables without a primary key; this
  does the same, and it keeps PostgreSQL from refusing UPDATE/DELETE on those tables (which it does
  for tables published for updates without a replica identity).

"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg import sql

from dms_spec.status import StopReason
from localdms.endpoint_settings import PostgresSource
from localdms.engine.session import SESSION_OPTIONS
from localdms.table_mappings import TablePlan

log = logging.getLogger(__name__)

MARKER_PREFIX = "localdms"
"""The prefix of the WAL message that ends a capture at StopTaskCachedChangesApplied."""

REPLICA_IDENTITY_QUERY = """
SELECT n.nspname AS schema_name, c.relname AS table_name,
       c.relreplident = 'f'
       OR (c.relreplident = 'd' AND EXISTS (
             SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
       OR (c.relreplident = 'i' AND EXISTS (
             SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))
       AS has_identity
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
"""


class CdcError(Exception):
    """CDC cannot go on; ``str()`` is the reason as DMS would word it, ``recoverable`` says how."""

    def __init__(self, message: str, recoverable: bool = False) -> None:
        super().__init__(message)
        self.recoverable = recoverable


def slot_name(task_arn: str) -> str:
    """The task's slot (and publication) name: ``localdms_`` and the ARN's resource id.

    Example:
        >>> slot_name("arn:aws:dms:us-east-1:123456789012:task:ABC123DEF")
        'localdms_abc123def'
    """
    resource = re.sub(r"[^a-z0-9_]", "_", task_arn.rsplit(":", 1)[-1].lower())
    return f"localdms_{resource}"[:59]


def publication_names(slot: str) -> tuple[str, str]:
    """(with replica identity, inserts only) publication names of a task's slot."""
    return slot, f"{slot}_ins"


@dataclass(frozen=True)
class StopAt:
    """``CdcStopPosition``: ``server_time:<ISO time>`` or ``commit_time:<ISO time>`` (UTC)."""

    kind: str
    when: datetime

    @classmethod
    def parse(cls, text: str) -> StopAt:
        """Read a CdcStopPosition; ValueError saying what is accepted.

        Example:
            >>> StopAt.parse("commit_time:2026-01-02T03:04:05").when.isoformat()
            '2026-01-02T03:04:05+00:00'
        """
        kind, sep, value = text.partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in ("server_time", "commit_time"):
            raise ValueError(
                f"CdcStopPosition {text!r} is not valid: use server_time:<time> or "
                "commit_time:<time>, e.g. commit_time:2026-01-02T03:04:05"
            )
        when = datetime.fromisoformat(value.strip())
        return cls(kind, when if when.tzinfo else when.replace(tzinfo=UTC))

    @property
    def reason(self) -> StopReason:
        return (
            StopReason.STOPPED_AT_SERVER_TIME
            if self.kind == "server_time"
            else StopReason.STOPPED_AT_COMMIT_TIME
        )


def connect(source: PostgresSource, replication: bool) -> Any:
    """A psycopg2 connection to the source in the session settings of every source session
    (a replication connection when ``replication``); CdcError (recoverable) when it fails."""
    try:
        return psycopg2.connect(
            **source.psycopg2_arguments(),
            options=SESSION_OPTIONS,
            connection_factory=(
                psycopg2.extras.LogicalReplicationConnection if replication else None
            ),
        )
    except psycopg2.Error as exc:
        raise CdcError(source_text(source, exc), recoverable=True) from exc


def source_text(source: PostgresSource, exc: BaseException) -> str:
    """Where the source is and the first line of what it said (never the password)."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"PostgreSQL source {source.host}:{source.port}/{source.database} as {source.username}: "
        f"{detail}"
    )


async def check_source(connection: Any) -> None:
    """The prerequisites of CDC on the source (an asyncpg connection); CdcError when one fails."""
    settings = dict(
        await connection.fetch(
            "SELECT name, setting FROM pg_catalog.pg_settings "
            "WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders', "
            "'wal_sender_timeout')"
        )
    )
    if settings.get("wal_level") != "logical":
        raise CdcError(
            f"PostgreSQL source wal_level is {settings.get('wal_level')!r}: change data capture "
            "needs wal_level = logical (set it in postgresql.conf, or "
            "rds.logical_replication = 1 on RDS, and restart the server)."
        )
    timeout = int(settings.get("wal_sender_timeout", "60000"))
    if 0 < timeout < 10_000:
        raise CdcError(
            f"PostgreSQL source wal_sender_timeout is {timeout} ms: change data capture needs 0 "
            "or at least 10000 ms."
        )


async def check_slot(connection: Any, slot: str, owned: bool) -> None:
    """The slot must exist and decode with pgoutput (an asyncpg connection).

    Args:
        owned: the task's own slot (resuming), rather than the endpoint's SlotName.
    """
    row = await connection.fetchrow(
        "SELECT plugin FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", slot
    )
    if row is None and owned:
        raise CdcError(
            f"Replication slot {slot} no longer exists on the PostgreSQL source, so the task "
            "cannot resume. Start it with reload-target."
        )
    if row is None:
        raise CdcError(
            f"Replication slot {slot} (the source endpoint's SlotName) does not exist on the "
            "PostgreSQL source. Create it with pg_create_logical_replication_slot(slot, "
            "'pgoutput'), or remove SlotName to let the task create its own."
        )
    if row["plugin"] != "pgoutput":
        raise CdcError(
            f"Replication slot {slot} uses the {row['plugin']} plugin; localdms decodes with "
            "pgoutput. Create a pgoutput slot."
        )


async def create_publications(
    connection: Any, slot: str, plans: Sequence[TablePlan], replace: bool = True
) -> None:
    """Create the task's two publications over its tables (an asyncpg connection).

    Args:
        replace: drop existing ones first; otherwise existing publications are kept as they are.
    """
    identity = {
        (row["schema_name"], row["table_name"]): row["has_identity"]
        for row in await connection.fetch(REPLICA_IDENTITY_QUERY)
    }
    tables = [p.source for p in plans if p.source.kind == "table"]
    with_identity = [t for t in tables if identity.get((t.schema, t.name))]
    without = [t for t in tables if not identity.get((t.schema, t.name))]
    for name, members, publish in zip(
        publication_names(slot),
        (with_identity, without),
        ("insert, update, delete, truncate", "insert, truncate"),
        strict=True,
    ):
        if not replace and await connection.fetchval(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", name
        ):
            continue
        await connection.execute(
            sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)).as_string(None)
        )
        statement = sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(name))
        if members:
            statement = sql.SQL("{} FOR TABLE {}").format(
                statement,
                sql.SQL(", ").join(sql.Identifier(t.schema, t.name) for t in members),
            )
        statement = sql.SQL("{} WITH (publish = {})").format(statement, sql.Literal(publish))
        await connection.execute(statement.as_string(None))


def drop_capture(source: PostgresSource, slot: str) -> None:
    """Drop the task's slot and publications when they exist (waiting briefly for the slot to be
    released by a capture that is ending)."""
    connection = connect(source, replication=False)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            deadline = time.monotonic() + 10
            while True:
                cursor.execute(
                    "SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
                    (slot,),
                )
                row = cursor.fetchone()
                if row is None:
                    break
                if not row[0] or time.monotonic() > deadline:
                    cursor.execute("SELECT pg_catalog.pg_drop_replication_slot(%s)", (slot,))
                    break
                time.sleep(0.2)
            for name in publication_names(slot):
                cursor.execute(
                    sql.SQL("DROP PUBLICATION IF EXISTS {}")
                    .format(sql.Identifier(name))
                    .as_string(None)
                )
    finally:
        connection.close()


async def emit_marker(connection: Any, slot: str) -> None:
    """Write a marker into the WAL (an asyncpg connection): the capture stops when it reads it
    (StopTaskCachedChangesApplied: everything committed before the load ended is then written)."""
    await connection.execute(
        "SELECT pg_catalog.pg_logical_emit_message(false, $1, $2)", MARKER_PREFIX, slot
    )


def on_thread(function: Callable[[], None], name: str) -> threading.Thread:
    """Run ``function`` on a daemon thread, logging (never raising) what it raises."""

    def main() -> None:
        try:
            function()
        except Exception:
            log.exception("%s failed", name)

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()
    return thread
