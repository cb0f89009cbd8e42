"""The one-shot commands of the Compose stack's setup service, run natively."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg import sql

pytestmark = pytest.mark.integration


def test_sample_data_and_provisioning_clis(source_db, localdms, s3, s3_server):
    """As the setup service runs them: the source from libpq's variables (a password that a URL
    would need encoded), and a bucket that does not exist yet."""
    password = "p@ss:/w#%?"  # each of these breaks a URL unless encoded
    role = f"setup_{secrets.token_hex(3)}"
    source_db.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)).as_string(None)
    )  # fmt: skip
    source_db.execute(
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(source_db.name), sql.Identifier(role)).as_string(None)
    )  # fmt: skip
    server = source_db.server
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE": localdms.url,
        "AWS_ENDPOINT_URL_S3": s3_server.url,
        "PGHOST": server.host, "PGPORT": str(server.port), "PGUSER": role,
        "PGPASSWORD": password, "PGDATABASE": source_db.name,
    }  # fmt: skip

    data = subprocess.run(
        [sys.executable, "-m", "demo.bookings", "--scale", "small"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert data.returncode == 0, data.stderr
    assert "tickets 70,000" in data.stdout
    provisioned = subprocess.run(
        [sys.executable, "-m", "sandbox.localdms_process", "--bucket", "postgres-repo"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert provisioned.returncode == 0, provisioned.stderr
    env_example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    example = dict(
        line.split("=", 1) for line in env_example.splitlines() if line.startswith("DMS_")
    )
    printed = dict(line.split("=", 1) for line in provisioned.stdout.splitlines())
    assert printed == example  # the fixed ARNs are the ones .env.example documents
    assert password not in provisioned.stdout + provisioned.stderr
    assert s3.head_bucket(Bucket="postgres-repo")  # made by the CLI


def test_setup_runs_again_without_failing_or_dropping_data(source_db, localdms, dms, s3, s3_server):
    """docker compose starts setup on every up (and on run without --no-deps): a second run must
    reuse what the first made, and must not drop the sample data."""
    env = {**os.environ, "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE": localdms.url,
           "AWS_ENDPOINT_URL_S3": s3_server.url}  # fmt: skip
    s3.create_bucket(Bucket="postgres-repo")
    data = [sys.executable, "-m", "demo.bookings", "--dsn", source_db.dsn, "--scale", "small"]
    provision = [sys.executable, "-m", "sandbox.localdms_process", "--source-dsn", source_db.dsn,
                 "--bucket", "postgres-repo"]  # fmt: skip

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        return result

    run(data)
    first = run(provision)
    source_db.execute("INSERT INTO bookings.bookings VALUES ('MARKER', now(), 1)")

    again = run(data)
    second = run(provision)

    assert "already there, not generated again" in again.stdout
    assert source_db.fetchall(
        "SELECT count(*) FROM bookings.bookings WHERE book_ref = 'MARKER'"
    ) == [(1,)]
    assert second.stdout == first.stdout  # the same ARNs
    assert "reusing local-instance" in second.stderr
    assert len(dms.describe_replication_instances()["ReplicationInstances"]) == 1
    assert len(dms.describe_endpoints()["Endpoints"]) == 2
    replaced = run([*data, "--replace"])
    assert "already there" not in replaced.stdout
    assert source_db.fetchall(
        "SELECT count(*) FROM bookings.bookings WHERE book_ref = 'MARKER'"
    ) == [(0,)]
