"""``dms-landed-table``: what runs next when a table lands, started by ``dms.table.loaded``.

The ``landed-table-local`` deployment in prefect.yaml has a trigger on that event (its
parameters from the event: the table's S3 prefix, schema and name), so each table the ingestion
loads starts one run here. This flow stands in for what a user chains (a dbt run, a lake job): it
reads the table's LOAD objects where DMS wrote them and counts their rows, so a run shows the
table is there and whole.

Example:
    >>> from flows.landed_table import split_url
    >>> split_url("s3://postgres-repo/raw/bookings/tickets/")
    ('postgres-repo', 'raw/bookings/tickets/')
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger

from dms_spec.s3_layout import is_load_file
from flows.aws import load_aws_credentials
from flows.reconcile import count_csv_rows, gunzip


def split_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of an ``s3://`` URL."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def count_rows(s3: Any, bucket: str, prefix: str) -> tuple[int, int]:
    """(LOAD objects, rows) under the table's prefix: Parquet row counts from the files'
    metadata, CSV rows by their delimiters (blocking: run it in a worker thread)."""
    objects = rows = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            if "/" in key[len(prefix) :] or not is_load_file(key):
                continue
            objects += 1
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            if key.endswith(".parquet"):
                import io

                import pyarrow.parquet as pq

                rows += pq.ParquetFile(io.BytesIO(body.read())).metadata.num_rows
                continue
            chunks = body.iter_chunks(1024 * 1024)
            rows += count_csv_rows(gunzip(chunks) if key.endswith(".gz") else chunks, b"\n")
    return objects, rows


@flow(name="dms-landed-table", flow_run_name="{schema_name}.{table_name}", persist_result=False)
async def query_landed_table(
    url: str, schema_name: str, table_name: str, aws_credentials_block: str | None = None
) -> dict[str, Any]:
    """Count the landed table's rows in S3 (``url``: its prefix, as ``dms.table.loaded`` names
    it).

    Returns:
        The table, its LOAD objects and rows.
    """
    credentials = await load_aws_credentials(aws_credentials_block)
    bucket, prefix = split_url(url)
    objects, rows = await asyncio.to_thread(
        count_rows, credentials.get_client("s3"), bucket, prefix
    )
    get_run_logger().info("%s.%s: %s rows in %d LOAD object(s) at %s",
                          schema_name, table_name, f"{rows:,}", objects, url)  # fmt: skip
    return {"table": f"{schema_name}.{table_name}", "url": url, "objects": objects, "rows": rows}
