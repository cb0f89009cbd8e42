"""One subflow run per table, fed by the task's single monitoring poll.

DMS calls grow with the tables by one call in 500: the monitor makes one DescribeReplicationTasks
and reads every page of DescribeTableStatistics (500 tables a page) per interval, and publishes
each table's statistics here. A table's subflow starts when DMS starts loading it (so at most about
MaxFullLoadSubTasks are active at once), and at the end for any table that never started, so every
selected table gets exactly one run per load. Starts are staggered and capped, because each start
writes to the Prefect API and a SQLite-backed server answers concurrent writes slowly.

Subflows receive only names as parameters (Prefect stores and shows parameters); each run's feed
is looked up in this process by its own ``feed_key``, bound when the run is created, so a reload's
new run and an earlier run still waiting to start never share a feed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectHTTPStatusError
from prefect.logging.loggers import flow_run_logger

from dms_spec.status import TableState
from flows.exceptions import TableLoadError
from flows.report import TableReport

TERMINAL_TABLE_STATES = frozenset({TableState.COMPLETED, TableState.ERROR, TableState.CANCELLED})
STAGE_PROGRESS = {
    TableState.BEFORE_LOAD: 0.0,
    TableState.FULL_LOAD: 50.0,
    TableState.RELOADING: 50.0,
}
API_ATTEMPTS = 6
_END = object()
logger = logging.getLogger(__name__)
_FEEDS: dict[str, asyncio.Queue[Any]] = {}
"""Each subflow run's feed, by feed key."""


class TableTracker:
    """Routes each poll's table statistics to the tables' subflow runs.

    Args:
        max_concurrent: subflow runs active at once.
        stagger_seconds: minimum time between two subflow starts.
    """

    def __init__(self, max_concurrent: int = 8, stagger_seconds: float = 0.05) -> None:
        self.queues: dict[tuple[str, str], asyncio.Queue[Any]] = {}
        """The feed of each table's current subflow run."""
        self.feed_keys: list[str] = []
        self.runs: list[asyncio.Task[State[Any] | None]] = []
        self.active: set[tuple[str, str]] = set()
        self.started_runs = 0
        self.api_errors = 0
        self._slots = asyncio.Semaphore(max_concurrent)
        self._stagger = stagger_seconds
        self._next_start = 0.0

    def publish(self, statistics: list[dict[str, Any]], final: bool = False) -> None:
        """Hand one poll's statistics to the subflows, starting those whose table began loading."""
        for stats in statistics:
            key = (stats["SchemaName"], stats["TableName"])
            state = stats.get("TableState")
            if key not in self.active:
                never_seen = key not in self.queues
                reloading = not never_seen and state not in (
                    *TERMINAL_TABLE_STATES,
                    TableState.BEFORE_LOAD,
                )
                if not (reloading or (never_seen and (final or state != TableState.BEFORE_LOAD))):
                    continue  # still queued, or this load's end was already reported
                feed_key = uuid.uuid4().hex
                self.feed_keys.append(feed_key)
                self.queues[key] = _FEEDS[feed_key] = asyncio.Queue()
                self.active.add(key)
                self.runs.append(asyncio.create_task(self._run(key, feed_key)))
            self.queues[key].put_nowait(stats)
            if state in TERMINAL_TABLE_STATES or final:
                self.queues[key].put_nowait(_END)
                self.active.discard(key)

    async def _run(self, key: tuple[str, str], feed_key: str) -> State[Any] | None:
        async with self._slots:
            for attempt in range(API_ATTEMPTS):
                wait = self._next_start - time.monotonic()
                self._next_start = max(self._next_start, time.monotonic()) + self._stagger
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    state: State[Any] = await track_table_load(
                        schema_name=key[0], table_name=key[1], feed_key=feed_key, return_state=True
                    )
                except PrefectHTTPStatusError as exc:
                    # The Prefect API is overloaded (a SQLite-backed server answers 503 under
                    # concurrent writes). The subflow is bookkeeping for the UI: retry later, and
                    # never fail the ingestion over it.
                    if exc.response.status_code < 500 and exc.response.status_code != 429:
                        raise
                    self.api_errors += 1
                    await asyncio.sleep(min(2**attempt, 30))
                    continue
                self.started_runs += 1
                return state
            logger.warning(
                "Prefect API kept refusing the subflow for %s.%s; its table is in the report only",
                *key,
            )
            return None

    async def close(self) -> list[State[Any]]:
        """End every open feed and wait for all subflow runs."""
        for key in list(self.active):
            self.queues[key].put_nowait(_END)
        self.active.clear()
        try:
            return [state for state in await asyncio.gather(*self.runs) if state is not None]
        finally:
            for feed_key in self.feed_keys:
                _FEEDS.pop(feed_key, None)


def _describe(stats: dict[str, Any]) -> str:
    return f"{stats['SchemaName']}.{stats['TableName']}: {stats.get('TableState')}, {stats.get('FullLoadRows', 0):,} rows"


def _own_logger() -> Any:
    """This subflow run's logger. ``get_run_logger`` would name the monitor task instead: the
    subflow starts inside that task, whose run context it inherits."""
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        return flow_run_logger(context.flow_run, context.flow)
    return get_run_logger()


@flow(name="track-table-load", flow_run_name="{schema_name}.{table_name}", persist_result=False)
async def track_table_load(schema_name: str, table_name: str, feed_key: str) -> TableReport:
    """Follow one table through its load: state changes, rows, duration, a progress artifact.

    Raises:
        TableLoadError: the table ended in 'Table error' (the run shows as failed).
    """
    logger = _own_logger()
    queue = _FEEDS[feed_key]
    artifact: Any = None
    latest: dict[str, Any] | None = None
    last_state: str | None = None
    while (stats := await queue.get()) is not _END:
        latest = stats
        state = stats.get("TableState")
        if state != last_state:
            # One line when the load starts, one at the end (below), and one for any change in
            # between (a reload): a table's story, not a line per poll.
            if state not in TERMINAL_TABLE_STATES:
                logger.info(
                    "%s.%s: %s (%s rows so far)",
                    schema_name, table_name, state, f"{stats.get('FullLoadRows', 0):,}",
                )  # fmt: skip
            progress = 100.0 if state in TERMINAL_TABLE_STATES else STAGE_PROGRESS.get(state, 0.0)
            if artifact is None:
                artifact = await acreate_progress_artifact(progress, description=_describe(stats))
            else:
                await aupdate_progress_artifact(artifact, progress, description=_describe(stats))
            last_state = state
    if latest is None:
        raise RuntimeError(f"no statistics were received for {schema_name}.{table_name}")
    report = TableReport.from_statistics(latest)
    rate = f" ({report.rows_per_second:,.0f} rows/s)" if report.rows_per_second else ""
    duration = f" in {report.duration_seconds:.2f} s" if report.duration_seconds is not None else ""
    logger.info(
        "%s.%s: %s, %s rows%s%s",
        schema_name, table_name, report.table_state, f"{report.full_load_rows:,}", duration, rate,
    )  # fmt: skip
    if report.table_state == TableState.ERROR:
        raise TableLoadError(
            f"{schema_name}.{table_name} ended in 'Table error' (see the task's LastFailureMessage)"
        )
    return report
