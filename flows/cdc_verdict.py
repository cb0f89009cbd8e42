"""What the CDC watch concludes from what DMS says: one verdict per look (``judge``), and the
report a watch run returns (``CdcWatchReport``). Pure: ``flows/cdc_watch.py`` reads DMS and
CloudWatch and hands the facts here.

The verdicts, in the order they are decided:

- ``failed``: DMS's status is ``failed`` (the reason: its LastFailureMessage);
- ``stopped``: ``stopped`` or ``ready``: nothing replicates (the reason: its StopReason). A task
  the watch is pointed at is meant to run: a stop is never "fine";
- ``tables-suspended``: running, with tables in ``Table error`` (DMS suspended them: their
  changes are not replicated);
- ``stalled``: running, and no CDCLatencySource datapoint in the watch's window, or the newest
  older than three periods: the metrics stopped, which on AWS is what a dead task looks like (an
  alarm that treats missing data as fine stays green);
- ``lagging``: the newest CDCLatencySource or CDCLatencyTarget is over
  ``max_cdc_latency_seconds``;
- ``healthy``: otherwise (a replication still starting or in its full load is healthy too).

Example:
    >>> judge(Facts(status="running", newest_seconds_ago=30, latency_source=2,
    ...             latency_target=400), max_latency=300, period=60).verdict
    <Verdict.LAGGING: 'lagging'>
    >>> judge(Facts(status="running", newest_seconds_ago=None), 300, 60).reason
    'no CDCLatencySource datapoint in the watch window: DMS publishes none for a task that does not run'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from dms_spec.status import TableState, TaskStatus


class Verdict(StrEnum):
    """The watch's verdicts; each is also the event ``dms.cdc.<verdict>``."""

    HEALTHY = "healthy"
    LAGGING = "lagging"
    STALLED = "stalled"
    STOPPED = "stopped"
    FAILED = "failed"
    TABLES_SUSPENDED = "tables-suspended"


@dataclass(frozen=True)
class Facts:
    """What DMS and CloudWatch said at one look."""

    status: str
    stop_reason: str | None = None
    last_failure_message: str | None = None
    suspended_tables: list[str] = field(default_factory=list)
    newest_seconds_ago: float | None = None
    """Age of the newest CDCLatencySource datapoint (None: none in the window)."""
    latency_source: float | None = None
    latency_target: float | None = None
    incoming: float | None = None


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str


STARTING = frozenset({TaskStatus.STARTING, TaskStatus.CREATING, TaskStatus.MODIFYING,
                      TaskStatus.TESTING})  # fmt: skip


def judge(facts: Facts, max_latency: float, period: float) -> Judgement:
    """The verdict of one look (the module docstring gives the rules)."""
    if facts.status == TaskStatus.FAILED:
        return Judgement(Verdict.FAILED, facts.last_failure_message or "the task failed")
    if facts.status in (TaskStatus.STOPPED, TaskStatus.READY):
        why = facts.stop_reason or ("never started" if facts.status == TaskStatus.READY else "")
        return Judgement(
            Verdict.STOPPED, f"the task is {facts.status}" + (f": {why}" if why else "")
        )
    if facts.status in STARTING:
        return Judgement(Verdict.HEALTHY, f"the task is {facts.status}")
    if facts.suspended_tables:
        names = ", ".join(facts.suspended_tables[:20])
        more = (
            f" and {len(facts.suspended_tables) - 20} more"
            if len(facts.suspended_tables) > 20
            else ""
        )
        return Judgement(Verdict.TABLES_SUSPENDED,
                         f"{len(facts.suspended_tables)} table(s) in '{TableState.ERROR}': {names}{more}")  # fmt: skip
    if facts.newest_seconds_ago is None:
        return Judgement(Verdict.STALLED, "no CDCLatencySource datapoint in the watch window: "
                         "DMS publishes none for a task that does not run")  # fmt: skip
    if facts.newest_seconds_ago > 3 * period:
        return Judgement(Verdict.STALLED, f"the newest CDCLatencySource datapoint is "
                         f"{facts.newest_seconds_ago:.0f} s old (period {period:.0f} s)")  # fmt: skip
    worst = max(facts.latency_source or 0.0, facts.latency_target or 0.0)
    if worst > max_latency:
        return Judgement(Verdict.LAGGING, (
            f"CDC latency {worst:.0f} s (source {facts.latency_source or 0:.0f} s, target "
            f"{facts.latency_target or 0:.0f} s) is over max_cdc_latency_seconds ({max_latency:.0f} s)"
        ))  # fmt: skip
    return Judgement(Verdict.HEALTHY, (
        f"CDC latency source {facts.latency_source or 0:.0f} s, target "
        f"{facts.latency_target or 0:.0f} s, {facts.incoming or 0:.0f} changes waiting"
    ))  # fmt: skip


class LatencyPoint(BaseModel):
    """One period of the metrics the watch read."""

    timestamp: datetime
    latency_source_seconds: float | None = None
    latency_target_seconds: float | None = None
    incoming_changes: float | None = None


class CdcTable(BaseModel):
    """A table's CDC counters as DescribeTableStatistics gives them."""

    schema_name: str
    table_name: str
    table_state: str
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    ddls: int = 0
    applied_inserts: int = 0
    applied_updates: int = 0
    applied_deletes: int = 0
    applied_ddls: int = 0


class CdcWatchReport(BaseModel):
    """One look of the CDC watch (returned, published as artifacts, and sent as an event)."""

    task_identifier: str
    arn: str
    serverless: bool
    verdict: Verdict
    reason: str
    status: str
    stop_reason: str | None = None
    latency_source_seconds: float | None = None
    latency_target_seconds: float | None = None
    incoming_changes: float | None = None
    max_cdc_latency_seconds: float
    resumed: bool = Field(
        default=False, description="Started with resume-processing (on_recoverable_stop: resume)."
    )
    tables: list[CdcTable] = Field(default_factory=list)
    series: list[LatencyPoint] = Field(default_factory=list)
    checked_at: datetime

    @property
    def healthy(self) -> bool:
        return self.verdict == Verdict.HEALTHY

    def summary_markdown(self) -> str:
        """The markdown artifact: the verdict, why, and the tables' counters."""
        lines = [
            f"# CDC watch: {self.task_identifier} is **{self.verdict}**",
            "",
            f"{self.reason}.",
            "",
            f"- status `{self.status}`" + (f", {self.stop_reason}" if self.stop_reason else ""),
            f"- CDCLatencySource {_seconds(self.latency_source_seconds)}, CDCLatencyTarget "
            f"{_seconds(self.latency_target_seconds)} (limit {self.max_cdc_latency_seconds:.0f} s),"
            f" CDCIncomingChanges {_number(self.incoming_changes)}",
        ]
        if self.resumed:
            lines.append("- started again with resume-processing (on_recoverable_stop: resume)")
        if self.tables:
            lines += ["", "| table | state | inserts | updates | deletes | applied |",
                      "|---|---|---:|---:|---:|---:|"]  # fmt: skip
            for t in self.tables:
                applied = t.applied_inserts + t.applied_updates + t.applied_deletes
                lines.append(f"| {t.schema_name}.{t.table_name} | {t.table_state} | "
                             f"{t.inserts:,} | {t.updates:,} | {t.deletes:,} | {applied:,} |")  # fmt: skip
        return "\n".join(lines) + "\n"

    def event_payload(self) -> dict[str, object]:
        """The payload of ``dms.cdc.<verdict>`` (``flows/events.py``)."""
        return {
            "verdict": str(self.verdict), "reason": self.reason, "status": self.status,
            "stop_reason": self.stop_reason,
            "latency_source_seconds": self.latency_source_seconds,
            "latency_target_seconds": self.latency_target_seconds,
            "incoming_changes": self.incoming_changes,
            "max_cdc_latency_seconds": self.max_cdc_latency_seconds, "resumed": self.resumed,
        }  # fmt: skip


def _seconds(value: float | None) -> str:
    return "no data" if value is None else f"{value:.0f} s"


def _number(value: float | None) -> str:
    return "no data" if value is None else f"{value:,.0f}"
