"""A task run: the full load (PostgreSQL tables → S3 LOAD files, ``MaxFullLoadSubTasks`` at a
time), then, for CDC tasks, change capture (``cdc.py``) until the task is stopped.

One run is one thread with its own asyncio loop; each table is loaded by ``table_load.py``. A CDC
task checks the source and makes its publications first (``capture_source.py``), creates its slot
(``cdc.ChangeCapture.create_slot``) and loads every table in the slot's snapshot.
The run reports through ``RunProgress`` (implemented by the backend, which owns the task's state),
so the engine knows nothing about the API.

Failure messages follow DMS's format (``failures.py``): ``Last Error  <text> Stop Reason FATAL_ERROR
Error Level FATAL`` for the task; a table that fails goes to ``Table error`` while the others go
on. A source or S3 that goes away (an environmental error) restarts the task as DMS restarts it
(``dms_spec.recovery``, ErrorBehavior's RecoverableError settings): the full load goes on with
the tables not yet completed, change capture from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from dms_spec.lifecycle import last_error
from dms_spec.recovery import RecoveryPolicy
from dms_spec.status import StopReason
from dms_spec.table_mappings import Rule
from localdms.endpoint_settings import PostgresSource, S3Target
from localdms.engine.capture_source import (
    CdcError,
    StopAt,
    check_slot,
    check_source,
    create_publications,
    drop_capture,
    emit_marker,
)
from localdms.engine.cdc import CaptureProgress, ChangeCapture
from localdms.engine.columns import without_lobs
from localdms.engine.failures import (
    NO_TABLES_MESSAGE,
    EnvironmentalError,
    cdc_failure,
    check_bucket,
    fatal_message,
    source_error,
)
from localdms.engine.gauges import CaptureGauges
from localdms.engine.session import SESSION_SETUP
from localdms.engine.source_tables import read_catalog
from localdms.engine.table_load import TableLoad, TableProgress, TruncationStop
from localdms.pacing import ahold
from localdms.table_mappings import MappingError, TablePlan, plan_tables

log = logging.getLogger(__name__)

UPLOAD_SLOTS = 4


class RunProgress(CaptureProgress, TableProgress, Protocol):
    """What a run tells the task's owner (with ``CaptureProgress``'s change counts). Every method
    is called from the run's threads."""

    def running(self, plans: Sequence[TablePlan]) -> None: ...
    def finished(self) -> None: ...
    def stopped(self, reason: str = StopReason.NORMAL) -> None: ...
    def failed(self, message: str) -> None: ...
    def recovering(self, message: str, attempt: int, delay: float) -> None: ...
    def restarted(self, attempt: int, error: str) -> None: ...
    def capture_created(self, slot: str) -> None: ...
    def capturing(self) -> None: ...


@dataclass(frozen=True)
class CdcSpec:
    """How a CDC task's run captures changes."""

    slot: str
    fresh: bool
    """Create the slot and publications (dropping earlier ones); else continue the existing slot."""
    full_load: bool
    """Load the tables first, in the slot's snapshot (full-load-and-cdc on a fresh start)."""
    start_lsn: int = 0
    """Continue from this position (the RecoveryCheckpoint, or CdcStartPosition)."""
    stop_at: StopAt | None = None
    after_full_load: str = ""
    """``applied`` (StopTaskCachedChangesApplied), ``not-applied``, or ``""`` to keep running."""
    own_slot: bool = True
    """False for the endpoint's SlotName: used as it is, never created or dropped here."""


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs, resolved by the backend at StartReplicationTask."""

    task_identifier: str
    source: PostgresSource
    target: S3Target
    rules: Sequence[Rule]
    max_subtasks: int
    fail_on_no_tables: bool
    skip_tables: frozenset[tuple[str, str]] = frozenset()
    """Source (schema, table) already completed, for ``resume-processing``."""
    min_starting_seconds: float = 0.0
    min_running_seconds: float = 0.0
    """How long ``running`` shows at least, so that a client waiting for it after a start
    (Terraform's ``start_replication_task``) sees it even when the load takes less."""
    cdc: CdcSpec | None = None
    lob_limit: int | None = None
    """Limited LOB mode's cut (``dms_spec.lob.limited_lob_size``), or None."""
    truncation_policy: str = "LOG_ERROR"
    """What a cut LOB does (``dms_spec.lob.truncation_policy``)."""
    support_lobs: bool = True
    """False (``TargetMetadata.SupportLobs``): LOB columns are left out of every file."""
    recovery: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    """How change capture restarts after a recoverable error (``ErrorBehavior``)."""


class ReplicationRun:
    """Runs one replication task (full load, then change capture for CDC tasks) in a background
    thread.

    Args:
        spec: what to load and where.
        progress: receives state changes.
        s3_factory: returns a boto3 S3 client (the standard AWS configuration applies).
    """

    def __init__(self, spec: RunSpec, progress: RunProgress, s3_factory: Callable[[], Any]) -> None:
        self.spec = spec
        self.progress = progress
        self.s3_factory = s3_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._stop_requested = threading.Event()
        self._reload_lock = threading.Lock()
        self._reloads: list[tuple[str, str]] = []
        self._accepting_reloads = True
        self._capturing = False
        self._snapshot: str | None = None
        self.gauges = CaptureGauges()
        """What the load and the capture measure, for the metrics (``localdms/metrics.py``)."""
        self._thread = threading.Thread(
            target=self._thread_main, name=f"localdms-{spec.task_identifier}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the run to stop; tables being loaded are abandoned and their files removed, while a
        capture writes its pending changes first."""
        self._stop_requested.set()
        if self._capturing:
            return
        loop, task = self._loop, self._main_task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the run ended and closed its loop meanwhile
                loop.call_soon_threadsafe(task.cancel)

    def reload(self, tables: Sequence[tuple[str, str]]) -> bool:
        """Load these (schema, table) again before the run ends (ReloadTables).

        Returns:
            False when the run is already finishing and takes no more tables.
        """
        with self._reload_lock:
            if not self._accepting_reloads:
                return False
            self._reloads.extend(tables)
            return True

    def _take_reloads(self) -> list[tuple[str, str]]:
        """The pending reload requests; when there are none, stop accepting more."""
        with self._reload_lock:
            taken, self._reloads = self._reloads, []
            if not taken:
                self._accepting_reloads = False
            return list(dict.fromkeys(taken))

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # the thread's top frame: record, never die silently
            log.exception("task %s: run failed", self.spec.task_identifier)
            self.progress.failed(fatal_message(f"localdms internal error: {exc!r}."))

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main_task = asyncio.current_task()
        if self._stop_requested.is_set():
            self.progress.stopped()
            return
        try:
            await self._run()
        except asyncio.CancelledError:
            self.progress.stopped()
        except CdcError as exc:
            self.progress.failed(cdc_failure(exc))
        except EnvironmentalError as exc:  # no restart left
            self.progress.failed(last_error(
                f"{exc} Start the task with resume-processing once it is reachable again: the "
                "tables already loaded are kept.", StopReason.RECOVERABLE_ERROR,
            ))  # fmt: skip
        except TruncationStop as exc:
            self.progress.failed(fatal_message(str(exc)))
        finally:
            self._loop = self._main_task = None

    def _connect_arguments(self) -> dict[str, Any]:
        return self.spec.source.asyncpg_arguments()

    @staticmethod
    async def _setup_session(connection: Any) -> None:
        await connection.execute(SESSION_SETUP)

    async def _run(self) -> None:
        started = time.monotonic()
        s3 = self.s3_factory()
        try:
            pool = await asyncpg.create_pool(
                min_size=1,
                max_size=max(1, self.spec.max_subtasks),
                init=self._setup_session,
                **self._connect_arguments(),
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            self.progress.failed(fatal_message(source_error(self.spec.source, exc)))
            return
        try:
            await self._load(pool, s3, started)
        finally:
            pool.terminate()

    async def _load(self, pool: Any, s3: Any, started: float) -> None:
        async with pool.acquire() as connection:
            catalog = await read_catalog(connection)
        bucket_problem = await asyncio.to_thread(check_bucket, s3, self.spec.target.bucket_name)
        if bucket_problem:
            self.progress.failed(fatal_message(bucket_problem))
            return
        try:
            plans = plan_tables(self.spec.rules, catalog)
        except MappingError as exc:
            self.progress.failed(fatal_message(str(exc)))
            return
        if not self.spec.support_lobs:
            plans = [without_lobs(plan) for plan in plans]
        if not plans and self.spec.fail_on_no_tables:
            self.progress.failed(NO_TABLES_MESSAGE)
            return
        cdc = self.spec.cdc
        capture = None
        if cdc is not None:
            capture = await self._prepare_capture(cdc, pool, s3, plans)
        try:
            await ahold(self.spec.min_starting_seconds, since=started)  # `starting` shows first
            self.progress.running(plans)
            running_since = time.monotonic()
            if (cdc is None or cdc.full_load) and not await self._full_load(plans, pool, s3):
                self.progress.stopped()  # stopped while it waited to restart
                return
            if capture is not None and cdc is not None:
                await self._capture(capture, cdc, pool)
            else:
                await ahold(self.spec.min_running_seconds, since=running_since)
                self.progress.finished()
        finally:
            if capture is not None:
                capture.close()

    async def _prepare_capture(
        self, cdc: CdcSpec, pool: Any, s3: Any, plans: Sequence[TablePlan]
    ) -> ChangeCapture:
        """Check the source, then create the slot (fresh start) or find it (resume)."""
        source = self.spec.source
        async with pool.acquire() as connection:
            await check_source(connection)
            if not cdc.own_slot or not cdc.fresh:  # a slot that must already be there
                await check_slot(connection, cdc.slot, owned=cdc.own_slot)
            if not cdc.own_slot and cdc.fresh:
                await create_publications(connection, cdc.slot, plans, replace=False)
            elif cdc.fresh:
                await asyncio.to_thread(drop_capture, source, cdc.slot)
                await create_publications(connection, cdc.slot, plans)
        capture = ChangeCapture(
            source, self.spec.target, plans, cdc.slot, s3, self.progress,
            self.spec.lob_limit, self.spec.truncation_policy, self.gauges,
        )  # fmt: skip
        if cdc.own_slot and cdc.fresh:
            try:
                self._snapshot = await asyncio.to_thread(capture.create_slot)
            except CdcError:
                await asyncio.to_thread(drop_capture, source, cdc.slot)
                raise
            self.progress.capture_created(cdc.slot)
        return capture

    async def _capture(self, capture: ChangeCapture, cdc: CdcSpec, pool: Any) -> None:
        """After the full load: capture changes until stopped (or a stop setting says so)."""
        self._snapshot = None
        self.progress.capturing()
        with self._reload_lock:
            self._accepting_reloads = False
        if cdc.after_full_load == "not-applied" and cdc.full_load:
            self.progress.stopped(StopReason.STOPPED_AFTER_FULL_LOAD)
            return
        until_marker = cdc.after_full_load == "applied" and cdc.full_load
        if until_marker:
            async with pool.acquire() as connection:
                await emit_marker(connection, cdc.slot)
        self._capturing = True
        start, attempt = cdc.start_lsn, 0
        while True:
            try:
                reason = await asyncio.to_thread(
                    capture.stream, self._stop_requested, start, cdc.stop_at, until_marker
                )
                break
            except CdcError as exc:
                if not exc.recoverable:
                    raise
                attempt += 1
                restart = await self._restart_after(attempt, str(exc))
                if restart is None:
                    if attempt == 1:
                        raise
                    raise CdcError(
                        f"{exc} It failed again after {attempt - 1} restarts, as many as "
                        "ErrorBehavior's RecoverableError settings allow.",
                        recoverable=True,
                    ) from exc
                if not restart:
                    reason = None  # stopped while it waited: nothing is pending
                    break
                start = capture.checkpoint or start
                capture = capture.restart()
        self.progress.stopped(reason or StopReason.NORMAL)

    async def _restart_after(self, attempt: int, error: str) -> bool | None:
        """As DMS restarts a task after an environmental error: the task stays running, waits
        as ErrorBehavior says, and restarts (True); False when it was stopped while it waited;
        None when the settings allow no more restarts."""
        delay = self.spec.recovery.delay(attempt)
        if delay is None:
            return None
        self.progress.recovering(error, attempt, delay)
        if await asyncio.to_thread(self._stop_requested.wait, delay):
            return False
        self.progress.restarted(attempt, error)
        return True

    async def _full_load(self, plans: Sequence[TablePlan], pool: Any, s3: Any) -> bool:
        """Load the tables, restarting after environmental errors with the tables not yet
        completed; False when the task was stopped while it waited to restart.

        Raises:
            EnvironmentalError: the settings allow no more restarts.
        """
        done: set[tuple[str, str]] = set()
        attempt = 0
        while True:
            try:
                await self._load_tables(plans, pool, s3, done)
                return True
            except EnvironmentalError as exc:
                attempt += 1
                restart = await self._restart_after(attempt, str(exc))
                if restart is None:
                    if attempt == 1:
                        raise
                    raise EnvironmentalError(
                        f"{exc} It failed again after {attempt - 1} restarts, as many as "
                        "ErrorBehavior's RecoverableError settings allow.",
                        exc.from_source,
                    ) from exc
                if not restart:
                    return False
                await pool.expire_connections()  # those to a restarted server are dead
                if exc.from_source and self._snapshot is not None:
                    # The slot's snapshot ended with the connection that exported it: the tables
                    # left are read as they are now, and their changes since the slot's start
                    # are in CDC too (DMS's at-least-once: a replay gives the same rows).
                    log.warning("task %s: the full load restarts without the slot's snapshot",
                                self.spec.task_identifier)  # fmt: skip
                    self._snapshot = None

    async def _load_tables(
        self, plans: Sequence[TablePlan], pool: Any, s3: Any, done: set[tuple[str, str]]
    ) -> None:
        """Load every table not skipped (resume-processing) nor in ``done`` (loaded before a
        restart), ``MaxFullLoadSubTasks`` at a time, then the reloads asked for meanwhile; each
        table that ends joins ``done``.

        Raises:
            EnvironmentalError: a table lost the source or S3; the other tables were cancelled.
        """
        todo = [p for p in plans if (p.source.schema, p.source.name) not in self.spec.skip_tables]
        subtasks = asyncio.Semaphore(max(1, self.spec.max_subtasks))
        upload_slots = asyncio.Semaphore(UPLOAD_SLOTS)
        load_timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

        tables = TableLoad(
            self.spec.source, self.spec.target, self.progress, s3, self._snapshot,
            remove_cdc_files=self.spec.cdc is not None,
            lob_limit=self.spec.lob_limit, truncation_policy=self.spec.truncation_policy,
            gauges=self.gauges,
        )  # fmt: skip

        async def load(plan: TablePlan) -> None:
            async with subtasks:
                await tables.load(plan, pool, upload_slots, load_timestamp)
            done.add((plan.source.schema, plan.source.name))

        async def load_all(chosen: Sequence[TablePlan]) -> None:
            try:
                async with asyncio.TaskGroup() as group:  # one table's error cancels the others
                    for plan in chosen:
                        group.create_task(load(plan))
            except BaseExceptionGroup as group_error:
                errors = group_error.exceptions
                # The table's own error (with its own cause), not the group's.
                raise next(  # noqa: B904
                    (e for e in errors if isinstance(e, EnvironmentalError)), errors[0]
                )

        await load_all([p for p in todo if (p.source.schema, p.source.name) not in done])
        by_table = {(plan.source.schema, plan.source.name): plan for plan in plans}
        while requested := self._take_reloads():
            done.difference_update(requested)
            await load_all([by_table[key] for key in requested if key in by_table])
