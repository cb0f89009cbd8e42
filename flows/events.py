"""The Prefect events the flows emit: a contract automations, deployment triggers and other
consumers match on (docs/cdc.md's Events lists them; tests read them back from the Prefect API
as a consumer does). ``dms.lake.table.applied`` is emitted by ``flows.lake``.

- ``dms.table.loaded``, once per table whose full load completed in a run (after the run's S3
  check, so a consumer starts on files that are there): resource the table's S3 prefix
  ``s3://<bucket>/[<folder>/]<schema>/<table>/``; payload ``schema``, ``table``, ``rows`` (DMS's
  FullLoadRows), ``s3_rows``, ``s3_objects``, ``s3_bytes`` (null when ``verify_s3`` is off),
  ``table_state``, ``url``.
- ``dms.ingestion.succeeded`` / ``dms.ingestion.failed``, once per run of ``dms-ingestion``:
  resource the replication (below); payload ``status``, ``stop_reason``, ``tables``, ``rows``,
  ``elapsed_seconds``, and for a failure ``reason``.
- ``dms.cdc.<verdict>`` from each ``dms-cdc-watch`` run (``healthy``, ``lagging``, ``stalled``,
  ``stopped``, ``failed``, ``tables-suspended``): resource the replication; payload ``verdict``,
  ``reason``, ``status``, ``stop_reason``, ``latency_source_seconds``,
  ``latency_target_seconds``, ``incoming_changes``, ``max_cdc_latency_seconds``.

The replication's resource: ``prefect.resource.id`` ``dms.replication-task.<identifier>`` (or
``dms.replication-config.<identifier>`` for DMS Serverless), stable across runs and known before
DMS is asked; its ARN, once known, is a related resource with role ``dms-replication-task`` (or
``dms-replication-config``). Prefect adds the flow run, flow and deployment as related resources
itself.

Example:
    >>> replication_resource("orders", serverless=False)
    {'prefect.resource.id': 'dms.replication-task.orders', 'prefect.resource.name': 'orders'}
    >>> related("arn:aws:dms:us-east-1:1:task:T", serverless=False)
    [{'prefect.resource.id': 'arn:aws:dms:us-east-1:1:task:T', 'prefect.resource.role': 'dms-replication-task'}]
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

TABLE_LOADED = "dms.table.loaded"
INGESTION_SUCCEEDED = "dms.ingestion.succeeded"
INGESTION_FAILED = "dms.ingestion.failed"
CDC_PREFIX = "dms.cdc."


def _kind(serverless: bool) -> str:
    return "replication-config" if serverless else "replication-task"


def replication_resource(identifier: str, serverless: bool) -> dict[str, str]:
    """The resource of a replication task (or DMS Serverless replication config)."""
    return {
        "prefect.resource.id": f"dms.{_kind(serverless)}.{identifier}",
        "prefect.resource.name": identifier,
    }


def related(arn: str | None, serverless: bool) -> list[dict[str, str]]:
    """The replication's ARN as a related resource (none while it is not known)."""
    if not arn:
        return []
    return [{"prefect.resource.id": arn, "prefect.resource.role": f"dms-{_kind(serverless)}"}]


def emit(
    name: str,
    resource: dict[str, str],
    payload: dict[str, Any],
    related_resources: list[dict[str, str]] | None = None,
) -> None:
    """Emit one event (Prefect sends it in the background and attaches the run's context)."""
    emit_event(name, resource=resource, related=related_resources or [], payload=payload)


def table_loaded(
    url: str,
    table: dict[str, Any],
    identifier: str,
    arn: str | None,
    serverless: bool,
) -> None:
    """``dms.table.loaded`` for one table of a report (``TableReport.model_dump()``)."""
    schema, name = table["schema_name"], table["table_name"]
    emit(
        TABLE_LOADED,
        {"prefect.resource.id": url, "prefect.resource.name": f"{schema}.{name}",
         "dms.schema": schema, "dms.table": name},
        {
            "schema": schema, "table": name, "rows": table["full_load_rows"],
            "s3_rows": table.get("s3_rows"), "s3_objects": table.get("s3_objects"),
            "s3_bytes": table.get("s3_bytes"), "table_state": table["table_state"], "url": url,
        },
        [*related(arn, serverless),
         {**replication_resource(identifier, serverless), "prefect.resource.role": "dms-replication"}],
    )  # fmt: skip
