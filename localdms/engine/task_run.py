"""A task run: the full load (PostgreSQL tables → S3 LOAD files, ``MaxFullLoadSubTasks`` at a
time), then, for CDC tasks, change capture (``cdc.py``) until the task is stopped.

One run is one thread with its own asyncio loop. Each CSV table is one ``COPY (SELECT ...) TO
STDOUT`` streamed by asyncpg (which hands over whole rows in C-buffered chunks) into a
``LoadFileWriter``; a Parquet table is read as Arrow batches (``parquet_writer.py``). A CDC task
creates its slot first and loads every table in the slot's snapshot.
The run reports through ``RunProgress`` (implemented by the backend, which owns the task's state),
so the engine knows nothing about the API.

Failure messages follow DMS's format: ``Last Error  <text> Stop Reason FATAL_ERROR Error Level
FATAL`` for the task; a table that fails goes to ``Table error`` while the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import botocore.exceptions
from psycopg import sql

from dms_spec.lifecycle import last_error
from dms_spec.status import StopReason
from dms_spec.table_mappings import Rule
from localdms.endpoint_settings import PostgresSource, S3Target
from localdms.engine.catalog import read_catalog
from localdms.engine.cdc import (
    CaptureProgress,
    CdcError,
    ChangeCapture,
    StopAt,
    check_slot,
    check_source,
    create_publications,
    drop_capture,
    emit_marker,
)
from localdms.engine.rendering import (
    SESSION_SETUP,
    RowDelimiterTranslator,
    header_line,
    select_statement,
)
from localdms.engine.s3_writer import LoadFileWriter, delete_prefix
from localdms.table_mappings import MappingError, TablePlan, plan_tables

log = logging.getLogger(__name__)

NO_TABLES_MESSAGE = last_error(
    "No tables were found at task initialization. Either the selected table(s) or schemas(s) no "
    "longer exist or no match was found for the table selection pattern(s). If you would like to "
    "start a Task that does not initially capture any tables, set Task Setting "
    "FailOnNoTablesCaptured to false and restart task.",
    StopReason.FATAL_ERROR,
)
UPLOAD_SLOTS = 4
CONNECT_TIMEOUT_SECONDS = 10
PROGRESS_INTERVAL_SECONDS = 0.25
"""How often a loading table's FullLoadRows is refreshed."""


def fatal_message(text: str) -> str:
    """Wrap ``text`` in DMS's task failure format."""
    return last_error(text, StopReason.FATAL_ERROR)


class RunProgress(CaptureProgress, Protocol):
    """What a run tells the task's owner (with ``CaptureProgress``'s change counts). Every method
    is called from the run's threads."""

    def running(self, plans: Sequence[TablePlan]) -> None: ...
    def table_started(self, plan: TablePlan) -> None: ...
    def table_rows(self, plan: TablePlan, rows: int) -> None: ...
    def table_completed(self, plan: TablePlan, rows: int) -> None: ...
    def table_failed(self, plan: TablePlan, message: str) -> None: ...
    def finished(self) -> None: ...
    def stopped(self, reason: str = StopReason.NORMAL) -> None: ...
    def failed(self, message: str) -> None: ...
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
    cdc: CdcSpec | None = None


class TaskRun:
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
        finally:
            self._loop = self._main_task = None

    def _connect_arguments(self) -> dict[str, Any]:
        return self.spec.source.asyncpg_arguments(CONNECT_TIMEOUT_SECONDS)

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
        if not plans and self.spec.fail_on_no_tables:
            self.progress.failed(NO_TABLES_MESSAGE)
            return
        cdc = self.spec.cdc
        capture = None
        if cdc is not None:
            capture = await self._prepare_capture(cdc, pool, s3, plans)
        try:
            await asyncio.sleep(
                max(0.0, self.spec.min_starting_seconds - (time.monotonic() - started))
            )
            self.progress.running(plans)
            if cdc is None or cdc.full_load:
                await self._load_tables(plans, pool, s3)
            if capture is not None and cdc is not None:
                await self._capture(capture, cdc, pool)
            else:
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
        capture = ChangeCapture(source, self.spec.target, plans, cdc.slot, s3, self.progress)
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
        reason = await asyncio.to_thread(
            capture.stream, self._stop_requested, cdc.start_lsn, cdc.stop_at, until_marker
        )
        self.progress.stopped(reason or StopReason.NORMAL)

    async def _load_tables(self, plans: Sequence[TablePlan], pool: Any, s3: Any) -> None:
        todo = [p for p in plans if (p.source.schema, p.source.name) not in self.spec.skip_tables]
        subtasks = asyncio.Semaphore(max(1, self.spec.max_subtasks))
        upload_slots = asyncio.Semaphore(UPLOAD_SLOTS)
        load_timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

        async def load(plan: TablePlan) -> None:
            async with subtasks:
                await self._load_table(plan, pool, s3, upload_slots, load_timestamp)

        await asyncio.gather(*(load(plan) for plan in todo))
        by_table = {(plan.source.schema, plan.source.name): plan for plan in plans}
        while requested := self._take_reloads():
            await asyncio.gather(*(load(by_table[key]) for key in requested if key in by_table))

    async def _delete_previous_files(self, s3: Any, prefix: str) -> None:
        """Before a table loads: remove the LOAD files an earlier run left under ``prefix``, and
        for a CDC task also its CDC files (they would replay onto the new load)."""
        everything = self.spec.cdc is not None
        await asyncio.to_thread(
            delete_prefix,
            s3,
            self.spec.target.bucket_name,
            prefix if everything else prefix + "LOAD",
        )

    async def _load_table_parquet(self, plan: TablePlan, s3: Any, load_timestamp: str) -> None:
        """One table to Parquet LOAD files, in a worker thread (ADBC and pyarrow are blocking)."""
        # Imported here: pyarrow and ADBC add ~60 MB to a process that only writes CSV.
        from localdms.engine.parquet_writer import (
            LoadStopped,
            ParquetLoadWriter,
            load_table_parquet,
            parquet_select,
        )

        target = self.spec.target
        statement, schema = parquet_select(plan, target, load_timestamp)
        prefix = target.table_prefix(plan.target_schema, plan.target_table)
        await self._delete_previous_files(s3, prefix)
        writer = ParquetLoadWriter(s3, target, prefix, schema)
        next_report = time.monotonic()

        def on_rows(rows: int) -> None:
            nonlocal next_report
            if time.monotonic() >= next_report:
                self.progress.table_rows(plan, rows)
                next_report = time.monotonic() + PROGRESS_INTERVAL_SECONDS

        try:
            rows = await asyncio.to_thread(
                load_table_parquet,
                self.spec.source, statement, schema, writer, self._stop_requested, on_rows,
                self._snapshot,
            )  # fmt: skip
        except LoadStopped:
            raise asyncio.CancelledError from None
        except Exception as exc:
            if not _parquet_load_error(exc):
                raise
            self.progress.table_failed(plan, table_error(plan, str(exc).strip().splitlines()[0]))
            return
        self.progress.table_completed(plan, rows)

    async def _load_table(
        self,
        plan: TablePlan,
        pool: Any,
        s3: Any,
        upload_slots: asyncio.Semaphore,
        load_timestamp: str,
    ) -> None:
        target = self.spec.target
        self.progress.table_started(plan)
        if target.data_format == "parquet":
            await self._load_table_parquet(plan, s3, load_timestamp)
            return
        writer = LoadFileWriter(
            s3,
            target.bucket_name,
            target.table_prefix(plan.target_schema, plan.target_table),
            target.extension,
            target.max_file_size_kb * 1024,
            header_line(plan, target),
            upload_slots,
            row_end=target.csv_row_delimiter.encode(),
        )
        translator = (
            RowDelimiterTranslator(target.csv_row_delimiter)
            if target.csv_row_delimiter != "\n"
            else None
        )
        rows_seen = 0
        next_report = time.monotonic()

        async def sink(chunk: bytes) -> None:
            nonlocal rows_seen, next_report
            rows_seen += chunk.count(b"\n")  # live estimate; the COPY status gives the exact count
            if time.monotonic() >= next_report:
                self.progress.table_rows(plan, rows_seen)
                next_report = time.monotonic() + PROGRESS_INTERVAL_SECONDS
            await writer.write(translator.translate(chunk) if translator else chunk)

        try:
            await self._delete_previous_files(s3, writer.prefix)
            connection = await pool.acquire()
            try:
                if self._snapshot is not None:
                    # Read in the slot's snapshot: each change is in the load or in CDC, not both.
                    await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    await connection.execute(
                        f"SET TRANSACTION SNAPSHOT {sql.Literal(self._snapshot).as_string(None)}"
                    )
                status = await connection.copy_from_query(
                    select_statement(plan, target, load_timestamp),
                    output=sink,
                    format="csv",
                    delimiter=target.csv_delimiter,
                    null=target.csv_null_value,
                    quote='"',
                    escape='"',
                )
                if self._snapshot is not None:
                    await connection.execute("COMMIT")
            except BaseException:
                # Interrupted mid-COPY (a stop, a failed upload): the connection cannot be reset for
                # reuse, so close it; the pool opens a new one when needed. A connection the server
                # dropped is already gone: the original error is the one that says why.
                with contextlib.suppress(asyncpg.InterfaceError):
                    connection.terminate()
                raise
            finally:
                with contextlib.suppress(asyncpg.InterfaceError):
                    await pool.release(connection)
            await writer.close()
            self.progress.table_completed(plan, int(status.split()[-1]))
        except asyncio.CancelledError:
            await asyncio.shield(writer.abort())
            raise
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await writer.abort()
            self.progress.table_failed(plan, table_error(plan, source_error(self.spec.source, exc)))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            with contextlib.suppress(
                botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError
            ):
                await writer.abort()
            self.progress.table_failed(plan, table_error(plan, f"Failed to write to S3: {exc}"))


def _parquet_load_error(exc: BaseException) -> bool:
    """Errors of a Parquet load that fail the table (not the run)."""
    import adbc_driver_manager
    import pyarrow as pa

    return isinstance(
        exc,
        adbc_driver_manager.Error
        | pa.ArrowException
        | botocore.exceptions.BotoCoreError
        | botocore.exceptions.ClientError
        | OSError,
    )


def cdc_failure(exc: CdcError) -> str:
    """A CDC failure in DMS's task failure format; recoverable ones can be resumed."""
    if exc.recoverable:
        return last_error(str(exc), StopReason.RECOVERABLE_ERROR)
    return fatal_message(str(exc))


def table_error(plan: TablePlan, text: str) -> str:
    return f"Failed to load table {plan.source.schema}.{plan.source.name}: {text}"


def source_error(source: PostgresSource, exc: BaseException) -> str:
    """A source failure as a user can act on it (the password never appears)."""
    where = f"{source.host}:{source.port}/{source.database} as {source.username}"
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return (
            f"Failed to connect to the PostgreSQL source {where}: authentication failed "
            f"({exc}). Check the endpoint's Username and Password."
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"Failed to connect to the PostgreSQL source {where}: {exc}. Check DatabaseName."
    if type(exc) is ConnectionError and source.ssl_mode == "require":
        # asyncpg's answer when the server refuses the SSL upgrade (refusals of the TCP
        # connection itself are ConnectionRefusedError, a subclass).
        return (
            f"Failed to connect to the PostgreSQL source {where}: the server does not accept SSL "
            "connections, and the endpoint's SslMode is require. Turn ssl on in the server's "
            "configuration, or set the endpoint's SslMode to none."
        )
    if isinstance(exc, OSError | asyncio.TimeoutError):
        return (
            f"Failed to connect to the PostgreSQL source {where}: {exc or type(exc).__name__}. "
            "Check ServerName and Port, and that the server accepts connections."
        )
    return f"PostgreSQL source {where} returned an error: {exc}"


def check_bucket(s3: Any, bucket: str) -> str | None:
    """None when the bucket is reachable, else the reason."""
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket", "NotFound"):
            return (
                f"The S3 bucket {bucket!r} does not exist. Create it or fix S3Settings.BucketName."
            )
        return f"Cannot access the S3 bucket {bucket!r}: {code} {exc}."
    except botocore.exceptions.BotoCoreError as exc:
        return f"Cannot reach S3 for bucket {bucket!r}: {exc}. Check AWS_ENDPOINT_URL_S3 / network."
    return None
