"""How a task run's events reach its task: ``TaskRunProgress`` is the backend's side of the
engine's ``RunProgress`` protocol. It changes the task only through the task's and tables'
transition methods, under the backend's lock, and persists through the backend's public
``update_task``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from dms_spec.status import StopReason
from localdms.backend.resources import ReplicationTask
from localdms.backend.table_statistics import TableStatistics, table_key
from localdms.table_mappings import TablePlan

if TYPE_CHECKING:
    from localdms.backend.base import BackendBase

log = logging.getLogger(__name__)


class TaskRunProgress:
    """The backend's side of ``RunProgress``: apply a run's events to its task, under the lock."""

    def __init__(self, backend: BackendBase, task_arn: str) -> None:
        self.backend = backend
        self.task_arn = task_arn

    def _update(self, change: Callable[[ReplicationTask], None], save: str = "now") -> None:
        """Apply ``change``; persist now (task transitions), soon (table ones) or not (row counts)."""
        self.backend.update_task(self.task_arn, change, save)

    def _table(self, task: ReplicationTask, plan: TablePlan) -> TableStatistics:
        key = table_key(plan.source.schema, plan.source.name)
        return task.tables.setdefault(key, TableStatistics(plan.source.schema, plan.source.name))

    def running(self, plans: Sequence[TablePlan]) -> None:
        def change(task: ReplicationTask) -> None:
            now = time.time()
            task.mark_running(now)
            for plan in plans:
                self._table(task, plan).queue(plan.source.estimated_rows, now)

        self._update(change)

    def table_started(self, plan: TablePlan) -> None:
        self._update(lambda task: self._table(task, plan).start_load(time.time()), save="soon")

    def table_rows(self, plan: TablePlan, rows: int) -> None:
        self._update(
            lambda task: self._table(task, plan).rows_loaded(rows, time.time()), save="never"
        )

    def table_completed(self, plan: TablePlan, rows: int) -> None:
        self._update(lambda task: self._table(task, plan).complete(rows, time.time()), save="soon")

    def table_failed(self, plan: TablePlan, message: str) -> None:
        log.warning("task %s: %s", self.task_arn, message)
        self._update(lambda task: self._table(task, plan).fail(message, time.time()), save="soon")

    def finished(self) -> None:
        self._update(lambda task: task.finish_load(time.time()))

    def stopped(self, reason: str = StopReason.NORMAL) -> None:
        self._update(lambda task: task.stop(StopReason(reason), time.time()))

    def failed(self, message: str) -> None:
        self._update(lambda task: task.fail(message, time.time()))

    def recovering(self, message: str, attempt: int, delay: float) -> None:
        """A recoverable error stopped capture: logged, and restarted after ``delay`` seconds."""
        log.warning(
            "task %s: %s; restarting the task in %.0f s (restart %d)",
            self.task_arn, message, delay, attempt,
        )  # fmt: skip

    def restarted(self, attempt: int, error: str) -> None:
        """Capture restarted from the checkpoint: the task's start event, as DMS restarts it."""
        self.backend.task_restarted(self.task_arn, attempt, error)

    def capture_created(self, slot: str) -> None:
        self._update(lambda task: task.capture_created(slot))

    def capturing(self) -> None:
        """The full load is over (or there is none): the task now captures changes."""
        self._update(lambda task: task.start_capture(time.time()))

    def changes_captured(self, counts: Mapping[TablePlan, Mapping[str, int]]) -> None:
        def change(task: ReplicationTask) -> None:
            now = time.time()
            for plan, numbers in counts.items():
                self._table(task, plan).add_changes(numbers, applied=False, now=now)

        self._update(change, save="soon")

    def changes_applied(
        self, counts: Mapping[TablePlan, Mapping[str, int]], checkpoint: str
    ) -> None:
        """Changes are in S3: store the checkpoint durably before the slot is told."""

        def change(task: ReplicationTask) -> None:
            now = time.time()
            for plan, numbers in counts.items():
                self._table(task, plan).add_changes(numbers, applied=True, now=now)
            task.checkpoint(checkpoint)

        self._update(change)
