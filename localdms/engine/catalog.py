"""Reading the source catalog: every table and view with its columns (a domain column under its
base type, a column of a composite type as ``record``, of an enum type as ``anyenum``)."""

from __future__ import annotations

from typing import Any

from localdms.table_mappings import SourceColumn, SourceTable

CATALOG_QUERY = """
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END AS kind,
       GREATEST(c.reltuples, 0)::bigint AS estimated_rows,
       a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type_name,
       CASE WHEN t.typtype = 'd' THEN bt.typname WHEN t.typtype = 'c' THEN 'record'
            WHEN t.typtype = 'e' THEN 'anyenum'
            ELSE t.typname END AS base_type
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


async def read_catalog(connection: Any) -> list[SourceTable]:
    """Every user table and view of the database ``connection`` (an asyncpg connection) is on."""
    tables: list[SourceTable] = []
    current: tuple[str, str] | None = None
    columns: list[SourceColumn] = []
    meta: tuple[str, int] = ("table", 0)
    for row in await connection.fetch(CATALOG_QUERY):
        key = (row["schema_name"], row["table_name"])
        if key != current:
            if current is not None:
                tables.append(SourceTable(current[0], current[1], meta[0], tuple(columns), meta[1]))
            current, columns = key, []
            meta = (row["kind"], int(row["estimated_rows"]))
        columns.append(SourceColumn(row["column_name"], row["type_name"], row["base_type"]))
    if current is not None:
        tables.append(SourceTable(current[0], current[1], meta[0], tuple(columns), meta[1]))
    return tables
