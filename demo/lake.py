"""``make demo DEMO_ARGS=--lake``: the loaded tables as Apache Iceberg tables, queried with SQL.

After the ingestion, the ``dms-lake`` flow applies each table's files to an Iceberg table (the
catalog in a database of the demo's PostgreSQL, the warehouse in the same S3), then each table is
read as a consumer reads it: pyiceberg's scan into Arrow, counted and queried by DuckDB (DuckDB's
own Iceberg extension is downloaded at first use, which an offline machine cannot do). The row
counts printed are compared with the source's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import sql

QUERY = """
SELECT fare_conditions, count(*) AS segments, sum(amount) AS revenue
FROM ticket_flights GROUP BY 1 ORDER BY 3 DESC
"""
"""A question only the whole table answers: revenue by fare class (``amount`` is numeric(10,2)
in PostgreSQL, a decimal in Parquet and in Iceberg)."""


def catalog_uri(admin_dsn: str, database: str) -> str:
    """A SQLAlchemy URL (psycopg 3) for ``database`` on the server of ``admin_dsn``; the parts
    are quoted by SQLAlchemy, so a password with any characters works."""
    from sqlalchemy.engine import URL

    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    return URL.create(
        "postgresql+psycopg", username=str(info.get("user") or ""),
        password=str(info["password"]) if info.get("password") else None,
        host=str(info.get("host") or "127.0.0.1"), port=int(info.get("port") or 5432),
        database=database,
    ).render_as_string(hide_password=False)  # fmt: skip


def run_lake(config: Path, admin_dsn: str, source_dsn: str) -> int:
    """Apply the ingestion's files to Iceberg, query the tables; 0 when every count matches."""
    from flows.lake import dms_lake
    from lake.catalogs import open_catalog

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'lake'").fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("lake")))
    uri = catalog_uri(admin_dsn, "lake")
    report = asyncio.run(dms_lake(config_path=str(config), overrides={"lake_catalog_uri": uri}))
    print(report.summary_markdown(), flush=True)

    import boto3

    session = boto3.Session()
    catalog = open_catalog("sql", "dms", report.warehouse, session,
                           boto3.client("s3").meta.endpoint_url, uri=uri)  # fmt: skip
    with psycopg.connect(source_dsn) as conn:
        source = {
            t.table_name: conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(t.schema_name), sql.Identifier(t.table_name)
                )
            ).fetchone()[0]  # type: ignore[index]
            for t in report.tables
        }
    print(f"\n{'Iceberg table':<32} {'rows (DuckDB)':>14} {'source rows':>12}")
    mismatched = 0
    db = duckdb.connect()
    for t in sorted(report.tables, key=lambda t: t.identifier):
        reader = catalog.load_table(t.identifier).scan().to_arrow_batch_reader()
        db.register(t.table_name, reader)
        rows = _one(db.execute(f'SELECT count(*) FROM "{t.table_name}"'))
        db.unregister(t.table_name)
        mismatched += rows != source[t.table_name]
        print(f"{t.identifier:<32} {rows:>14,} {source[t.table_name]:>12,}"
              + ("" if rows == source[t.table_name] else "  MISMATCH"))  # fmt: skip
    segments = catalog.load_table(("bookings", "ticket_flights")).scan(
        selected_fields=("fare_conditions", "amount")
    ).to_arrow()  # fmt: skip
    db.register("ticket_flights", segments)
    print(f"\nDuckDB over the Iceberg table bookings.ticket_flights:{QUERY}")
    for row in db.execute(QUERY).fetchall():
        print(f"    {row[0]:<10} {row[1]:>9,} segments  {row[2]:>16,.2f} revenue")
    return 1 if mismatched else 0


def _one(result: Any) -> int:
    (row,) = result.fetchall()
    return int(row[0])
