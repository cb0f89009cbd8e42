"""One table's full load: its earlier files removed, then a CSV ``COPY (SELECT ...) TO STDOUT``
streamed by asyncpg (which hands over whole rows in C-buffered chunks) into a ``LoadFileWriter``,
or Arrow batches written as Parquet (``parquet_writer``). A CDC task's tables are read in the
slot's exported snapshot.

A table that fails reports ``table_failed`` and the other tables go on; a source or S3 that goes
away for a while raises ``EnvironmentalError`` (the run restarts the load, as DMS restarts a task);
a stop cancels the load. The files of an unfinished table are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

import asyncpg
import botocore.exceptions
from psycopg import sql

from dms_spec.lob import is_array_type, is_lob_type
from localdms.endpoint_settings import PostgresSource, S3Target
from localdms.engine.columns import load_select, lob_over
from localdms.engine.failures import (
    EnvironmentalError,
    s3_unavailable,
    source_error,
    source_went_away,
    table_error,
)
from localdms.engine.gauges import CaptureGauges
from localdms.engine.lob_cuts import CutCounts
from localdms.engine.rendering import RowDelimiterTranslator, header_line
from localdms.engine.s3_writer import LoadFileWriter, delete_prefix
from localdms.table_mappings import TablePlan

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 0.25
"""How often a loading table's FullLoadRows is refreshed."""

SMALL_CHUNK_BYTES = 64 * 1024
"""A COPY chunk under this size means the reader is ahead of PostgreSQL (see ``gather_rows``)."""

GATHER_SECONDS = 0.001
"""How long the reader waits after a small chunk, so that the next read finds more rows."""


async def gather_rows(chunk: bytes) -> None:
    """After a small COPY chunk, wait a millisecond before asyncpg reads again.

    asyncpg hands the sink whatever one socket read returned. PostgreSQL sends 8 KB at a time,
    so a reader that keeps up gets chunks of 6-10 KB, and each costs the event loop a round of
    pausing and resuming the socket, a future and a timeout: measured here, a COPY into a sink
    that does nothing took 1.0-1.8 s of client CPU on the 2 M and 5 M row benchmark tables, a
    core's worth of time taken from PostgreSQL and S3 on a 2-core machine. A small chunk means
    the socket was nearly empty, so waiting costs no throughput: PostgreSQL fills the socket
    buffer meanwhile (a millisecond of its output is well under the buffer's ~200 KB), and the
    next read takes tens of KB at once. The same COPYs then took 0.36-0.5 s of CPU, in the same
    or less wall time. A big chunk means data is waiting, and the reader goes straight on.
    """
    if len(chunk) < SMALL_CHUNK_BYTES:
        await asyncio.sleep(GATHER_SECONDS)


class TruncationStop(Exception):
    """A LOB over LobMaxSize under DataTruncationErrorPolicy STOP_TASK: the task fails."""


def over_limit(plan: TablePlan, lob_limit: int | None) -> sql.Composable | None:
    """A condition true for the rows with a LOB value longer than ``lob_limit`` (None when the
    table has no LOB column or nothing is cut)."""
    if lob_limit is None:
        return None
    tests = [
        lob_over(column, lob_limit) for column, _ in plan.columns if is_lob_type(column.base_type)
    ]
    return sql.SQL(" OR ").join(tests) if tests else None


def arrays_without_primary_key(plan: TablePlan) -> bool:
    """Whether DMS suspends this table in the full load: "A table with an ARRAY data type
    missing a primary key gets suspended during full load" (AWS DMS User Guide,
    CHAP_Source.PostgreSQL limitations). Only the plan's kept columns count."""
    return (
        plan.source.kind == "table"
        and not plan.source.primary_key
        and any(is_array_type(column.base_type) for column, _ in plan.columns)
    )


class TableProgress(Protocol):
    """What a table load tells the task's owner."""

    def table_started(self, plan: TablePlan) -> None: ...
    def table_rows(self, plan: TablePlan, rows: int) -> None: ...
    def table_completed(self, plan: TablePlan, rows: int) -> None: ...
    def table_failed(self, plan: TablePlan, message: str) -> None: ...


@dataclass
class TableLoad:
    """Loads the tables of one run, one call of ``load`` per table.

    Args:
        source: the PostgreSQL source.
        target: the S3 target settings.
        progress: receives each table's progress.
        s3: a boto3 S3 client.
        snapshot: the slot's exported snapshot to read in, for a CDC task's full load.
        remove_cdc_files: remove the table's CDC files too (a CDC task: they would replay onto
            the new load), not only its LOAD files.
        lob_limit: where LOB values are cut (limited LOB mode, ``dms_spec.lob``), or None.
        truncation_policy: what a table with values over ``lob_limit`` does (DMS's
            DataTruncationErrorPolicy): LOG_ERROR cuts them and logs how many of each column
            (``lob_cuts.CutCounts``); IGNORE_RECORD leaves those rows out; SUSPEND_TABLE puts
            the table in error and loads nothing of it; STOP_TASK fails the task.
        gauges: counts the bytes read and written, for the metrics (or None).
    """

    source: PostgresSource
    target: S3Target
    progress: TableProgress
    s3: Any
    snapshot: str | None
    remove_cdc_files: bool
    lob_limit: int | None = None
    truncation_policy: str = "LOG_ERROR"
    gauges: CaptureGauges | None = None
    """Where the bytes read and written are counted (the full load's bandwidth metrics)."""

    async def load(
        self, plan: TablePlan, pool: Any, upload_slots: asyncio.Semaphore, load_timestamp: str
    ) -> None:
        """Load one table (the progress hears how it ended; a stop raises CancelledError)."""
        self.progress.table_started(plan)
        if arrays_without_primary_key(plan):
            self.progress.table_failed(plan, table_error(plan, (
                "it has ARRAY columns and no primary key, and DMS suspends such a table during "
                "the full load: add a primary key."
            )))  # fmt: skip
            return
        kept = await self._apply_truncation_policy(plan, pool)
        if kept is None:
            return
        if self.target.data_format == "parquet":
            await self._load_parquet(kept, pool, load_timestamp)
        else:
            await self._load_csv(kept, pool, upload_slots, load_timestamp)

    def _cuts(self, plan: TablePlan) -> CutCounts | None:
        return CutCounts.of(plan, self.target, self.lob_limit, self.truncation_policy)

    @staticmethod
    def _log_cuts(cuts: CutCounts | None, counted: Any, measured: Any) -> None:
        """Say how many values of which columns were cut (nothing when none was)."""
        message = cuts.message(counted, measured) if cuts is not None else None
        if message:
            log.warning("%s", message)

    async def _delete_previous_files(self, prefix: str) -> None:
        """Before a table loads: remove the files an earlier run left under ``prefix``."""
        await asyncio.to_thread(
            delete_prefix,
            self.s3,
            self.target.bucket_name,
            prefix if self.remove_cdc_files else prefix + "LOAD",
        )

    async def _apply_truncation_policy(self, plan: TablePlan, pool: Any) -> TablePlan | None:
        """The plan to load under DataTruncationErrorPolicy, or None when the table is suspended.

        Raises:
            TruncationStop: STOP_TASK (or FailTasksOnLobTruncation) and a value is over the limit.
        """
        over = over_limit(plan, self.lob_limit)
        if over is None:
            return plan
        where = f"{self.lob_limit:,} bytes"
        if self.truncation_policy == "LOG_ERROR":
            return plan  # cut as it loads; how many is logged after it (_log_cuts)
        query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            sql.Identifier(plan.source.schema, plan.source.name),
            over if plan.where is None else sql.SQL("({}) AND ({})").format(plan.where, over),
        )
        async with pool.acquire() as connection:
            count = int(await connection.fetchval(query.as_string(None)))
        if not count:
            return plan
        what = (f"{count:,} row(s) of {plan.source.schema}.{plan.source.name} hold LOB values "
                f"longer than LobMaxSize ({where})")  # fmt: skip
        if self.truncation_policy == "STOP_TASK":
            raise TruncationStop(
                f"{what}, and DataTruncationErrorPolicy is STOP_TASK (or the source endpoint's "
                "FailTasksOnLobTruncation is set): raise TargetMetadata.LobMaxSize."
            )
        if self.truncation_policy == "SUSPEND_TABLE":
            self.progress.table_failed(plan, table_error(plan, (
                f"{what}; DataTruncationErrorPolicy is SUSPEND_TABLE, so the table was not "
                "loaded: raise TargetMetadata.LobMaxSize."
            )))  # fmt: skip
            return None
        log.warning("%s; DataTruncationErrorPolicy is IGNORE_RECORD: they are left out", what)
        keep = sql.SQL("NOT ({})").format(over)
        return replace(plan, where=keep if plan.where is None
                       else sql.SQL("({}) AND {}").format(plan.where, keep))  # fmt: skip

    async def _load_parquet(self, plan: TablePlan, pool: Any, load_timestamp: str) -> None:
        """One table to Parquet LOAD files, in a worker thread (ADBC and pyarrow are blocking)."""
        # Imported here: pyarrow and ADBC add ~60 MB to a process that only writes CSV.
        from localdms.engine.parquet_writer import (
            ParquetLoadWriter,
            load_table_parquet,
            parquet_select,
        )

        target = self.target
        statement, schema = parquet_select(plan, target, load_timestamp, self.lob_limit)
        prefix = target.table_prefix(plan.target_schema, plan.target_table)
        await self._delete_previous_files(prefix)
        writer = ParquetLoadWriter(self.s3, target, prefix, schema)
        next_report = time.monotonic()
        reported = 0

        def on_rows(rows: int, batch_bytes: int) -> None:
            nonlocal next_report, reported
            if self.gauges is not None:
                self.gauges.loaded(batch_bytes, writer.bytes_written - reported)
                reported = writer.bytes_written
            if time.monotonic() >= next_report:
                self.progress.table_rows(plan, rows)
                next_report = time.monotonic() + PROGRESS_INTERVAL_SECONDS

        cuts = self._cuts(plan)
        stop = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(
            load_table_parquet, self.source, statement, schema, writer, stop, on_rows,
            self.snapshot, cuts,
        ))  # fmt: skip
        try:
            rows, counted = await asyncio.shield(work)
        except asyncio.CancelledError:
            # A stop, or another table's error: the thread ends at its next batch and removes
            # what it wrote. Wait for it, so that nothing of this load is left, or written
            # later over a reload's files, once the task reads stopped.
            stop.set()
            await asyncio.wait({work})
            work.exception()  # LoadStopped, as asked: retrieved, not logged as unhandled
            raise
        except Exception as exc:
            if not _parquet_load_error(exc):
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if s3_unavailable(exc):
                raise EnvironmentalError(f"Failed to write to S3: {text}", False) from exc
            if source_went_away(exc):
                raise EnvironmentalError(source_error(self.source, exc), True) from exc
            self.progress.table_failed(plan, table_error(plan, text))
            return
        measured = None
        if cuts is not None and cuts.query is not None:
            # Read after the load, in the same snapshot when there is one.
            async with (
                pool.acquire() as connection,
                connection.transaction(isolation="repeatable_read", readonly=True),
            ):
                if self.snapshot is not None:
                    await connection.execute(
                        f"SET TRANSACTION SNAPSHOT {sql.Literal(self.snapshot).as_string(None)}"
                    )
                measured = await connection.fetchrow(cuts.query)
        self._log_cuts(cuts, counted, measured)
        self.progress.table_completed(plan, rows)

    async def _load_csv(
        self, plan: TablePlan, pool: Any, upload_slots: asyncio.Semaphore, load_timestamp: str
    ) -> None:
        target = self.target
        writer = LoadFileWriter(
            self.s3,
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
        bytes_seen = 0
        next_report = time.monotonic()

        async def sink(chunk: bytes) -> None:
            nonlocal bytes_seen, next_report
            bytes_seen += len(chunk)
            if time.monotonic() >= next_report and chunk:
                # A live estimate, from this chunk's bytes a row (counting the rows of every
                # chunk costs a tenth of the load's CPU); the COPY status gives the exact count.
                rows = chunk.count(b"\n")
                self.progress.table_rows(plan, bytes_seen * rows // len(chunk))
                next_report = time.monotonic() + PROGRESS_INTERVAL_SECONDS
            data = translator.translate(chunk) if translator else chunk
            if self.gauges is not None:
                self.gauges.loaded(len(chunk), len(data))
            await writer.write(data)
            await gather_rows(chunk)

        cuts = self._cuts(plan)
        counted = measured = None
        # A count after the COPY must read the rows the COPY read.
        in_transaction = self.snapshot is not None or (cuts is not None and cuts.query is not None)
        try:
            await self._delete_previous_files(writer.prefix)
            connection = await pool.acquire()
            try:
                if in_transaction:
                    await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if self.snapshot is not None:
                    # Read in the slot's snapshot: each change is in the load or in CDC, not both.
                    await connection.execute(
                        f"SET TRANSACTION SNAPSHOT {sql.Literal(self.snapshot).as_string(None)}"
                    )
                if cuts is not None and cuts.reset is not None:
                    await connection.execute(cuts.reset)
                status = await connection.copy_from_query(
                    load_select(plan, target, load_timestamp, False, self.lob_limit),
                    output=sink,
                    format="csv",
                    delimiter=target.csv_delimiter,
                    null=target.csv_null_value,
                    quote='"',
                    escape='"',
                )
                if cuts is not None and cuts.read is not None:
                    counted = await connection.fetchrow(cuts.read)
                if cuts is not None and cuts.query is not None:
                    measured = await connection.fetchrow(cuts.query)
                if in_transaction:
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
            self._log_cuts(cuts, counted, measured)
            self.progress.table_completed(plan, int(status.split()[-1]))
        except asyncio.CancelledError:
            await asyncio.shield(writer.abort())
            raise
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await _abort(writer)
            if source_went_away(exc):
                raise EnvironmentalError(source_error(self.source, exc), True) from exc
            self.progress.table_failed(plan, table_error(plan, source_error(self.source, exc)))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            await _abort(writer)
            if s3_unavailable(exc):
                raise EnvironmentalError(f"Failed to write to S3: {exc}", False) from exc
            self.progress.table_failed(plan, table_error(plan, f"Failed to write to S3: {exc}"))


async def _abort(writer: LoadFileWriter) -> None:
    """Remove what an unfinished table wrote, as far as S3 lets us now (an S3 that went away
    keeps the parts; the table's next load removes its earlier files first)."""
    with contextlib.suppress(botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        await writer.abort()


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
