"""``dms-lake``: Apache Iceberg tables kept current from what DMS wrote to S3.

For the replication the config names (a task, or a DMS Serverless replication config), the flow
asks DMS which tables it has (DescribeTableStatistics) and where and how it writes them (the
target endpoint's S3Settings, as the ingestion's reconciliation reads them: bucket, BucketFolder,
format, compression, delimiters, AddColumnName, TimestampColumnName, date partitions), then
applies each table's LOAD and CDC files to its Iceberg table (``lake.apply``), one task run per
table. Nothing is read twice and nothing is applied twice: each Iceberg commit records the
objects it applied.

Started three ways: by ``dms.table.loaded`` (the ``lake-local`` deployment's trigger, for the
table that landed), on a schedule while CDC runs, or by hand (``dms-ingestion lake``, or
``await dms_lake(...)`` in a notebook). Each table applied emits ``dms.lake.table.applied``
(resource ``iceberg.<catalog>.<namespace>.<table>``; payload ``schema``, ``table``,
``identifier``, ``snapshot_id``, ``rebuilt``, ``objects``, ``rows_loaded``, ``inserts``,
``updates``, ``deletes``, ``rows``). The report (returned, JSON, artifacts) lists per table what
was applied.

Example:
    >>> iceberg_identifier("bookings", "tickets", None), iceberg_identifier("bookings", "t", "lake")
    (('bookings', 'tickets'), ('lake', 't'))
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State, TaskRun
from pydantic import BaseModel, Field

from dms_spec.status import TableState
from flows import events
from flows.aws import load_aws_credentials
from flows.config import DmsIngestionConfig, load_config
from flows.dms_hook import DmsHook
from flows.exceptions import ConfigError, DmsIngestionError
from flows.target import TargetEndpoint
from lake.apply import LakeTable, SchemaChangeError, SyncResult, TableSpec
from lake.catalogs import file_io, open_catalog
from lake.dms_files import list_table_objects
from lake.readers import FileLayoutError

TABLE_APPLIED = "dms.lake.table.applied"


class LakeError(DmsIngestionError):
    """Some tables could not be applied (``report`` has the rest)."""

    def __init__(self, message: str, report: LakeReport) -> None:
        super().__init__(message)
        self.report = report


class LakeTableRefusedError(DmsIngestionError):
    """The lake refuses a table as it is (no key, a file it cannot read, a dropped column): the
    message says what to change; retrying would fail the same way."""


class LakeTableReport(BaseModel):
    """What one run did to one table."""

    schema_name: str
    table_name: str
    identifier: str = Field(description="The Iceberg table, namespace.name.")
    applied: bool = Field(description="Whether anything new was applied.")
    rebuilt: bool = False
    load_objects: int = 0
    cdc_objects: int = 0
    rows_loaded: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    commits: int = 0
    snapshot_id: int | None = None
    rows: int | None = Field(default=None, description="Rows in the Iceberg table after the run.")
    columns_added: list[str] = Field(default_factory=list)
    objects: list[str] = Field(default_factory=list, description="The S3 keys applied, in order.")
    error: str | None = None
    waiting: str | None = Field(
        default=None,
        description="Why the table was left for a later run (DMS is still loading it).",
    )
    seconds: float = 0.0


class LakeReport(BaseModel):
    """One run of ``dms-lake``."""

    replication: str
    catalog: str
    warehouse: str
    tables: list[LakeTableReport]
    seconds: float

    @property
    def succeeded(self) -> bool:
        return all(t.error is None for t in self.tables)

    def summary_markdown(self) -> str:
        lines = [
            f"# Lake: {self.replication}",
            "",
            f"{len(self.tables)} table(s) in catalog `{self.catalog}` (warehouse "
            f"`{self.warehouse}`), {self.seconds:.1f} s.",
            "",
            "| table | Iceberg | applied | LOAD files | CDC files | rows loaded | inserts | "
            "updates | deletes | rows | snapshot | error |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t in self.tables:
            lines.append(
                f"| {t.schema_name}.{t.table_name} | {t.identifier} | "
                f"{'rebuilt' if t.rebuilt else 'yes' if t.applied else t.waiting or 'nothing new'} | "
                f"{t.load_objects} | {t.cdc_objects} | {t.rows_loaded:,} | {t.inserts:,} | "
                f"{t.updates:,} | {t.deletes:,} | {'' if t.rows is None else f'{t.rows:,}'} | "
                f"{t.snapshot_id or ''} | {t.error or ''} |"
            )
        return "\n".join(lines)


def iceberg_identifier(schema: str, table: str, namespace: str | None) -> tuple[str, str]:
    """The Iceberg table of a source table: (``lake_namespace`` or the schema, the table)."""
    return (namespace or schema, table)


def table_spec(config: DmsIngestionConfig, schema: str, table: str) -> TableSpec:
    """A source table's spec from ``lake_tables`` (``schema.table``)."""
    given = config.lake_tables.get(f"{schema}.{table}")
    return TableSpec(
        schema_name=schema,
        table_name=table,
        identifier=iceberg_identifier(schema, table, config.lake_namespace),
        key=tuple(given.key) if given else (),
        without_key=(given.without_key if given and given.without_key else config.lake_without_key),
        column_types=dict(given.column_types) if given else {},
    )


def _report(spec: TableSpec, result: SyncResult | None, seconds: float) -> LakeTableReport:
    report = LakeTableReport(
        schema_name=spec.schema_name, table_name=spec.table_name,
        identifier=".".join(spec.identifier), seconds=round(seconds, 3), applied=False,
    )  # fmt: skip
    if result is None:
        return report
    return report.model_copy(update={
        "applied": result.changed, "rebuilt": result.rebuilt,
        "load_objects": result.load_objects, "cdc_objects": result.cdc_objects,
        "rows_loaded": result.rows_loaded, "inserts": result.inserts, "updates": result.updates,
        "deletes": result.deletes, "commits": result.commits, "snapshot_id": result.snapshot_id,
        "rows": result.rows, "columns_added": result.columns_added, "objects": result.applied,
    })  # fmt: skip


def retry_unless_refused(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: retry a failed apply (S3 or the catalog not answering, a commit
    that lost a race), but not a table the lake refuses (``LakeTableRefusedError``)."""
    exception = state.result(raise_on_failure=False, _sync=True)  # type: ignore[call-overload]
    return isinstance(exception, Exception) and not isinstance(exception, LakeTableRefusedError)


@task(name="apply-table", task_run_name="{spec.schema_name}.{spec.table_name}", retries=3,
      retry_delay_seconds=[2, 5, 15], retry_condition_fn=retry_unless_refused,
      cache_policy=NONE, persist_result=False)  # fmt: skip
async def apply_table(
    spec: TableSpec, catalog: Any, target: TargetEndpoint, s3: Any, batch_files: int
) -> LakeTableReport:
    """Bring one Iceberg table up to date with the table's DMS objects."""
    logger = get_run_logger()
    started = time.monotonic()
    prefix = target.table_prefix(spec.schema_name, spec.table_name)
    objects = await asyncio.to_thread(list_table_objects, s3, target.bucket, prefix)
    try:
        lake = LakeTable(catalog, spec, target.settings, file_io(catalog), target.bucket,
                         batch_files)  # fmt: skip
    except ValueError as exc:
        raise LakeTableRefusedError(str(exc)) from None

    def progress(result: SyncResult) -> None:
        logger.info("%s: commit %d, %d object(s) applied (%s rows loaded, %d I / %d U / %d D)",
                    spec.name, result.commits, len(result.applied), f"{result.rows_loaded:,}",
                    result.inserts, result.updates, result.deletes)  # fmt: skip

    try:
        result = await asyncio.to_thread(lake.sync, objects, progress)
    except (FileLayoutError, SchemaChangeError) as exc:
        raise LakeTableRefusedError(str(exc)) from None
    report = _report(spec, result, time.monotonic() - started)
    if not result.changed:
        logger.info("%s: nothing new in %d object(s) at s3://%s/%s", spec.name, len(objects),
                    target.bucket, prefix)  # fmt: skip
        return report
    logger.info("%s → %s: %s; %s rows now (snapshot %s)", spec.name, report.identifier,
                "rebuilt from the LOAD files" if result.rebuilt else "changes applied",
                f"{report.rows:,}" if report.rows is not None else "?", report.snapshot_id)  # fmt: skip
    events.emit(
        TABLE_APPLIED,
        {"prefect.resource.id": f"iceberg.{catalog.name}.{report.identifier}",
         "prefect.resource.name": report.identifier,
         "dms.schema": spec.schema_name, "dms.table": spec.table_name},
        {"schema": spec.schema_name, "table": spec.table_name, "identifier": report.identifier,
         "snapshot_id": report.snapshot_id, "rebuilt": report.rebuilt,
         "objects": len(report.objects), "rows_loaded": report.rows_loaded,
         "inserts": report.inserts, "updates": report.updates, "deletes": report.deletes,
         "rows": report.rows},
        [{"prefect.resource.id": target.url(spec.schema_name, spec.table_name),
          "prefect.resource.role": "dms-s3-table"}],
    )  # fmt: skip
    return report


def _s3_endpoint(s3: Any) -> str | None:
    """The S3 endpoint the flow's client uses, when it is not AWS's own."""
    url = str(s3.meta.endpoint_url or "")
    return None if not url or url.endswith(".amazonaws.com") else url


@flow(name="dms-lake", persist_result=False,
      description="Apply the DMS replication's LOAD and CDC files in S3 to Apache Iceberg "
      "tables, incrementally.")  # fmt: skip
async def dms_lake(
    config_path: str | None = "config/dms_config.json",
    aws_credentials_block: str | None = None,
    tables: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> LakeReport:
    """Apply what is new in S3 to the Iceberg tables of the replication the config names.

    Args:
        config_path: the job's config (the same as the ingestion's, with its ``lake_*`` keys).
        aws_credentials_block: the AwsCredentials block for DMS, S3 and Glue.
        tables: ``schema.table`` names to apply (default: every table DMS lists).
        overrides: config values that win over the file and the environment.

    Returns:
        The report, when every table was applied.

    Raises:
        LakeError: a table could not be applied (the others were; ``.report`` has all).
        ConfigError: the replication does not exist, or a table named is not one of its tables.
    """
    logger = get_run_logger()
    started = time.monotonic()
    config = load_config(config_path, **(overrides or {}))
    credentials = await load_aws_credentials(aws_credentials_block)
    hook = DmsHook(credentials.get_client("dms"))
    kind = "DMS Serverless replication config" if config.serverless else "replication task"
    replication = await asyncio.to_thread(
        hook.find_replication, config.dms_task_name, config.serverless
    )
    if replication is None:
        raise ConfigError(f"There is no {kind} {config.dms_task_name}: run the ingestion first "
                          "(it creates it), or set dms_task_name to the one that wrote the files.")  # fmt: skip
    arn, found = replication
    endpoint = await asyncio.to_thread(hook.describe_endpoint, found["TargetEndpointArn"])
    try:
        target = TargetEndpoint.from_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    statistics = await asyncio.to_thread(hook.table_statistics, arn)
    states = {(s["SchemaName"], s["TableName"]): str(s.get("TableState", "")) for s in statistics}
    known = list(states)
    if tables:
        unknown = sorted(set(tables) - {f"{s}.{t}" for s, t in known})
        if unknown:
            raise ConfigError(
                f"{', '.join(unknown)}: not a table of {kind} {config.dms_task_name} (its tables: "
                f"{', '.join(f'{s}.{t}' for s, t in known[:20]) or 'none yet'})"
            )
        known = [(s, t) for s, t in known if f"{s}.{t}" in tables]
    warehouse = config.lake_warehouse or f"s3://{target.bucket}/iceberg"
    s3 = credentials.get_client("s3")
    try:
        catalog = open_catalog(
            config.lake_catalog, config.lake_catalog_name, warehouse,
            credentials.get_boto3_session(), _s3_endpoint(s3),
            config.lake_catalog_uri.get_secret_value() if config.lake_catalog_uri else None,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    unlisted = sorted(set(config.lake_tables) - {f"{s}.{t}" for s, t in states})
    if unlisted:
        logger.warning("lake_tables names %s, which %s %s does not have (DMS lists its tables)",
                       ", ".join(unlisted), kind, config.dms_task_name)  # fmt: skip
    logger.info("Lake: %d table(s) of %s %s from %s into the %s catalog %r (warehouse %s)",
                len(known), kind, config.dms_task_name, target.url(), config.lake_catalog,
                config.lake_catalog_name, warehouse)  # fmt: skip

    limit = asyncio.Semaphore(config.lake_max_concurrent_tables)

    async def one(schema: str, name: str) -> LakeTableReport:
        spec = table_spec(config, schema, name)
        state = states[(schema, name)]
        if state != TableState.COMPLETED:
            # Its LOAD files are being written (or were left by a load that failed): a rebuild
            # now would hold part of the table. dms.table.loaded starts a run once it completes.
            waiting = _report(spec, None, 0.0)
            waiting.waiting = f"waiting: DMS says {state!r}"
            logger.info("%s: DMS says %r; applied once its full load completes", spec.name, state)
            return waiting
        async with limit:
            began = time.monotonic()
            try:
                return await apply_table(spec, catalog, target, s3, config.lake_batch_files)
            except Exception as exc:  # reported per table; the run fails at the end
                logger.error("%s: %s", spec.name, exc)
                failed = _report(spec, None, time.monotonic() - began)
                failed.error = str(exc)
                return failed

    results = await asyncio.gather(*(one(s, t) for s, t in known))
    report = LakeReport(replication=config.dms_task_name, catalog=config.lake_catalog_name,
                        warehouse=warehouse, tables=list(results),
                        seconds=round(time.monotonic() - started, 3))  # fmt: skip
    key = f"dms-{config.dms_task_name.lower()}-lake"
    await acreate_markdown_artifact(key=key, markdown=report.summary_markdown(),
                                    description=f"Lake: {len(results)} table(s)")  # fmt: skip
    await acreate_table_artifact(
        key=f"{key}-tables",
        table=[t.model_dump(exclude={"objects"}) for t in report.tables],
        description=f"Iceberg tables of {config.dms_task_name}",
    )
    failed = [t for t in report.tables if t.error]
    if failed:
        raise LakeError(
            f"{len(failed)} of {len(report.tables)} table(s) not applied: "
            + "; ".join(f"{t.schema_name}.{t.table_name}: {t.error}" for t in failed),
            report,
        )
    return report
