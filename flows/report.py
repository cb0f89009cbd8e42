"""What a run produced: the report object and its renderings.

The flow returns an ``IngestionReport``; in a notebook it renders as a table
(``_repr_markdown_``), ``model_dump_json()`` gives the JSON the CLI writes, and the flow
(``flows/dms_ingestion.py``) publishes ``table_rows()`` and ``summary_markdown()`` as Prefect
artifacts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from dms_spec.assessments import AssessmentStatus
from dms_spec.status import TableState


class TableReport(BaseModel):
    """One table as DMS reported it at the end of the run."""

    schema_name: str
    table_name: str
    table_state: str = Field(description="As DMS reports it, e.g. 'Table completed'.")
    full_load_rows: int = 0
    full_load_start_time: datetime | None = None
    full_load_end_time: datetime | None = None
    duration_seconds: float | None = None
    rows_per_second: float | None = None
    s3_objects: int | None = Field(
        default=None, description="LOAD objects under the table's S3 folder (verify_s3)."
    )
    s3_rows: int | None = Field(
        default=None,
        description="Data rows in those objects (verify_s3); must equal full_load_rows.",
    )
    s3_bytes: int | None = Field(default=None, description="Their size in bytes (verify_s3).")
    full_load_error_rows: int = Field(
        default=0, description="FullLoadErrorRows: rows DMS failed to load (DMS counts them for a "
        "DynamoDB target only; 0 otherwise).",
    )  # fmt: skip
    validation_state: str = Field(
        default="Not enabled",
        description="ValidationState as DMS reports it: 'Not enabled', 'Pending records', "
        "'Mismatched records', 'Validated', 'Error', ... (S3 targets validate once a day).",
    )
    validation_failed_records: int = 0
    validation_suspended_records: int = 0

    @classmethod
    def from_statistics(cls, stats: dict[str, Any]) -> TableReport:
        start, end = stats.get("FullLoadStartTime"), stats.get("FullLoadEndTime")
        duration = (end - start).total_seconds() if start and end else None
        rows = int(stats.get("FullLoadRows", 0))
        return cls(
            schema_name=stats["SchemaName"],
            table_name=stats["TableName"],
            table_state=stats.get("TableState", "unknown"),
            full_load_rows=rows,
            full_load_start_time=start,
            full_load_end_time=end,
            duration_seconds=round(duration, 3) if duration is not None else None,
            rows_per_second=round(rows / duration, 1) if duration else None,
            full_load_error_rows=int(stats.get("FullLoadErrorRows", 0)),
            validation_state=stats.get("ValidationState", "Not enabled"),
            validation_failed_records=int(stats.get("ValidationFailedRecords", 0)),
            validation_suspended_records=int(stats.get("ValidationSuspendedRecords", 0)),
        )

    @property
    def needs_attention(self) -> str:
        """What DMS reports wrong with the table's rows beyond its state ("" when nothing):
        rows that failed to load, and validation that did not pass.

        Example:
            >>> TableReport(schema_name="s", table_name="t", table_state="Table completed",
            ...             validation_state="Mismatched records",
            ...             validation_failed_records=3).needs_attention
            'validation Mismatched records (3 failed, 0 suspended)'
        """
        problems = []
        if self.full_load_error_rows:
            problems.append(f"{self.full_load_error_rows:,} full-load error rows")
        if self.validation_state not in ("Not enabled", "Validated", "Pending records") or (
            self.validation_failed_records or self.validation_suspended_records
        ):
            problems.append(
                f"validation {self.validation_state} ({self.validation_failed_records:,} failed, "
                f"{self.validation_suspended_records:,} suspended)"
            )
        return "; ".join(problems)


class S3Verification(BaseModel):
    """The reconciliation of the S3 output with DMS's row counts."""

    checked: bool
    ok: bool = True
    detail: str = ""
    tables: int = Field(default=0, description="Completed tables reconciled.")
    objects: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = Field(default=0.0, description="What reconciling cost, wall time.")
    mismatched_tables: list[str] = Field(
        default_factory=list, description="schema.table whose S3 rows differ from DMS's count."
    )


class PreflightFinding(BaseModel):
    """One individual assessment of the preflight."""

    name: str
    status: str = Field(description="passed, warning, failed, error, cancelled, skipped.")
    message: str = ""
    objects: list[str] = Field(default_factory=list, description="The tables or columns named.")

    def named(self, limit: int = 5) -> str:
        """The objects for a line of text: the first ``limit``, then how many more ("" if none).

        Example:
            >>> PreflightFinding(name="n", status="warning", objects=list("abcdefg")).named(3)
            ' (a, b, c and 4 more)'
        """
        if not self.objects:
            return ""
        more = len(self.objects) - limit
        return f" ({', '.join(self.objects[:limit])}" + (f" and {more} more)" if more > 0 else ")")


class Preflight(BaseModel):
    """The premigration assessment run before the start (``preflight``)."""

    mode: str = Field(description="warn or fail.")
    status: str = Field(
        description="The run's status as DMS reports it (passed, failed, ...), or 'skipped'."
    )
    run_arn: str | None = None
    result_location: str | None = Field(default=None, description="s3:// of the result files.")
    detail: str = ""
    findings: list[PreflightFinding] = Field(default_factory=list)

    @property
    def failed(self) -> list[PreflightFinding]:
        failing = (AssessmentStatus.FAILED, AssessmentStatus.ERROR)
        return [f for f in self.findings if f.status in failing]

    def table_rows(self) -> list[dict[str, Any]]:
        """The findings as a Prefect table artifact's rows."""
        return [
            {"assessment": f.name, "status": f.status, "objects": ", ".join(f.objects),
             "message": f.message}
            for f in self.findings
        ]  # fmt: skip


class IngestionReport(BaseModel):
    """The outcome of one ``dms_ingestion`` run."""

    task_identifier: str
    task_arn: str | None = Field(
        default=None, description="The replication task's ARN (None for DMS Serverless)."
    )
    replication_config_arn: str | None = Field(
        default=None, description="The DMS Serverless replication config's ARN (None for a task)."
    )
    migration_type: str
    target: str | None = Field(
        default=None, description="s3://bucket/[BucketFolder/], as the target endpoint says."
    )
    status: str = Field(description="The task's status at the end, as DMS reports it.")
    stop_reason: str | None = None
    last_failure_message: str | None = None
    start_type: str | None = Field(
        default=None, description="How the task was started (or None if attached)."
    )
    succeeded: bool
    started_at: datetime
    finished_at: datetime
    elapsed_seconds: float
    task_elapsed_seconds: float | None = Field(
        default=None, description="DMS's own ElapsedTimeMillis for the run, in seconds."
    )
    full_load_progress_percent: int | None = None
    tables: list[TableReport] = Field(default_factory=list)
    s3_verification: S3Verification | None = None
    dms_api_calls: dict[str, int] = Field(
        default_factory=dict, description="Every DMS call of the run, by operation."
    )
    max_monitoring_calls_per_poll: int = 0
    transient_errors: int = Field(
        default=0, description="Throttling/5xx/connection errors retried by the flow's tasks."
    )
    sdk_retries: int = Field(
        default=0, description="Throttling/5xx answers boto3 retried itself, within one call."
    )
    table_reloads: int = 0
    preflight: Preflight | None = Field(
        default=None, description="The premigration assessment before the start, if any."
    )

    @property
    def errored_tables(self) -> list[TableReport]:
        return [t for t in self.tables if t.table_state == TableState.ERROR]

    @property
    def total_rows(self) -> int:
        return sum(t.full_load_rows for t in self.tables)

    def table_rows(self) -> list[dict[str, Any]]:
        """Rows for the table artifact / a DataFrame."""
        return [
            {
                "schema": t.schema_name,
                "table": t.table_name,
                "state": t.table_state,
                "rows": t.full_load_rows,
                "s3_rows": t.s3_rows,
                "s3_objects": t.s3_objects,
                "s3_bytes": t.s3_bytes,
                "duration_s": t.duration_seconds,
                "rows_per_s": t.rows_per_second,
                "error_rows": t.full_load_error_rows,
                "validation": t.validation_state,
            }
            for t in self.tables
        ]

    def summary_markdown(self) -> str:
        """A human summary: outcome, figures, errors and the next step."""
        outcome = "succeeded" if self.succeeded else "FAILED"
        lines = [
            f"## DMS ingestion {outcome}: `{self.task_identifier}`",
            "",
            (
                f"- Task: `{self.task_arn}`"
                if self.task_arn
                else f"- DMS Serverless replication config: `{self.replication_config_arn}`"
            )
            + f" ({self.migration_type}, started with {self.start_type or 'attach'})",
            f"- Target: `{self.target or 'unknown'}`",
            f"- Status: **{self.status}**" + (f", {self.stop_reason}" if self.stop_reason else ""),
            f"- Tables: {len(self.tables)} ({sum(t.table_state == TableState.COMPLETED for t in self.tables)} "
            f"completed, {len(self.errored_tables)} errored), {self.total_rows:,} rows",
            f"- Elapsed: {self.elapsed_seconds:.1f} s (DMS task: "
            + (
                f"{self.task_elapsed_seconds:.1f} s)"
                if self.task_elapsed_seconds is not None
                else "n/a)"
            ),
            f"- DMS API calls: {sum(self.dms_api_calls.values())} "
            f"(at most {self.max_monitoring_calls_per_poll} per poll); transient errors retried: "
            f"{self.transient_errors} by the flow, {self.sdk_retries} by boto3",
        ]
        if self.preflight is not None:
            preflight = self.preflight
            lines.append(
                f"- Preflight ({preflight.mode}): **{preflight.status}**"
                + "".join(
                    f"; {f.name} {f.status}{f.named()}"
                    for f in preflight.findings
                    if f.status != "passed"
                )
                + (f"; {preflight.detail}" if preflight.detail and not preflight.findings else "")
            )
        if self.s3_verification is not None:
            verification = self.s3_verification
            state = (
                "skipped" if not verification.checked else ("ok" if verification.ok else "FAILED")
            )
            lines.append(f"- S3 reconciliation: {state}. {verification.detail}")
        if self.last_failure_message and not self.succeeded:
            lines += ["", "### Failure", "", f"```\n{self.last_failure_message}\n```"]
        if self.errored_tables:
            lines += ["", "### Tables in error", ""]
            lines += [
                f"- `{t.schema_name}.{t.table_name}`: {t.table_state}" for t in self.errored_tables
            ]
        attention = [t for t in self.tables if t.needs_attention]
        if attention:
            lines += ["", "### Rows DMS reports as not loaded or not validated", ""]
            lines += [f"- `{t.schema_name}.{t.table_name}`: {t.needs_attention}" for t in attention]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        header = (
            "| schema | table | state | rows | S3 rows | S3 objects | duration (s) | rows/s "
            "| validation |\n|---|---|---|---:|---:|---:|---:|---:|---|"
        )
        rows = [
            f"| {t.schema_name} | {t.table_name} | {t.table_state} | {t.full_load_rows:,} | "
            f"{'' if t.s3_rows is None else f'{t.s3_rows:,}'} | "
            f"{'' if t.s3_objects is None else t.s3_objects} | "
            f"{t.duration_seconds if t.duration_seconds is not None else ''} | "
            f"{'' if t.rows_per_second is None else f'{t.rows_per_second:,.0f}'} | "
            f"{t.validation_state} |"
            for t in self.tables
        ]
        return self.summary_markdown() + "\n\n" + "\n".join([header, *rows])

    def failure_message(self) -> str:
        """One paragraph for the flow's failure: status, StopReason, LastFailureMessage, tables."""
        parts = [
            f"{'Replication task' if self.task_arn else 'DMS Serverless replication'} "
            f"{self.task_identifier} ended {self.status}"
            + (f" ({self.stop_reason})" if self.stop_reason else "")
        ]
        if self.last_failure_message:
            parts.append(f"LastFailureMessage: {self.last_failure_message}")
        if self.errored_tables:
            parts.append(
                "Tables in error: "
                + ", ".join(
                    f"{t.schema_name}.{t.table_name} ({t.table_state})" for t in self.errored_tables
                )
            )
        if self.s3_verification is not None and not self.s3_verification.ok:
            parts.append(f"S3 reconciliation failed: {self.s3_verification.detail}")
        return ". ".join(parts) + "."
