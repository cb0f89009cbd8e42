"""The flow's monitoring task: one DescribeReplicationTasks and DescribeTableStatistics (one call
per 500 tables: every page is read) per poll until the task finishes, feeding the per-table
subflows, a progress artifact and the log, and reloading tables in error while the task runs
(``reload_errored_tables``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import botocore.exceptions
from prefect import get_run_logger, task
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.cache_policies import NONE

from dms_spec.status import TableState
from flows.config import DmsIngestionConfig
from flows.decisions import monitoring_finished, tables_to_reload
from flows.dms_hook import DmsHook
from flows.exceptions import DmsApiError, ReplicationTimeoutError, is_transient
from flows.table_flows import TableTracker


@dataclass
class MonitorOutcome:
    """The task and its tables at the end of monitoring, with the cost of watching."""

    task: dict[str, Any]
    statistics: list[dict[str, Any]]
    max_calls_per_poll: int = 0
    polls: int = 0
    table_reloads: int = 0
    """ReloadTables calls made (each spends one of the run's reload_errored_tables)."""


@task(name="monitor-replication-task", cache_policy=NONE)
async def monitor_replication_task(
    arn: str,
    config: DmsIngestionConfig,
    hook: DmsHook,
    tracker: TableTracker,
    reloads_left: int,
) -> MonitorOutcome:
    """Poll the task and all its tables once per interval until it finishes, feeding the subflows.

    Each poll is one DescribeReplicationTasks plus one DescribeTableStatistics per 500 tables.
    A transient error skips that poll (counted by the hook); the timeout bounds everything.
    Tables in error while the task runs are reloaded with ReloadTables, spending ``reloads_left``
    (what remains of the run's ``reload_errored_tables``); the outcome says how many it spent.

    Raises:
        ReplicationTimeoutError: not finished within ``timeout_seconds`` (the task is left as is).
    """
    logger = get_run_logger()
    started = time.monotonic()
    outcome = MonitorOutcome(task={}, statistics=[])
    progress_artifact = await acreate_progress_artifact(
        0.0, description=f"{config.dms_task_name}: starting"
    )
    last_line = ""
    while True:
        before = sum(hook.calls.values())
        try:
            task_description = await asyncio.to_thread(hook.describe_task, arn)
            statistics = await asyncio.to_thread(hook.table_statistics, arn)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if not is_transient(exc):
                raise
            logger.warning("Transient DMS error while polling (%s); retrying next interval", exc)
        else:
            outcome.polls += 1
            outcome.max_calls_per_poll = max(
                outcome.max_calls_per_poll, sum(hook.calls.values()) - before
            )
            outcome.task, outcome.statistics = task_description, statistics
            tracker.publish(statistics)
            line = _progress_line(task_description, statistics)
            if line != last_line:
                logger.info("%s", line)
                stats = task_description.get("ReplicationTaskStats", {})
                await aupdate_progress_artifact(
                    progress_artifact,
                    float(stats.get("FullLoadProgressPercent", 0)),
                    description=line,
                )
                last_line = line
            if monitoring_finished(
                task_description,
                statistics,
                str(config.migration_type),
                time.monotonic() - started,
                config.cdc_monitor_seconds,
            ):
                break
            reload = tables_to_reload(
                task_description, statistics, reloads_left - outcome.table_reloads
            )
            if reload:
                logger.warning(
                    "Reloading tables in error: %s", ", ".join(f"{s}.{t}" for s, t in reload)
                )
                try:
                    await asyncio.to_thread(hook.reload_tables, arn, reload)
                    outcome.table_reloads += 1
                except DmsApiError as exc:
                    if exc.code != "InvalidResourceStateFault":
                        raise
                    # The load ended between the poll and the call; the flow resumes it instead.
                    logger.info(
                        "The task stopped before ReloadTables; its errors are handled after the load"
                    )
        if time.monotonic() - started > config.timeout_seconds:
            raise ReplicationTimeoutError(
                f"Replication task {config.dms_task_name} did not finish within "
                f"{config.timeout_seconds:.0f} s (last status: {outcome.task.get('Status', 'unknown')}). "
                "It was left as it is: check it in the DMS console, stop it, or raise timeout_seconds."
            )
        await asyncio.sleep(config.poll_interval_seconds)
    return outcome


def _progress_line(task: dict[str, Any], statistics: list[dict[str, Any]]) -> str:
    states = Counter(s.get("TableState") for s in statistics)
    stats = task.get("ReplicationTaskStats", {})
    rows = sum(int(s.get("FullLoadRows", 0)) for s in statistics)
    return (
        f"{task.get('ReplicationStatus', task.get('Status'))}: "
        f"{stats.get('FullLoadProgressPercent', 0)}% | "
        f"{states.get(TableState.COMPLETED, 0)}/{len(statistics)} tables loaded, "
        f"{states.get(TableState.FULL_LOAD, 0)} loading, {states.get(TableState.BEFORE_LOAD, 0)} queued, "
        f"{states.get(TableState.ERROR, 0)} errored | {rows:,} rows"
    )
