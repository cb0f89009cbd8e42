"""One subflow run per table, fed by the task's single monitoring poll.

DMS calls grow with the tables by one call in 500: the monitor makes one DescribeReplicationTasks
and reads every page of DescribeTableStatistics (500 tables a page) per interval, and publishes
each table's statistics here. A table's run starts when DMS starts loading it (so at most about
MaxFullLoadSubTasks are active at once), and at the end for any table that never started, so every
selected table gets exactly one run per load. Starts are staggered and capped, because each start
writes to the Prefect API and a SQLite-backed server answers concurrent writes slowly.

**Why the runs are recorded, not executed.** A table's run computes nothing: it mirrors what DMS
says of the table. Calling a ``@flow`` as a subflow costs about ten Prefect API calls a table
(measured: the flow, a tracking task run, a lookup for an earlier run, the flow run, a read, a
rename, two states), and with hundreds of tables the Prefect server's time is the ingestion's
overhead. So ``TableRun`` writes the same records as Prefect's engine does for a subflow (its
``create_flow_run``: a tracking task run in the parent run, then a flow run of
``track-table-load`` whose ``parent_task_run_id`` is that task run) with the client: the
tracking task run, then the flow run created ``Running`` under its table's name, then its final
state; a table whose load had already ended when its run starts (most tables of a large task,
loaded within one poll) gets its run created in its final state, two calls in all. The UI shows
the same subflow runs under the parent run (the server mirrors each subflow's state onto its
tracking task run), with their logs and a progress artifact while a table loads. Measured with
``benchmarks.orchestration`` at 500 tables: 4,800 Prefect API calls before, ~1,100 now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from prefect import Flow, Task
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate, FlowRunCreate
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext, TagsContext
from prefect.exceptions import PrefectHTTPStatusError
from prefect.logging.loggers import flow_run_logger
from prefect.states import Cancelled, Completed, Failed, Running, to_state_create

from dms_spec.status import TableState
from flows.report import TableReport

TERMINAL_TABLE_STATES = frozenset({TableState.COMPLETED, TableState.ERROR, TableState.CANCELLED})
STAGE_PROGRESS: dict[str, float] = {
    TableState.BEFORE_LOAD: 0.0,
    TableState.FULL_LOAD: 50.0,
    TableState.RELOADING: 50.0,
}
API_ATTEMPTS = 6
TABLE_FLOW_NAME = "track-table-load"
_END = object()
logger = logging.getLogger(__name__)


async def _track_table_load(schema_name: str, table_name: str) -> None:
    """Follow one table through its load: state changes, rows, duration, a progress artifact
    (the function behind ``track-table-load``'s runs; ``TableRun`` records them)."""


TABLE_FLOW: Flow[..., Any] = Flow(_track_table_load, name=TABLE_FLOW_NAME)
_TRACKING_TASK: Task[..., Any] = Task(_track_table_load, name=TABLE_FLOW_NAME)
_TRACKING_TASK._is_subflow_tracking_task = True  # type: ignore[attr-defined]  # as Prefect's engine does


def _transient(exc: PrefectHTTPStatusError) -> bool:
    """An overloaded Prefect API (a SQLite-backed server answers 503 under concurrent writes)."""
    return exc.response.status_code >= 500 or exc.response.status_code == 429


class TableTracker:
    """Routes each poll's table statistics to the tables' runs.

    Args:
        max_concurrent: table runs active at once.
        stagger_seconds: minimum time between two table run starts.
    """

    def __init__(self, max_concurrent: int = 8, stagger_seconds: float = 0.02) -> None:
        self.queues: dict[tuple[str, str], asyncio.Queue[Any]] = {}
        """The feed of each table's current run."""
        self.runs: list[asyncio.Task[TableReport | None]] = []
        self.active: set[tuple[str, str]] = set()
        self.started_runs = 0
        self.api_errors = 0
        self._slots = asyncio.Semaphore(max_concurrent)
        self._stagger = stagger_seconds
        self._next_start = 0.0
        self._flow_id: Any = None
        self._flow_lock = asyncio.Lock()

    def publish(self, statistics: list[dict[str, Any]], final: bool = False) -> None:
        """Hand one poll's statistics to the runs, starting those whose table began loading."""
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
                self.queues[key] = asyncio.Queue()
                self.active.add(key)
                self.runs.append(asyncio.create_task(self._run(key, self.queues[key])))
            self.queues[key].put_nowait(stats)
            if state in TERMINAL_TABLE_STATES or final:
                self.queues[key].put_nowait(_END)
                self.active.discard(key)

    async def _run(self, key: tuple[str, str], feed: asyncio.Queue[Any]) -> TableReport | None:
        async with self._slots:
            wait = self._next_start - time.monotonic()
            self._next_start = max(self._next_start, time.monotonic()) + self._stagger
            if wait > 0:
                await asyncio.sleep(wait)
            return await TableRun(*key).follow(feed, self)

    async def flow_id(self) -> Any:
        """The id of the ``track-table-load`` flow (created once per tracker)."""
        async with self._flow_lock:
            if self._flow_id is None:
                context = FlowRunContext.get()
                assert context is not None
                client: Any = context.client  # an async flow's: a PrefectClient
                self._flow_id = await client.create_flow(TABLE_FLOW)
            return self._flow_id

    async def close(self) -> list[TableReport]:
        """End every open feed and wait for all table runs."""
        for key in list(self.active):
            self.queues[key].put_nowait(_END)
        self.active.clear()
        return [report for report in await asyncio.gather(*self.runs) if report is not None]


def _describe(stats: dict[str, Any]) -> str:
    return f"{stats['SchemaName']}.{stats['TableName']}: {stats.get('TableState')}, {stats.get('FullLoadRows', 0):,} rows"


class TableRun:
    """One table's ``track-table-load`` run, recorded in the Prefect API (see the module
    docstring). Without a parent run (or when the API keeps refusing) the table is followed all
    the same and is in the report only."""

    def __init__(self, schema_name: str, table_name: str) -> None:
        self.schema_name, self.table_name = schema_name, table_name
        self.flow_run: FlowRun | None = None
        self.log: Any = logger
        self._artifact_id: Any = None
        self._client: Any = None

    async def follow(self, feed: asyncio.Queue[Any], tracker: TableTracker) -> TableReport | None:
        """Record the run, read the table's statistics until its load ends, and end the run in
        the table's state. A table whose load had ended when its run starts (most tables of a
        large task: loaded within one poll) gets its run recorded already ended."""
        story = [await feed.get()]  # what the feed holds already
        while story[-1] is not _END and not feed.empty():
            story.append(feed.get_nowait())
        ended = story[-1] is _END
        seen: list[dict[str, Any]] = [stats for stats in story if stats is not _END]
        if not seen:  # a feed is always given statistics before its end
            return None
        if await self._record(tracker, self._outcome(seen[-1])[1] if ended else Running()):
            tracker.started_runs += 1

        async def statistics() -> AsyncIterator[dict[str, Any]]:
            for stats in seen:
                yield stats
            while not ended and (stats := await feed.get()) is not _END:
                yield stats

        latest = seen[-1]
        last_state: str | None = None
        try:
            async for latest in statistics():
                state = latest.get("TableState")
                if state != last_state:
                    # One line when the load starts, one at the end (below), and one for any
                    # change in between (a reload): a table's story, not a line per poll.
                    if state not in TERMINAL_TABLE_STATES:
                        self.log.info(
                            "%s.%s: %s (%s rows so far)", self.schema_name, self.table_name,
                            state, f"{latest.get('FullLoadRows', 0):,}",
                        )  # fmt: skip
                    if not ended:
                        await self._progress(latest)
                    last_state = state
        except asyncio.CancelledError:
            await asyncio.shield(self._end(Cancelled(message="The ingestion was cancelled")))
            raise
        report, state = self._outcome(latest)
        if report.table_state == TableState.ERROR:
            self.log.error("%s", state.message)
        else:
            self.log.info("%s", state.message)
        if not ended:
            await self._end(state)
        return report

    def _outcome(self, stats: dict[str, Any]) -> tuple[TableReport, State[Any]]:
        """The table's report and the state its run ends in."""
        report = TableReport.from_statistics(stats)
        if report.table_state == TableState.ERROR:
            return report, Failed(message=(
                f"{self.schema_name}.{self.table_name} ended in 'Table error' (see the task's "
                "LastFailureMessage)"
            ))  # fmt: skip
        rate = f" ({report.rows_per_second:,.0f} rows/s)" if report.rows_per_second else ""
        took = f" in {report.duration_seconds:.2f} s" if report.duration_seconds is not None else ""
        return report, Completed(message=(
            f"{self.schema_name}.{self.table_name}: {report.table_state}, "
            f"{report.full_load_rows:,} rows{took}{rate}"
        ))  # fmt: skip

    async def _record(self, tracker: TableTracker, state: State[Any]) -> bool:
        """Create the tracking task run and the flow run in ``state``; False if not recorded.

        The flow run is created as ``FlowRunAsyncClient.create_flow_run`` creates it, with the
        flow's id read once per tracker rather than on every run (one call fewer a table)."""
        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            return False
        self._client = context.client
        parameters = {"schema_name": self.schema_name, "table_name": self.table_name}
        for attempt in range(API_ATTEMPTS):
            try:
                tracking = await _TRACKING_TASK.create_run(
                    flow_run_context=context, parameters=parameters
                )
                created = FlowRunCreate(
                    flow_id=await tracker.flow_id(),
                    name=f"{self.schema_name}.{self.table_name}",
                    parameters=parameters,
                    tags=list(TagsContext.get().current_tags),
                    parent_task_run_id=tracking.id,
                    state=to_state_create(state),
                )
                response = await self._client.request(
                    "POST", "/flow_runs/", json=created.model_dump(mode="json", exclude_unset=True)
                )
                self.flow_run = FlowRun.model_validate(response.json())
                self.log = flow_run_logger(self.flow_run, TABLE_FLOW)
                return True
            except PrefectHTTPStatusError as exc:
                # The run is bookkeeping for the UI: retry later, never fail the ingestion.
                if not _transient(exc):
                    raise
                tracker.api_errors += 1
                await asyncio.sleep(min(2**attempt, 30))
        logger.warning(
            "Prefect API kept refusing the run for %s.%s; its table is in the report only",
            self.schema_name, self.table_name,
        )  # fmt: skip
        return False

    async def _progress(self, stats: dict[str, Any]) -> None:
        """A progress artifact while the table loads (a table already done when its run starts,
        loaded within one poll, has its end in the run's state and skips two API calls)."""
        state = str(stats.get("TableState", ""))
        if self.flow_run is None or (self._artifact_id is None and state in TERMINAL_TABLE_STATES):
            return
        progress = 100.0 if state in TERMINAL_TABLE_STATES else STAGE_PROGRESS.get(state, 0.0)
        try:
            if self._artifact_id is None:
                created = ArtifactCreate(
                    type="progress", data=progress, description=_describe(stats),
                    flow_run_id=self.flow_run.id,
                )  # fmt: skip
                artifact = await self._client.create_artifact(created)
                self._artifact_id = artifact.id
            else:
                await self._client.update_artifact(
                    self._artifact_id, ArtifactUpdate(data=progress, description=_describe(stats))
                )
        except PrefectHTTPStatusError as exc:
            if not _transient(exc):
                raise
            logger.debug(
                "progress of %s.%s not recorded: %s", self.schema_name, self.table_name, exc
            )

    async def _end(self, state: Any) -> None:
        if self.flow_run is None:
            return
        try:
            await self._client.set_flow_run_state(self.flow_run.id, state, force=True)
        except PrefectHTTPStatusError as exc:
            if not _transient(exc):
                raise
            logger.warning(
                "Prefect API refused the end of %s.%s's run (%s); its table is in the report",
                self.schema_name, self.table_name, exc,
            )  # fmt: skip
