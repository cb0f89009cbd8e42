"""Change data capture from PostgreSQL logical decoding into per-table CDC files on S3.

The capture creates its slot here (``ChangeCapture.create_slot``, over the replication protocol,
with an exported snapshot); ``capture_source`` names the slot, makes the publications and checks
the source first; the files it writes are rendered by ``cdc_output``.

Consistency (full-load-and-cdc): the slot is created with an exported snapshot over the
replication protocol, and every table of the full load is read in that snapshot. A transaction is
therefore either in the LOAD files (committed before the slot's start) or in the CDC files, never
both and never neither.

Checkpoints: changes are buffered per table and written as CDC files every CdcMaxBatchInterval
seconds, or sooner once a table's pending changes reach CdcMinFileSize. Only after the files are in
S3 is the commit position stored as the task's RecoveryCheckpoint (the task state is fsynced) and
confirmed to the slot. A stop writes what is pending first; after a crash, PostgreSQL sends again
what was not confirmed, so nothing is lost. A crash between writing files and storing the
checkpoint can write those changes twice (in two CDC files, in order); replaying by key gives the
same final state.

Not emulated (documented in docs/localdms/cdc.md): PreserveTransactions/CdcPath, DDL other than TRUNCATE
(an ALTER TABLE shows as new columns in later files), source filters on CDC rows, and values of
unchanged TOASTed columns in updates without REPLICA IDENTITY FULL (written as NULL; a warning is
logged).
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import botocore.exceptions
import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import errorcodes

from dms_spec.status import StopReason
from localdms.endpoint_settings import PostgresSource, S3Target
from localdms.engine import pgoutput
from localdms.engine.capture_source import (
    MARKER_PREFIX,
    CdcError,
    StopAt,
    connect,
    publication_names,
    source_text,
)
from localdms.engine.cdc_output import LobOverLimit, TableOutput, cdc_file_name, partition_folder
from localdms.engine.gauges import CaptureGauges
from localdms.engine.s3_writer import delete_prefix
from localdms.engine.source_tables import COLUMNS_QUERY
from localdms.table_mappings import SourceColumn, TablePlan

log = logging.getLogger(__name__)

CAPTURED_REPORT_SECONDS = 0.5


class CaptureProgress(Protocol):
    """What a capture tells the task's owner (called from the capture's thread)."""

    def changes_captured(self, counts: Mapping[TablePlan, Mapping[str, int]]) -> None: ...
    def table_failed(self, plan: TablePlan, message: str) -> None: ...
    def changes_applied(
        self, counts: Mapping[TablePlan, Mapping[str, int]], checkpoint: str
    ) -> None: ...


@dataclass
class _Transaction:
    commit_time: datetime
    changes: list[pgoutput.Message] = field(default_factory=list)
    size: int = 0
    """Bytes of the pgoutput messages read for it (the metrics' source bandwidth)."""


class ChangeCapture:
    """One task's capture: its slot, and the stream from the slot to S3.

    Args:
        source: the PostgreSQL source.
        target: the S3 target settings.
        plans: the task's tables.
        slot: the slot name.
        s3: a boto3 S3 client.
        progress: receives captured and applied counts.
    """

    def __init__(
        self,
        source: PostgresSource,
        target: S3Target,
        plans: Sequence[TablePlan],
        slot: str,
        s3: Any,
        progress: CaptureProgress,
        lob_limit: int | None = None,
        truncation_policy: str = "LOG_ERROR",
        gauges: CaptureGauges | None = None,
    ) -> None:
        self.source = source
        self.gauges = gauges or CaptureGauges()
        self.target = target
        self.slot = slot
        self.s3 = s3
        self.progress = progress
        self._lob_limit, self._truncation_policy = lob_limit, truncation_policy
        self.plans = {(p.source.schema, p.source.name): p for p in plans}
        self.outputs = {
            key: TableOutput(plan, target, lob_limit=lob_limit, truncation_policy=truncation_policy)
            for key, plan in self.plans.items()
        }
        self.relations: dict[int, pgoutput.Relation] = {}
        self.column_names: dict[int, tuple[str, ...]] = {}
        self._connection: Any = None
        self._last_names: dict[tuple[str, str], datetime] = {}
        self._confirmed = 0
        self._processed = 0
        self._captured: dict[tuple[str, str], dict[str, int]] = {}
        self._captured_reported = time.monotonic()
        self._toast_warned: set[tuple[str, str]] = set()
        self._truncation_warned: set[tuple[str, str]] = set()

    @property
    def checkpoint(self) -> int:
        """The position up to which every change is in S3 (what a restart continues from)."""
        return self._confirmed

    def restart(self) -> ChangeCapture:
        """A new capture of the same tables and slot for a restart after a recoverable error:
        its buffers are empty, so what was read and not written is read again from
        ``checkpoint`` (the slot kept it), once; tables suspended stay suspended."""
        capture = ChangeCapture(
            self.source, self.target, list(self.plans.values()), self.slot, self.s3,
            self.progress, self._lob_limit, self._truncation_policy, self.gauges,
        )  # fmt: skip
        self.gauges.restarted()
        for key, output in self.outputs.items():
            capture.outputs[key].suspended = output.suspended
        return capture

    def create_slot(self) -> str:
        """Create the slot, holding its exported snapshot until ``stream`` starts.

        Returns:
            The snapshot name for ``SET TRANSACTION SNAPSHOT``.
        """
        self._connection = connect(self.source, replication=True)
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE_REPLICATION_SLOT {self.slot} LOGICAL pgoutput EXPORT_SNAPSHOT"
                )
                row = cursor.fetchone()
        except psycopg2.Error as exc:
            self.close()
            text = str(exc).strip()
            if exc.pgcode == errorcodes.CONFIGURATION_LIMIT_EXCEEDED:  # no free slot
                raise CdcError(
                    "Failed to create the replication slot: all replication slots are in use "
                    "on the PostgreSQL source. Drop unused slots or raise max_replication_slots."
                ) from exc
            if exc.pgcode == errorcodes.DUPLICATE_OBJECT:
                raise CdcError(
                    f"Failed to create the replication slot {self.slot}: it already exists. "
                    "Start the task with resume-processing, or drop the slot."
                ) from exc
            raise CdcError(f"Failed to create the replication slot: {text}") from exc
        log.info("slot %s created at %s, snapshot %s", self.slot, row[1], row[2])
        return str(row[2])

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg2.Error):
                self._connection.close()
            self._connection = None

    def stream(
        self,
        stop: threading.Event,
        start_lsn: int = 0,
        stop_at: StopAt | None = None,
        until_marker: bool = False,
    ) -> str | None:
        """Capture changes into CDC files until told to stop.

        Args:
            stop: set to stop; pending changes are written first.
            start_lsn: the RecoveryCheckpoint to continue from (0: the slot's position).
            stop_at: the CdcStopPosition.
            until_marker: stop after the marker ``emit_marker`` writes.

        Returns:
            The StopReason when a stop position or the marker ended the capture, else None.

        Raises:
            CdcError: the source or the target failed.
        """
        self._confirmed = self._processed = start_lsn
        try:
            if self._connection is None:
                self._connection = connect(self.source, replication=True)
            cursor = self._connection.cursor()
            cursor.start_replication(
                slot_name=self.slot,
                decode=False,
                start_lsn=start_lsn,
                status_interval=5,
                options={
                    "proto_version": "1",
                    "publication_names": ",".join(publication_names(self.slot)),
                    # Logical messages (PostgreSQL 14+) carry the end-of-cached-changes marker.
                    **({"messages": "true"} if until_marker else {}),
                },
            )
            return self._loop(cursor, stop, stop_at, until_marker)
        except psycopg2.Error as exc:
            if exc.pgcode == errorcodes.UNDEFINED_OBJECT:  # the slot was dropped
                raise CdcError(
                    f"Replication slot {self.slot} does not exist on the PostgreSQL source: "
                    "start the task with reload-target to create it and load the tables again."
                ) from exc
            raise CdcError(
                f"Change capture lost the PostgreSQL source: {source_text(self.source, exc)}.",
                recoverable=True,
            ) from exc
        finally:
            self.close()

    def _loop(
        self, cursor: Any, stop: threading.Event, stop_at: StopAt | None, until_marker: bool
    ) -> str | None:
        interval = float(self.target.cdc_max_batch_interval)
        min_bytes = self.target.cdc_min_file_size_kb * 1024
        flush_due = time.monotonic() + interval
        transaction: _Transaction | None = None
        while True:
            if stop.is_set():
                self._flush(cursor)
                return None
            if stop_at and stop_at.kind == "server_time" and datetime.now(UTC) >= stop_at.when:
                self._flush(cursor)
                return stop_at.reason
            message = cursor.read_message()
            if message is None:
                self._report_captured(force=False)
                if time.monotonic() >= flush_due:
                    self._flush(cursor)
                    flush_due = time.monotonic() + interval
                select.select([cursor], [], [], min(0.2, max(0.0, flush_due - time.monotonic())))
                continue
            decoded = pgoutput.parse(message.payload)
            if transaction is not None:
                transaction.size += len(message.payload)
            if isinstance(decoded, pgoutput.Begin):
                transaction = _Transaction(decoded.commit_time)
            elif isinstance(decoded, pgoutput.Relation):
                self.relations[decoded.oid] = decoded
                self.column_names[decoded.oid] = tuple(c.name for c in decoded.columns)
                self._follow_added_columns(decoded, cursor)
            elif isinstance(decoded, pgoutput.Commit):
                if transaction is None:
                    continue
                if (
                    stop_at
                    and stop_at.kind == "commit_time"
                    and decoded.commit_time >= stop_at.when
                ):
                    self._flush(cursor)
                    return stop_at.reason
                touched = self._apply(transaction) if decoded.end_lsn > self._confirmed else ()
                if touched:
                    self.gauges.read(
                        transaction.commit_time, len(transaction.changes), transaction.size
                    )
                self._processed = max(self._processed, decoded.end_lsn)
                transaction = None
                # Checked per commit too: with a backlog there is always a message waiting, and
                # CdcMaxBatchInterval must still hold (it also bounds the memory pending rows use).
                if time.monotonic() >= flush_due or any(
                    self.outputs[key].size >= min_bytes for key in touched
                ):
                    self._flush(cursor)
                    flush_due = time.monotonic() + interval
            elif isinstance(decoded, pgoutput.LogicalMessage):
                if (
                    until_marker
                    and decoded.prefix == MARKER_PREFIX
                    and decoded.content == self.slot.encode()
                ):
                    self._flush(cursor)
                    return StopReason.STOPPED_AFTER_CACHED_EVENTS
            elif transaction is not None and not isinstance(decoded, pgoutput.Other):
                transaction.changes.append(decoded)

    def _follow_added_columns(self, relation: pgoutput.Relation, cursor: Any) -> None:
        """A column added in the source (ALTER TABLE ... ADD COLUMN) is written from then on,
        after the table's columns, as DMS does: the files written so far keep their columns, so
        the table's pending rows are written first. Transformation rules are not applied to the
        new column (its name is the source's)."""
        key = (relation.schema, relation.name)
        plan = self.plans.get(key)
        if plan is None:
            return
        known = {c.name for c in plan.source.columns}
        added = [c.name for c in relation.columns if c.name not in known]
        if not added:
            return
        columns = self._describe_columns(relation.oid, added)
        if self.outputs[key].pending:
            self._flush(cursor)
        source = replace(plan.source, columns=(*plan.source.columns, *columns))
        plan = replace(
            plan, source=source, columns=(*plan.columns, *((c, c.name) for c in columns))
        )
        suspended = self.outputs[key].suspended
        self.plans[key] = plan
        self.outputs[key] = TableOutput(plan, self.target, lob_limit=self._lob_limit,
                                        truncation_policy=self._truncation_policy)  # fmt: skip
        self.outputs[key].suspended = suspended
        log.info("%s.%s: column(s) %s added in the source; written from now on", *key,
                 ", ".join(added))  # fmt: skip

    def _describe_columns(self, oid: int, names: list[str]) -> list[SourceColumn]:
        """The catalog's description of these columns of the table ``oid`` (as ``read_catalog``
        describes every column at the start)."""
        connection = connect(self.source, replication=False)
        try:
            with connection.cursor() as catalog:
                catalog.execute(COLUMNS_QUERY, (oid, names))
                return [SourceColumn(*row) for row in catalog.fetchall()]
        except psycopg2.Error as exc:
            raise CdcError(source_text(self.source, exc), recoverable=True) from exc
        finally:
            connection.close()

    def _apply(self, transaction: _Transaction) -> set[tuple[str, str]]:
        """Render a committed transaction's changes into the tables' pending rows.

        Returns:
            The (schema, table) keys it added rows to.
        """
        touched: set[tuple[str, str]] = set()
        for change in transaction.changes:
            oids = (
                change.relation_oids
                if isinstance(change, pgoutput.Truncate)
                else (getattr(change, "relation_oid", None),)
            )
            for oid in oids:
                relation = self.relations.get(oid) if oid is not None else None
                key = (relation.schema, relation.name) if relation else None
                if relation is None or key not in self.outputs or self.outputs[key].suspended:
                    continue
                output = self.outputs[key]
                touched.add(key)
                counts = self._captured.setdefault(key, {"I": 0, "U": 0, "D": 0, "DDL": 0})
                try:
                    self._add(output, change, self.column_names[relation.oid], transaction, counts)
                except LobOverLimit as exc:
                    self._lob_over_limit(output, str(exc))
                if output.truncation_seen and key not in self._truncation_warned:
                    self._truncation_warned.add(key)
                    log.warning(
                        "%s.%s: a captured LOB value is longer than LobMaxSize (%s bytes); "
                        "DataTruncationErrorPolicy is %s: %s", *key, output.lob_limit,
                        output.truncation_policy,
                        "the change is left out" if output.truncation_policy == "IGNORE_RECORD"
                        else "it is written cut",
                    )  # fmt: skip
                if output.unchanged_toast_seen and key not in self._toast_warned:
                    self._toast_warned.add(key)
                    log.warning(
                        "%s.%s: an update left a large (TOASTed) value unchanged and PostgreSQL "
                        "did not send it; it is written as NULL. Set REPLICA IDENTITY FULL on the "
                        "table to capture it.",
                        *key,
                    )
        self._report_captured(force=False)
        return touched

    @staticmethod
    def _add(
        output: TableOutput,
        change: pgoutput.Message,
        columns: tuple[str, ...],
        transaction: _Transaction,
        counts: dict[str, int],
    ) -> None:
        """Render one change of ``output``'s table and count it as captured."""
        if isinstance(change, pgoutput.Insert):
            counts["I"] += 1
            output.add("I", columns, change.new, transaction.commit_time)
        elif isinstance(change, pgoutput.Update):
            counts["U"] += 1
            new = change.new
            if change.old is not None:
                new = tuple(
                    o if n is pgoutput.UNCHANGED_TOAST else n
                    for n, o in zip(change.new, change.old, strict=True)
                )
            output.add("U", columns, new, transaction.commit_time)
        elif isinstance(change, pgoutput.Delete):
            counts["D"] += 1
            output.add("D", columns, change.old, transaction.commit_time)
        elif isinstance(change, pgoutput.Truncate):
            counts["DDL"] += 1
            output.truncate()

    def _lob_over_limit(self, output: TableOutput, policy: str) -> None:
        """A captured LOB over LobMaxSize under SUSPEND_TABLE (the table's capture stops, it is
        in error) or STOP_TASK (the task fails; the transaction is not confirmed, so a resume
        after LobMaxSize is raised reads it again).

        Raises:
            CdcError: STOP_TASK.
        """
        plan = output.plan
        what = (f"A change of {plan.source.schema}.{plan.source.name} holds a LOB value longer "
                f"than LobMaxSize ({output.lob_limit:,} bytes)")  # fmt: skip
        if policy == "STOP_TASK":
            raise CdcError(
                f"{what}, and DataTruncationErrorPolicy is STOP_TASK (or the source endpoint's "
                "FailTasksOnLobTruncation is set): raise TargetMetadata.LobMaxSize, then resume."
            )
        output.suspended = True
        self.progress.table_failed(plan, (
            f"{what}; DataTruncationErrorPolicy is SUSPEND_TABLE, so its changes are no longer "
            "captured: raise TargetMetadata.LobMaxSize and reload the table."
        ))  # fmt: skip

    def _report_captured(self, force: bool) -> None:
        if not self._captured:
            return
        if force or time.monotonic() - self._captured_reported >= CAPTURED_REPORT_SECONDS:
            self.progress.changes_captured(
                {self.plans[key]: counts for key, counts in self._captured.items()}
            )
            self._captured = {}
            self._captured_reported = time.monotonic()

    def _flush(self, cursor: Any) -> None:
        """Write the pending CDC files, then store and confirm the checkpoint."""
        self._report_captured(force=True)
        applied: dict[TablePlan, dict[str, int]] = {}
        written = 0
        try:
            for key, output in self.outputs.items():
                prefix = self.target.table_prefix(
                    output.plan.target_schema, output.plan.target_table
                )
                if output.truncated:
                    delete_prefix(self.s3, self.target.bucket_name, prefix)
                if output.pending and output.first_commit is not None:
                    name = cdc_file_name(self._file_time(key), self.target.extension)
                    body = output.file_body()
                    self.s3.put_object(
                        Bucket=self.target.bucket_name,
                        Key=prefix + partition_folder(self.target, output.first_commit) + name,
                        Body=body,
                    )
                    written += len(body)
                if any(output.counts.values()):
                    applied[output.plan] = dict(output.counts)
                output.reset()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise CdcError(f"Failed to write CDC files to S3: {exc}.", recoverable=True) from exc
        if self._processed > self._confirmed or applied:
            self._confirmed = max(self._confirmed, self._processed)
            self.progress.changes_applied(applied, pgoutput.format_lsn(self._confirmed))
        self.gauges.written(written)
        cursor.send_feedback(flush_lsn=self._confirmed, reply=False)

    def _file_time(self, key: tuple[str, str]) -> datetime:
        """Now, but later than this table's previous file (names must not collide)."""
        now = datetime.now(UTC)
        last = self._last_names.get(key)
        if last is not None and now <= last + timedelta(milliseconds=1):
            now = last + timedelta(milliseconds=1)
        self._last_names[key] = now
        return now
