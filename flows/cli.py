"""``dms-ingestion run``: run the flow from a terminal and print a readable summary;
``dms-ingestion watch``: one look of the CDC watch; ``dms-ingestion lake``: one run of the lake.

Uses the Prefect API named by ``PREFECT_API_URL``, or a temporary local one. Exit codes: 0 success,
1 the replication failed (the reason is printed, no traceback), 2 invalid config or credentials,
or a config that contradicts the target endpoint (nothing was started). ``--debug`` keeps Python
tracebacks of expected failures in the logs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.prefect_env import apply_local_defaults
from flows.run_logging import DEBUG_VARIABLE

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State


def _print_summary(report: object) -> None:
    from flows.report import IngestionReport

    assert isinstance(report, IngestionReport)
    print()
    print(
        f"{'schema':<20} {'table':<28} {'state':<18} {'rows':>12} {'S3 rows':>12} "
        f"{'S3 objects':>10} {'seconds':>9} {'rows/s':>11}"
    )
    for table in report.tables:
        s3_rows = "" if table.s3_rows is None else f"{table.s3_rows:,}"
        s3_objects = "" if table.s3_objects is None else str(table.s3_objects)
        print(
            f"{table.schema_name:<20} {table.table_name:<28} {table.table_state:<18} "
            f"{table.full_load_rows:>12,} {s3_rows:>12} {s3_objects:>10} "
            f"{table.duration_seconds or 0:>9.2f} {table.rows_per_second or 0:>11,.0f}"
        )
    outcome = "succeeded" if report.succeeded else "FAILED"
    print(
        f"\n{report.task_identifier} {outcome}: {report.status}"
        + (f" ({report.stop_reason})" if report.stop_reason else "")
        + f", {len(report.tables)} tables, {report.total_rows:,} rows in {report.elapsed_seconds:.1f} s"
    )
    if report.s3_verification is not None:
        print(f"S3 reconciliation: {report.s3_verification.detail}")
    if report.preflight is not None:
        notes = [f"{f.name} {f.status}{f.named()}"
                 for f in report.preflight.findings if f.status != "passed"]  # fmt: skip
        print(f"Preflight ({report.preflight.mode}): {report.preflight.status}"
              + (f": {'; '.join(notes)}" if notes else "")
              + (f" ({report.preflight.detail})" if report.preflight.status == "skipped" else ""))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    apply_local_defaults()
    if args.debug:
        os.environ[DEBUG_VARIABLE] = "1"
    from flows.config import load_config
    from flows.dms_ingestion import dms_ingestion
    from flows.exceptions import (
        ConfigError,
        CredentialsError,
        ReplicationTaskFailedError,
        TargetMismatchError,
    )

    try:
        load_config(
            args.config, poll_interval_seconds=args.poll_interval, timeout_seconds=args.timeout
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        print(
            "No PREFECT_API_URL: starting a temporary local Prefect API for this run (10-30 s). "
            "To reuse a running server (e.g. the one `make serve` prints), set PREFECT_API_URL.",
            file=sys.stderr,
            flush=True,
        )
    try:
        state: State[Any] = asyncio.run(
            dms_ingestion(  # type: ignore[arg-type]
                config_path=str(args.config),
                aws_credentials_block=args.aws_credentials_block,
                poll_interval_seconds=args.poll_interval,
                timeout_seconds=args.timeout,
                return_state=True,
            )
        )
    except RuntimeError as exc:  # the temporary Prefect API could not start
        print(
            f"error: {exc} Point PREFECT_API_URL at a running Prefect server, or raise "
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.",
            file=sys.stderr,
        )
        return 1
    result = state.result(raise_on_failure=False)
    report = getattr(result, "report", None) if isinstance(result, BaseException) else result
    if report is not None:
        _print_summary(report)
        if args.report_json:
            Path(args.report_json).write_text(report.model_dump_json(indent=2))
            print(f"Report written to {args.report_json}")
    if isinstance(result, BaseException):
        print(f"\nerror: {result}", file=sys.stderr)
        expected_before_start = ConfigError | CredentialsError | TargetMismatchError
        return 2 if isinstance(result, expected_before_start) else 1
    if not isinstance(result, ReplicationTaskFailedError) and report is None:
        print(f"error: the flow ended {state.type.value} without a report", file=sys.stderr)
        return 1
    return 0


def _reporting_flow(args: argparse.Namespace, start: Any) -> int:
    """Run a flow that returns a report with ``summary_markdown`` (the watch, the lake): print
    it, write it as JSON with ``--report-json``; exit 0 on success, 2 for a config or
    credentials problem, 1 for any other failure (its reason on stderr, no traceback).

    Args:
        start: called with the loaded config's path, returns the flow's coroutine (with
            ``return_state=True``).
    """
    apply_local_defaults()
    if args.debug:
        os.environ[DEBUG_VARIABLE] = "1"
    from flows.config import load_config
    from flows.exceptions import ConfigError, CredentialsError

    try:
        load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state: State[Any] = asyncio.run(start(str(args.config)))
    result = state.result(raise_on_failure=False)
    report = getattr(result, "report", None) if isinstance(result, BaseException) else result
    if report is not None:
        print(report.summary_markdown())
        if args.report_json:
            Path(args.report_json).write_text(report.model_dump_json(indent=2))
            print(f"Report written to {args.report_json}")
    if isinstance(result, BaseException):
        print(f"error: {result}", file=sys.stderr)
        return 2 if isinstance(result, ConfigError | CredentialsError) else 1
    return 0


def watch(args: argparse.Namespace) -> int:
    """One look of the CDC watch; exit 0 when healthy, 1 otherwise (the reason on stderr)."""
    from flows.cdc_watch import dms_cdc_watch

    return _reporting_flow(args, lambda config: dms_cdc_watch(
        config_path=config, aws_credentials_block=args.aws_credentials_block, return_state=True,
    ))  # fmt: skip


def lake(args: argparse.Namespace) -> int:
    """One run of the lake flow; exit 0 when every table was applied, 1 otherwise, 2 for a bad
    config or a replication that does not exist."""
    from flows.lake import dms_lake

    return _reporting_flow(args, lambda config: dms_lake(
        config_path=config, aws_credentials_block=args.aws_credentials_block,
        tables=args.table or None, return_state=True,
    ))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dms-ingestion`` command."""
    parser = argparse.ArgumentParser(
        prog="dms-ingestion", description="Run AWS DMS ingestion with Prefect."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the dms-ingestion flow once")
    run_parser.add_argument("--config", type=Path, required=True, help="the job's JSON config file")
    run_parser.add_argument(
        "--aws-credentials-block", help="an AwsCredentials block name (default: AWS default chain)"
    )
    run_parser.add_argument("--poll-interval", type=float, help="seconds between DMS polls")
    run_parser.add_argument("--timeout", type=float, help="seconds before giving up")
    run_parser.add_argument("--report-json", type=Path, help="write the report as JSON here")
    run_parser.add_argument(
        "--debug",
        action="store_true",
        help="log Python tracebacks of expected failures too (DMS_INGESTION_DEBUG=1)",
    )
    watch_parser = commands.add_parser(
        "watch", help="look at the CDC of the task once (exit 1 unless healthy)"
    )
    watch_parser.add_argument("--config", type=Path, required=True, help="the job's JSON config")
    watch_parser.add_argument("--aws-credentials-block", help="an AwsCredentials block name")
    watch_parser.add_argument("--report-json", type=Path, help="write the report as JSON here")
    watch_parser.add_argument("--debug", action="store_true", help="log tracebacks too")
    lake_parser = commands.add_parser(
        "lake", help="apply the task's LOAD and CDC files in S3 to Iceberg tables, once"
    )
    lake_parser.add_argument("--config", type=Path, required=True, help="the job's JSON config")
    lake_parser.add_argument("--aws-credentials-block", help="an AwsCredentials block name")
    lake_parser.add_argument(
        "--table", action="append", help="schema.table to apply (repeat; default: all)"
    )
    lake_parser.add_argument("--report-json", type=Path, help="write the report as JSON here")
    lake_parser.add_argument("--debug", action="store_true", help="log tracebacks too")
    args = parser.parse_args(argv)
    commands_by_name = {"watch": watch, "lake": lake, "run": run}
    return commands_by_name[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
