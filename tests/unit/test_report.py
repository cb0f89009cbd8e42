"""The report shows, per table, what DMS says about rows it did not load or validate."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flows.report import IngestionReport, TableReport


def statistics(name: str, **fields: object) -> dict[str, object]:
    """A DescribeTableStatistics entry as DMS returns it for a completed table."""
    return {
        "SchemaName": "public", "TableName": name, "TableState": "Table completed",
        "FullLoadRows": 10, "FullLoadErrorRows": 0, "ValidationState": "Not enabled",
        "ValidationFailedRecords": 0, "ValidationSuspendedRecords": 0, **fields,
    }  # fmt: skip


def report(*tables: dict[str, object]) -> IngestionReport:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return IngestionReport(
        task_identifier="t", task_arn="arn:aws:dms:us-east-1:123456789012:task:T",
        migration_type="full-load", status="stopped", succeeded=True, started_at=now,
        finished_at=now, elapsed_seconds=1.0,
        tables=[TableReport.from_statistics(t) for t in tables],
    )  # fmt: skip


def test_validation_and_error_rows_reach_the_json_the_artifact_and_the_summary() -> None:
    run = report(
        statistics("clean", ValidationState="Validated"),
        statistics("orders", ValidationState="Mismatched records", ValidationFailedRecords=3),
        statistics("items", FullLoadErrorRows=2),
    )
    tables = {t["table_name"]: t for t in json.loads(run.model_dump_json())["tables"]}
    assert tables["orders"]["validation_state"] == "Mismatched records"
    assert tables["orders"]["validation_failed_records"] == 3
    assert tables["items"]["full_load_error_rows"] == 2
    assert [r["validation"] for r in run.table_rows()] == [
        "Validated", "Mismatched records", "Not enabled",
    ]  # fmt: skip

    summary = run.summary_markdown()
    assert "### Rows DMS reports as not loaded or not validated" in summary
    assert "`public.orders`: validation Mismatched records (3 failed, 0 suspended)" in summary
    assert "`public.items`: 2 full-load error rows" in summary
    assert "public.clean" not in summary


def test_a_clean_run_has_no_attention_section() -> None:
    summary = report(statistics("clean"), statistics("pending", ValidationState="Pending records"))
    assert "not loaded or not validated" not in summary.summary_markdown()


def test_the_markdown_table_shows_rows_per_second_as_the_log_does() -> None:
    """A notebook's rendering shows ``132,958`` where the terminal does, not ``132957.5``."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start.replace(second=2)
    run = report(
        statistics("tickets", FullLoadRows=265_915, FullLoadStartTime=start, FullLoadEndTime=end)
    )
    assert run.tables[0].rows_per_second == 132_957.5
    row = run._repr_markdown_().splitlines()[-1]
    assert (
        row
        == "| public | tickets | Table completed | 265,915 |  |  | 2.0 | 132,958 | Not enabled |"
    )
