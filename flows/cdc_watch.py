"""The ``dms-cdc-watch`` flow: one look at a replication that should be capturing changes.

Each run reads what DMS knows (the task's or Serverless replication's status and StopReason,
every table's CDC counters from DescribeTableStatistics) and what it publishes to CloudWatch
(``CDCLatencySource``, ``CDCLatencyTarget``, ``CDCIncomingChanges`` over
``cdc_watch_window_seconds``, with the dimensions DMS sets: ``ReplicationInstanceIdentifier``
and ``ReplicationTaskIdentifier`` = the task ARN's last segment, or ``ReplicationConfigId`` =
``<account>:<the config ARN's last segment>``), gives one verdict (``flows/cdc_verdict.py``),
emits ``dms.cdc.<verdict>`` (``flows/events.py``), publishes a markdown artifact, a table artifact
of the tables and a table artifact of the latency series (one key per task, updated each run),
and fails the flow run with the reason unless the verdict is ``healthy``.

``on_recoverable_stop: resume`` starts a replication that stopped (or failed) by a recoverable
error with ``resume-processing``; the verdict still says what was found.

Run it on a schedule (its deployment in prefect.yaml looks every 5 minutes), from the CLI
(``dms-ingestion watch``), or from Python:

Example:
    >>> from flows.cdc_watch import dms_cdc_watch
    >>> report = await dms_cdc_watch(config_path="config/dms_config.json")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from dms_spec.status import StartType, StopReason, TableState, TaskStatus
from flows import events
from flows.aws import load_aws_credentials
from flows.cdc_verdict import CdcTable, CdcWatchReport, Facts, LatencyPoint, judge
from flows.config import DmsIngestionConfig, load_config
from flows.dms_hook import DmsHook
from flows.exceptions import CdcUnhealthyError, ConfigError
from flows.tasks import RETRYABLE

METRICS = {
    "CDCLatencySource": "latency_source_seconds",
    "CDCLatencyTarget": "latency_target_seconds",
    "CDCIncomingChanges": "incoming_changes",
}


def metric_dimensions(
    replication: dict[str, Any], instance_identifier: str | None
) -> dict[str, str]:
    """The dimensions DMS puts on a replication's metrics.

    Example:
        >>> metric_dimensions({"ReplicationTaskArn": "arn:aws:dms:us-east-1:1:task:T1"}, "ri")
        {'ReplicationInstanceIdentifier': 'ri', 'ReplicationTaskIdentifier': 'T1'}
        >>> metric_dimensions({"ReplicationConfigArn": "arn:aws:dms:us-east-1:123:replication-config:C"}, None)
        {'ReplicationConfigId': '123:C'}
    """
    config_arn = replication.get("ReplicationConfigArn")
    if config_arn:
        parts = str(config_arn).split(":")
        return {"ReplicationConfigId": f"{parts[4]}:{parts[-1]}"}
    return {
        "ReplicationInstanceIdentifier": instance_identifier or "",
        "ReplicationTaskIdentifier": str(replication["ReplicationTaskArn"]).rsplit(":", 1)[-1],
    }


def read_series(
    cloudwatch: Any, dimensions: dict[str, str], window: float, period: int, now: datetime
) -> list[LatencyPoint]:
    """The metrics' Maximum per period over the window, oldest first (GetMetricData)."""
    queries = [
        {
            "Id": name.lower(),
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/DMS",
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                },
                "Period": period,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }
        for name in METRICS
    ]
    points: dict[datetime, dict[str, float]] = {}
    token: str | None = None
    while True:
        answer = cloudwatch.get_metric_data(
            MetricDataQueries=queries, StartTime=now - timedelta(seconds=window),
            EndTime=now + timedelta(seconds=period), ScanBy="TimestampAscending",
            **({"NextToken": token} if token else {}),
        )  # fmt: skip
        for result in answer["MetricDataResults"]:
            field = METRICS[next(n for n in METRICS if n.lower() == result["Id"])]
            for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                points.setdefault(stamp, {})[field] = float(value)
        token = answer.get("NextToken")
        if not token:
            break
    return [LatencyPoint(timestamp=stamp, **values) for stamp, values in sorted(points.items())]


@task(name="look-at-cdc", **RETRYABLE)
async def look(config: DmsIngestionConfig, hook: DmsHook, cloudwatch: Any) -> CdcWatchReport:
    """Read the replication, its tables and its metrics, and judge."""
    found = await asyncio.to_thread(hook.find_replication, config.dms_task_name, config.serverless)
    arn = found[0] if found else None
    if arn is None:
        raise ConfigError(
            f"There is no {'DMS Serverless replication config' if config.serverless else 'replication task'} "
            f"{config.dms_task_name} to watch: run the ingestion first (it creates it)."
        )
    replication = await asyncio.to_thread(hook.describe_task, arn)
    instance = None
    if not config.serverless and replication.get("Status") == TaskStatus.RUNNING:
        instance = await asyncio.to_thread(
            hook.instance_identifier, str(replication["ReplicationInstanceArn"])
        )
    statistics = await asyncio.to_thread(hook.table_statistics, arn)
    now = datetime.now(UTC)
    series: list[LatencyPoint] = []
    if replication.get("Status") == TaskStatus.RUNNING:  # the verdict needs them only then
        series = await asyncio.to_thread(
            read_series, cloudwatch, metric_dimensions(replication, instance),
            config.cdc_watch_window_seconds, config.cdc_metrics_period_seconds, now,
        )  # fmt: skip
    with_source = [p for p in series if p.latency_source_seconds is not None]
    newest = with_source[-1] if with_source else None

    def latest(field: str) -> float | None:
        values = [getattr(p, field) for p in series if getattr(p, field) is not None]
        return values[-1] if values else None

    tables = [
        CdcTable(
            schema_name=s["SchemaName"],
            table_name=s["TableName"],
            table_state=s.get("TableState", "unknown"),
            inserts=int(s.get("Inserts", 0)),
            updates=int(s.get("Updates", 0)),
            deletes=int(s.get("Deletes", 0)),
            ddls=int(s.get("Ddls", 0)),
            applied_inserts=int(s.get("AppliedInserts", 0)),
            applied_updates=int(s.get("AppliedUpdates", 0)),
            applied_deletes=int(s.get("AppliedDeletes", 0)),
            applied_ddls=int(s.get("AppliedDdls", 0)),
        )
        for s in statistics
    ]
    facts = Facts(
        status=str(replication.get("Status", "unknown")),
        stop_reason=replication.get("StopReason"),
        last_failure_message=replication.get("LastFailureMessage"),
        suspended_tables=[f"{t.schema_name}.{t.table_name}" for t in tables
                          if t.table_state == TableState.ERROR],
        newest_seconds_ago=(now - newest.timestamp).total_seconds() if newest else None,
        latency_source=latest("latency_source_seconds"),
        latency_target=latest("latency_target_seconds"),
        incoming=latest("incoming_changes"),
    )  # fmt: skip
    judged = judge(facts, config.max_cdc_latency_seconds, config.cdc_metrics_period_seconds)
    return CdcWatchReport(
        task_identifier=config.dms_task_name, arn=arn, serverless=config.serverless,
        verdict=judged.verdict, reason=judged.reason, status=facts.status,
        stop_reason=facts.stop_reason, latency_source_seconds=facts.latency_source,
        latency_target_seconds=facts.latency_target, incoming_changes=facts.incoming,
        max_cdc_latency_seconds=config.max_cdc_latency_seconds, tables=tables, series=series,
        checked_at=now,
    )  # fmt: skip


def stopped_by_recoverable_error(report: CdcWatchReport) -> bool:
    """Whether DMS stopped (or failed) the replication for a recoverable error."""
    return report.status in ("stopped", "failed") and StopReason.RECOVERABLE_ERROR.removeprefix(
        "Stop Reason "
    ) in (report.stop_reason or "")


@flow(name="dms-cdc-watch", persist_result=False,
      description="Look at a DMS replication that should be capturing changes: a verdict, "
      "events and artifacts; the run fails unless it is healthy.")  # fmt: skip
async def dms_cdc_watch(
    config_path: str | None = "config/dms_config.json",
    aws_credentials_block: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> CdcWatchReport:
    """Watch the replication the config names (the same config as the ingestion).

    Returns:
        The watch's report, when the verdict is healthy.

    Raises:
        CdcUnhealthyError: any other verdict (the message is the reason; ``.report`` the rest).
        ConfigError: the replication does not exist.
    """
    logger = get_run_logger()
    config = load_config(config_path, **(overrides or {}))
    credentials = await load_aws_credentials(aws_credentials_block)
    hook = DmsHook(credentials.get_client("dms"))
    report = await look(config, hook, credentials.get_client("cloudwatch"))
    if config.on_recoverable_stop == "resume" and stopped_by_recoverable_error(report):
        await asyncio.to_thread(hook.start_task, report.arn, str(StartType.RESUME_PROCESSING))
        report.resumed = True
        logger.warning("%s stopped by a recoverable error: started with resume-processing",
                       config.dms_task_name)  # fmt: skip
    key = f"dms-{config.dms_task_name.lower()}-cdc"
    await acreate_markdown_artifact(key=key, markdown=report.summary_markdown(),
                                    description=f"CDC watch: {report.verdict}")  # fmt: skip
    await acreate_table_artifact(
        key=f"{key}-tables", table=[t.model_dump() for t in report.tables],
        description=f"CDC counters of {config.dms_task_name}'s tables",
    )  # fmt: skip
    await acreate_table_artifact(
        key=f"{key}-latency",
        table=[p.model_dump(mode="json") for p in report.series],
        description=f"CDC latency of {config.dms_task_name} over the last "
        f"{config.cdc_watch_window_seconds:.0f} s (Maximum per {config.cdc_metrics_period_seconds} s)",
    )  # fmt: skip
    events.emit(
        f"{events.CDC_PREFIX}{report.verdict}",
        events.replication_resource(config.dms_task_name, config.serverless),
        report.event_payload(),
        events.related(report.arn, config.serverless),
    )
    logger.info("%s: %s (%s)", config.dms_task_name, report.verdict, report.reason)
    if not report.healthy:
        raise CdcUnhealthyError(
            f"{config.dms_task_name} is {report.verdict}: {report.reason}", report
        )
    return report
