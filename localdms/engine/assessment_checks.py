"""The individual premigration assessments, really checked against the PostgreSQL source and
the task's mappings and settings (names and meaning: ``dms_spec.assessments``).

Each check returns a ``Finding``: DMS's status (``passed``, ``warning``, ``failed``), a message
that says what to change, and the objects concerned (``schema.table`` or
``schema.table.column``). A check that cannot run is ``error`` with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from psycopg import sql

from dms_spec.assessments import AssessmentStatus
from dms_spec.lob import (
    is_lob_type,
    limited_lob_size,
    lob_type,
    supports_lobs,
    unsupported_lob_mode,
)
from dms_spec.source_types import label, verdict
from dms_spec.table_mappings import Rule
from localdms.endpoint_settings import PostgresSource
from localdms.engine.columns import lob_size
from localdms.engine.source_tables import read_catalog
from localdms.engine.table_load import arrays_without_primary_key
from localdms.table_mappings import MappingError, SourceColumn, TablePlan, plan_tables

LONG_TRANSACTION_SECONDS = 600


@dataclass
class Finding:
    """The result of one individual assessment."""

    name: str
    status: str
    message: str
    objects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scope:
    """What the checks look at: the task's tables on the source, and its settings."""

    plans: list[TablePlan]
    migration_type: str
    settings: dict[str, Any]
    username: str

    def lob_columns(self) -> list[tuple[TablePlan, SourceColumn]]:
        return [(plan, column) for plan in self.plans for column, _ in plan.columns
                if is_lob(column)]  # fmt: skip


def is_lob(column: SourceColumn) -> bool:
    """Whether DMS migrates this column as a LOB (``dms_spec.lob``)."""
    return is_lob_type(column.base_type)


def _name(plan: TablePlan, column: str | None = None) -> str:
    table = f"{plan.source.schema}.{plan.source.name}"
    return f"{table}.{column}" if column else table


Check = Callable[[Any, Scope], Awaitable[Finding]]


async def _settings(connection: Any, *names: str) -> dict[str, str]:
    rows = await connection.fetch(
        "SELECT name, setting FROM pg_catalog.pg_settings WHERE name = ANY($1::text[])",
        list(names),
    )
    return {row["name"]: row["setting"] for row in rows}


async def check_dbversion(connection: Any, scope: Scope) -> Finding:
    version = int(await connection.fetchval("SHOW server_version_num"))
    text = await connection.fetchval("SHOW server_version")
    if version < 100_000:
        return Finding("postgres-check-dbversion", AssessmentStatus.FAILED,
                       f"PostgreSQL {text} is older than 10, which DMS (and localdms's pgoutput "
                       "decoding) needs: upgrade the source.")  # fmt: skip
    return Finding(
        "postgres-check-dbversion", AssessmentStatus.PASSED, f"PostgreSQL {text} is supported."
    )


async def check_select_privileges(connection: Any, scope: Scope) -> Finding:
    missing = []
    for plan in scope.plans:
        allowed = await connection.fetchval(
            "SELECT has_table_privilege(current_user, format('%I.%I', $1::text, $2::text), "
            "'SELECT')",
            plan.source.schema, plan.source.name,
        )  # fmt: skip
        if not allowed:
            missing.append(_name(plan))
    if missing:
        return Finding("postgres-check-select-object-privileges", AssessmentStatus.FAILED,
                       f"The endpoint's user {scope.username} cannot SELECT from "
                       f"{len(missing)} table(s) in the task's scope: GRANT SELECT on them.",
                       missing)  # fmt: skip
    return Finding("postgres-check-select-object-privileges", AssessmentStatus.PASSED,
                   f"{scope.username} can read every table in scope.")  # fmt: skip


async def check_limited_lob_size(connection: Any, scope: Scope) -> Finding:
    limit = limited_lob_size(scope.settings)
    max_kb = (limit or 0) // 1024
    columns = scope.lob_columns()
    if not columns:
        return Finding("postgres-check-limited-lob-size", AssessmentStatus.PASSED,
                       "No LOB columns (bytea, text, json, jsonb, xml, arrays...) in scope.")  # fmt: skip
    if not supports_lobs(scope.settings):
        return Finding("postgres-check-limited-lob-size", AssessmentStatus.WARNING,
                       f"{len(columns)} LOB column(s) are not migrated: SupportLobs is false.",
                       [_name(plan, column.name) for plan, column in columns])  # fmt: skip
    assert limit is not None  # None only when SupportLobs is false, answered above
    mode = unsupported_lob_mode(scope.settings)
    over = []
    largest = 0
    by_table: dict[str, tuple[TablePlan, list[SourceColumn]]] = {}
    for plan, column in columns:
        by_table.setdefault(_name(plan), (plan, []))[1].append(column)
    for plan, lobs in by_table.values():
        # One scan a table; sizes as the load cuts them (dms_spec.lob): bytes, two a character
        # of an NCLOB.
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("max({})").format(lob_size(c)) for c in lobs),
            sql.Identifier(plan.source.schema, plan.source.name),
        )
        sizes = await connection.fetchrow(query.as_string())
        for column, size in zip(lobs, sizes, strict=True):
            largest = max(largest, size or 0)
            if (size or 0) > limit:
                over.append(
                    f"{_name(plan, column.name)} ({lob_type(column.base_type)}, {size:,} bytes)"
                )
    if over:
        return Finding("postgres-check-limited-lob-size", AssessmentStatus.WARNING,
                       f"{len(over)} LOB column(s) hold values longer than LobMaxSize "
                       f"({max_kb} KB) and would be truncated in limited LOB mode"
                       + (f" ({mode})" if mode else "") + ": raise TargetMetadata.LobMaxSize to "
                       f"at least {-(-largest // 1024)} KB.", over)  # fmt: skip
    return Finding("postgres-check-limited-lob-size", AssessmentStatus.PASSED,
                   f"Every LOB value fits LobMaxSize ({max_kb} KB); the longest is "
                   f"{largest:,} bytes.")  # fmt: skip


def _tables(scope: Scope) -> dict[str, TablePlan]:
    """``schema.table`` → plan, for the tables in scope (views have no keys); their keys and
    replica identity are the catalog's (``SourceTable``)."""
    return {_name(plan): plan for plan in scope.plans if plan.source.kind == "table"}


async def check_pk(connection: Any, scope: Scope) -> Finding:
    missing = [name for name, plan in _tables(scope).items()
               if not plan.source.primary_key and plan.source.replica_identity != "f"]  # fmt: skip
    if missing:
        return Finding("postgres-check-pk", AssessmentStatus.FAILED,
                       f"{len(missing)} table(s) have no primary key and REPLICA IDENTITY is not "
                       "FULL: their updates and deletes are not captured. Add a primary key, or "
                       "ALTER TABLE ... REPLICA IDENTITY FULL.", missing)  # fmt: skip
    return Finding(
        "postgres-check-pk", AssessmentStatus.PASSED, "Every table in scope has a primary key."
    )


async def check_no_pk_or_unique(connection: Any, scope: Scope) -> Finding:
    missing = [name for name, plan in _tables(scope).items() if not plan.source.has_unique_index]
    if missing:
        return Finding("table-with-no-primary-key-or-unique-constraint", AssessmentStatus.WARNING,
                       f"{len(missing)} table(s) have neither a primary key nor a unique "
                       "constraint, which slows change capture.", missing)  # fmt: skip
    return Finding("table-with-no-primary-key-or-unique-constraint", AssessmentStatus.PASSED,
                   "Every table in scope has a primary key or unique constraint.")  # fmt: skip


async def check_pk_lob(connection: Any, scope: Scope) -> Finding:
    bad: list[str] = []
    for name, plan in _tables(scope).items():
        types = {column.name: column for column, _ in plan.columns}
        bad.extend(f"{name}.{c}" for c in plan.source.primary_key
                   if c in types and is_lob(types[c]))  # fmt: skip
    if bad:
        return Finding("postgres-check-pk-lob", AssessmentStatus.FAILED,
                       "Primary key columns of a LOB type (DMS cannot replicate them): change "
                       "the key or its type.", bad)  # fmt: skip
    return Finding(
        "postgres-check-pk-lob", AssessmentStatus.PASSED, "No primary key column is a LOB."
    )


async def check_unsupported_types(connection: Any, scope: Scope) -> Finding:
    found: dict[str, list[str]] = {"not migrated": [], "partially migrated": []}
    for plan in scope.plans:
        for column, _ in plan.columns:
            kind = verdict(column.base_type, column.type_name)
            if kind is not None:
                found[kind].append(
                    f"{_name(plan, column.name)} ({label(column.base_type, column.type_name)})"
                )
    missing, partial = found["not migrated"], found["partially migrated"]
    if not missing and not partial:
        return Finding("unsupported-data-types-in-source", AssessmentStatus.PASSED,
                       "Every column's type migrates successfully.")  # fmt: skip
    parts = []
    if missing:
        parts.append(f"{len(missing)} column(s) of types the guide lists as not migrated (ENUM, "
                     "INET and MACADDR also appear in its type map as strings, which is how "
                     "localdms writes them)")  # fmt: skip
    if partial:
        parts.append(f"{len(partial)} column(s) of types that migrate partly (time zones, "
                     "intervals, XML, unconstrained or wider than 38-digit numerics)")  # fmt: skip
    return Finding("unsupported-data-types-in-source", AssessmentStatus.WARNING,
                   "; ".join(parts) + ": check their values on the target, or cast them in a "
                   "view.", missing + partial)  # fmt: skip


async def check_lob_without_key(connection: Any, scope: Scope) -> Finding:
    tables = _tables(scope)
    lob_tables = {_name(plan) for plan, _ in scope.lob_columns()}
    missing = [n for n in tables if n in lob_tables and not tables[n].source.has_unique_index]
    suspended = [n for n, plan in tables.items() if arrays_without_primary_key(plan)]
    if suspended:
        return Finding("table-with-lob-but-without-primary-key-or-unique-constraint", AssessmentStatus.FAILED,
                       f"{len(suspended)} table(s) with ARRAY columns have no primary key, and DMS "
                       "suspends such a table during the full load: add a primary key.",
                       suspended)  # fmt: skip
    if missing:
        return Finding("table-with-lob-but-without-primary-key-or-unique-constraint", AssessmentStatus.WARNING,
                       f"{len(missing)} table(s) with LOB columns have neither a primary key nor "
                       "a unique constraint, which DMS needs to migrate LOBs.", missing)  # fmt: skip
    return Finding("table-with-lob-but-without-primary-key-or-unique-constraint", AssessmentStatus.PASSED,
                   "Every table with LOB columns has a primary key or unique constraint.")  # fmt: skip


async def check_wallevel(connection: Any, scope: Scope) -> Finding:
    level = (await _settings(connection, "wal_level"))["wal_level"]
    if level != "logical":
        return Finding("postgres-check-wallevel", AssessmentStatus.FAILED,
                       f"wal_level is {level}: change data capture needs wal_level = logical "
                       "(postgresql.conf, or rds.logical_replication = 1 on RDS; then restart).")  # fmt: skip
    return Finding("postgres-check-wallevel", AssessmentStatus.PASSED, "wal_level is logical.")


async def check_maxwalsenders(connection: Any, scope: Scope) -> Finding:
    senders = int((await _settings(connection, "max_wal_senders"))["max_wal_senders"])
    if senders <= 1:
        return Finding("postgres-check-maxwalsenders", AssessmentStatus.FAILED,
                       f"max_wal_senders is {senders}; DMS needs more than 1 for change capture.")  # fmt: skip
    return Finding(
        "postgres-check-maxwalsenders", AssessmentStatus.PASSED, f"max_wal_senders is {senders}."
    )


async def check_slots(connection: Any, scope: Scope) -> Finding:
    limit = int((await _settings(connection, "max_replication_slots"))["max_replication_slots"])
    used = int(await connection.fetchval("SELECT count(*) FROM pg_catalog.pg_replication_slots"))
    if used >= limit:
        return Finding("postgres-check-replication-slots-count", AssessmentStatus.FAILED,
                       f"All {limit} replication slots (max_replication_slots) are in use: drop "
                       "unused slots or raise max_replication_slots.")  # fmt: skip
    return Finding("postgres-check-replication-slots-count", AssessmentStatus.PASSED,
                   f"{limit - used} of {limit} replication slots are free.")  # fmt: skip


async def check_walsenderstimeout(connection: Any, scope: Scope) -> Finding:
    timeout = int((await _settings(connection, "wal_sender_timeout"))["wal_sender_timeout"])
    if 0 < timeout < 10_000:
        return Finding("postgres-check-walsenderstimeout", AssessmentStatus.FAILED,
                       f"wal_sender_timeout is {timeout} ms; DMS CDC needs at least 10000 ms.")  # fmt: skip
    return Finding("postgres-check-walsenderstimeout", AssessmentStatus.PASSED,
                   f"wal_sender_timeout is {timeout} ms.")  # fmt: skip


async def check_longrunningtxn(connection: Any, scope: Scope) -> Finding:
    rows = await connection.fetch(
        "SELECT pid, usename, now() - xact_start AS age FROM pg_catalog.pg_stat_activity "
        "WHERE xact_start < now() - make_interval(secs => $1) AND pid <> pg_backend_pid()",
        float(LONG_TRANSACTION_SECONDS),
    )
    if rows:
        return Finding("postgres-check-longrunningtxn", AssessmentStatus.WARNING,
                       f"{len(rows)} transaction(s) have been open for more than "
                       f"{LONG_TRANSACTION_SECONDS // 60} minutes; a task start waits for open "
                       "transactions.", [f"pid {r['pid']} ({r['usename']}, {r['age']})"
                                          for r in rows])  # fmt: skip
    return Finding(
        "postgres-check-longrunningtxn", AssessmentStatus.PASSED, "No long-running transactions."
    )


async def check_preparedtxn(connection: Any, scope: Scope) -> Finding:
    rows = await connection.fetch("SELECT gid FROM pg_catalog.pg_prepared_xacts")
    if rows:
        return Finding("postgres-check-preparedtxn", AssessmentStatus.WARNING,
                       f"{len(rows)} prepared transaction(s) are open; creating the replication "
                       "slot may wait for them (COMMIT PREPARED or ROLLBACK PREPARED them).",
                       [str(r["gid"]) for r in rows])  # fmt: skip
    return Finding(
        "postgres-check-preparedtxn", AssessmentStatus.PASSED, "No prepared transactions."
    )


CHECKS: dict[str, Check] = {
    "postgres-check-dbversion": check_dbversion,
    "postgres-check-select-object-privileges": check_select_privileges,
    "postgres-check-limited-lob-size": check_limited_lob_size,
    "postgres-check-pk-lob": check_pk_lob,
    "postgres-check-pk": check_pk,
    "unsupported-data-types-in-source": check_unsupported_types,
    "table-with-lob-but-without-primary-key-or-unique-constraint": check_lob_without_key,
    "table-with-no-primary-key-or-unique-constraint": check_no_pk_or_unique,
    "postgres-check-wallevel": check_wallevel,
    "postgres-check-maxwalsenders": check_maxwalsenders,
    "postgres-check-replication-slots-count": check_slots,
    "postgres-check-walsenderstimeout": check_walsenderstimeout,
    "postgres-check-longrunningtxn": check_longrunningtxn,
    "postgres-check-preparedtxn": check_preparedtxn,
}


def run_assessments(
    source: PostgresSource,
    rules: Sequence[Rule],
    migration_type: str,
    settings: dict[str, Any],
    names: Sequence[str],
    on_finding: Callable[[Finding], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[Finding]:
    """Run the named assessments on one connection to the source (one catalog read), in order,
    until ``cancelled`` says to stop.

    A check that raises is ``error`` with the reason; a source that cannot be reached makes
    every one ``error``.
    """

    async def main() -> list[Finding]:
        findings: list[Finding] = []
        try:
            connection = await asyncpg.connect(**source.asyncpg_arguments(timeout=30))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            return [
                Finding(n, AssessmentStatus.ERROR, f"Could not connect to the source: {exc}")
                for n in names
            ]
        try:
            try:
                plans = plan_tables(rules, await read_catalog(connection))
            except MappingError as exc:
                return [Finding(n, AssessmentStatus.ERROR, f"The table mappings cannot be applied: {exc}")
                        for n in names]  # fmt: skip
            scope = Scope(plans, migration_type, settings, source.username)
            for name in names:
                if cancelled():
                    break
                try:
                    finding = await CHECKS[name](connection, scope)
                except (asyncpg.PostgresError, ValueError, KeyError) as exc:
                    finding = Finding(
                        name, AssessmentStatus.ERROR, f"The check could not run: {exc}"
                    )
                findings.append(finding)
                if on_finding is not None:
                    on_finding(finding)
        finally:
            await connection.close()
        return findings

    return asyncio.run(main())
