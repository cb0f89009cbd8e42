"""How a started task becomes a run of the engine: the run's spec from the task's settings and
endpoints, its change-capture plan, and the runs a restarted server resumes."""

from __future__ import annotations

import logging
import time

from dms_spec.lifecycle import ACTIVE, last_error
from dms_spec.lob import (
    limited_lob_size,
    supports_lobs,
    truncation_policy,
    unsupported_lob_mode,
)
from dms_spec.recovery import RecoveryPolicy
from dms_spec.status import MigrationType, StartType, StopReason, TableState
from localdms.backend.base import BackendBase
from localdms.backend.progress import TaskRunProgress
from localdms.backend.resources import ReplicationTask
from localdms.engine.capture_source import StopAt, slot_name
from localdms.engine.pgoutput import parse_lsn
from localdms.engine.replication_run import CdcSpec, ReplicationRun, RunSpec
from localdms.exceptions import DmsFault
from localdms.table_mappings import validate_table_mappings

log = logging.getLogger(__name__)


class RunBackend(BackendBase):
    """Starting and resuming task runs (the operations are in ``tasks.py``)."""

    def _resume_runs(self) -> None:
        """A task that was capturing changes when the server stopped resumes capture from its
        checkpoint: the slot kept every change after it. (One that was loading came back
        ``failed`` from ``Persistence.load``.)"""
        for task in self._runnables():
            if task.status in ACTIVE and task.capturing:  # a stopping one came back stopped
                log.info("task %s: resuming change capture from %s", task.identifier,
                         task.recovery_checkpoint)  # fmt: skip
                try:
                    self._start(task, StartType.RESUME_PROCESSING)
                except DmsFault as fault:  # its source cannot be reached now (a secret, say)
                    task.fail(last_error(fault.message, StopReason.RECOVERABLE_ERROR), time.time())

    def _start(
        self, task: ReplicationTask, start_type: StartType, starting_seconds: float | None = None
    ) -> None:
        """Begin a run of ``task`` (or of a serverless replication, which shows its starting
        statuses for ``starting_seconds``).

        Raises:
            DmsFault: the source's Secrets Manager secret cannot be read (before anything
                changes).
        """
        source = self._source(self._endpoint(task.source_arn))
        resume = start_type == StartType.RESUME_PROCESSING
        skip = frozenset(
            (t.schema_name, t.table_name)
            for t in task.tables.values()
            if resume and t.state == TableState.COMPLETED
        )
        cdc = self._cdc_spec(task, start_type)
        task.begin(fresh=not resume, fresh_capture=cdc is None or cdc.fresh, now=time.time())
        self._save()
        target = self._endpoint(task.target_arn)
        full_load = task.settings.get("FullLoadSettings", {})
        errors = task.settings.get("ErrorBehavior", {})
        spec = RunSpec(
            task_identifier=task.identifier,
            source=source,
            target=target.target(),
            rules=validate_table_mappings(task.table_mappings),
            max_subtasks=int(full_load.get("MaxFullLoadSubTasks", 8)),
            fail_on_no_tables=bool(errors.get("FailOnNoTablesCaptured", True)),
            # A fresh CDC start reloads every table in the new slot's snapshot.
            skip_tables=skip if cdc is None or not cdc.fresh else frozenset(),
            min_starting_seconds=starting_seconds or self.transition_seconds,
            min_running_seconds=self.min_running_seconds,
            cdc=cdc,
            lob_limit=limited_lob_size(task.settings),
            truncation_policy=truncation_policy(task.settings, source.fail_tasks_on_lob_truncation),
            support_lobs=supports_lobs(task.settings),
            recovery=RecoveryPolicy.from_settings(errors),
        )
        lob_mode_problem = unsupported_lob_mode(task.settings)
        if lob_mode_problem:
            log.warning("task %s: %s", task.identifier, lob_mode_problem)
        if spec.support_lobs and spec.lob_limit is not None:
            log.info(
                "task %s: limited LOB mode: LOB values over %s bytes (TargetMetadata.LobMaxSize) "
                "are truncated; DataTruncationErrorPolicy %s",
                task.identifier, f"{spec.lob_limit:,}", spec.truncation_policy,
            )  # fmt: skip
        run = ReplicationRun(spec, TaskRunProgress(self, task.arn), self.s3_factory)
        self.runs[task.arn] = run
        run.start()

    def _cdc_spec(self, task: ReplicationTask, start_type: StartType) -> CdcSpec | None:
        """How the run captures changes: None for full-load tasks.

        A fresh start (start-replication, reload-target, or resume-processing of a task whose
        full load never finished) creates the slot and loads the tables in its snapshot; a resume
        of a capturing task continues the slot from the RecoveryCheckpoint.
        """
        if task.migration_type == MigrationType.FULL_LOAD:
            return None
        settings = task.settings.get("FullLoadSettings", {})
        after = (
            "not-applied"
            if settings.get("StopTaskCachedChangesNotApplied")
            else "applied"
            if settings.get("StopTaskCachedChangesApplied")
            else ""
        )
        stop_at = StopAt.parse(task.cdc_stop_position) if task.cdc_stop_position else None
        endpoint_slot = self._endpoint(task.source_arn).slot_name
        slot = endpoint_slot or task.slot_name or slot_name(task.arn)
        own = not endpoint_slot
        if start_type == StartType.RESUME_PROCESSING and task.capturing:
            start = task.recovery_checkpoint
            return CdcSpec(
                slot, False, False, parse_lsn(start) if start else 0, stop_at, after, own
            )
        if start_type == StartType.RESUME_PROCESSING:
            task.tables = {}
        full_load = task.migration_type == MigrationType.FULL_LOAD_AND_CDC
        start = task.cdc_start_position if not full_load else None
        return CdcSpec(slot, True, full_load, parse_lsn(start) if start else 0, stop_at, after, own)
