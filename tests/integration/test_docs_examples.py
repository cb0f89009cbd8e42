"""The documentation's examples that need servers, run as a reader would run them."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg import sql

from tests.docs_blocks import block

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent  # aws (the dev extra's AWS CLI) is beside this interpreter


def test_the_localdms_cli_session_runs_as_written(localdms, s3, s3_server, source_db, tmp_path):
    """docs/localdms/index.md: the AWS CLI session, pasted into bash against localdms, moto's S3
    (checking keys) and a PostgreSQL database, loads every table of ``bookings``."""
    source_db.execute("CREATE SCHEMA bookings")
    source_db.execute(
        "CREATE TABLE bookings.tickets (id int PRIMARY KEY, name text); "
        "INSERT INTO bookings.tickets SELECT g, 'passenger ' || g FROM generate_series(1, 250) g"
    )
    source_db.execute(
        "CREATE TABLE bookings.flights AS SELECT g AS id FROM generate_series(1, 7) g"
    )
    # A password that starts with "-" is one argparse takes for an option unless it is given as
    # --password=VALUE; secrets.token_urlsafe makes such passwords (this block once failed on one).
    password = "-" + secrets.token_urlsafe(12)
    reader = f"reader_{secrets.token_hex(4)}"  # roles belong to the whole server: a name of its own
    source_db.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(reader), sql.Literal(password)
        )
    )
    source_db.execute(
        sql.SQL("GRANT USAGE ON SCHEMA bookings TO {0}; "
                "GRANT SELECT ON ALL TABLES IN SCHEMA bookings TO {0}").format(sql.Identifier(reader))
    )  # fmt: skip
    s3.create_bucket(Bucket="postgres-repo")
    server = source_db.server
    env = {
        **os.environ,
        **s3_server.credentials(),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE": localdms.url,
        "AWS_ENDPOINT_URL_S3": s3_server.url,
        "PGHOST": server.host, "PGPORT": str(server.port), "PGDATABASE": source_db.name,
        "PGUSER": reader, "PGPASSWORD": password,
    }  # fmt: skip
    session = block("localdms-cli-session")
    assert session.language == "bash"

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", session.text],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    statistics = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    assert sorted(statistics) == [
        ["bookings", "flights", "Table completed", "7"],
        ["bookings", "tickets", "Table completed", "250"],
    ]
    assert "raw/bookings/tickets/LOAD00000001.csv" in result.stdout  # aws s3 ls, keys checked
    assert password not in result.stdout + result.stderr
