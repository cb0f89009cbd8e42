"""Reading the source catalog: every table and view with its columns (a domain column under its
base type, a column of a composite type as ``record``, of an enum type as ``anyenum``), and each table's primary key, unique indexes and replica
identity."""

from __future__ import annotations

from typing import Any

from localdms.table_mappings import SourceColumn, SourceTable

BASE_TYPE = """CASE WHEN t.typtype = 'd' THEN bt.typname WHEN t.typtype = 'c' THEN 'record'
            WHEN t.typtype = 'e' THEN 'anyenum' ELSE t.typname END"""
"""A column's base type (``SourceColumn.base_type``), from ``pg_type`` t and its base type bt."""

CATALOG_QUERY = f"""
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END AS kind,
       GREATEST(c.reltuples, 0)::bigint AS estimated_rows,
       a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type_name,
       {BASE_TYPE} AS base_type
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY n.nspname, c.relname, a.attnum
"""


COLUMNS_QUERY = f"""
SELECT a.attname, format_type(a.atttypid, a.atttypmod), {BASE_TYPE}
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
WHERE a.attrelid = %s AND a.attname = ANY(%s) AND NOT a.attisdropped
ORDER BY a.attnum
"""
"""Some columns of one table (its oid, their names), described as ``CATALOG_QUERY`` describes
every column (psycopg2 parameters): the columns a capture sees added."""

KEYS_QUERY = """
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       (SELECT array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indrelid = c.oid AND i.indisunique) AS has_unique_index,
       c.relreplident AS replica_identity
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
"""Each table's primary key, unique indexes and replica identity: one row a table."""


async def read_catalog(connection: Any) -> list[SourceTable]:
    """Every user table and view of the database ``connection`` (an asyncpg connection) is on,
    with its keys (two queries, whatever the number of tables)."""
    keys = {
        (row["schema_name"], row["table_name"]): (
            tuple(row["primary_key"] or ()),
            bool(row["has_unique_index"]),
            str(row["replica_identity"]),
        )
        for row in await connection.fetch(KEYS_QUERY)
    }
    tables: list[SourceTable] = []
    current: tuple[str, str] | None = None
    columns: list[SourceColumn] = []
    meta: tuple[str, int] = ("table", 0)

    def finish(key: tuple[str, str]) -> None:
        primary_key, unique, identity = keys.get(key, ((), False, "d"))
        tables.append(
            SourceTable(key[0], key[1], meta[0], tuple(columns), meta[1], primary_key, unique,
                        identity)
        )  # fmt: skip

    for row in await connection.fetch(CATALOG_QUERY):
        key = (row["schema_name"], row["table_name"])
        if key != current:
            if current is not None:
                finish(current)
            current, columns = key, []
            meta = (row["kind"], int(row["estimated_rows"]))
        columns.append(SourceColumn(row["column_name"], row["type_name"], row["base_type"]))
    if current is not None:
        finish(current)
    return tables
