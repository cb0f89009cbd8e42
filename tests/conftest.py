"""Fixtures shared by every test: PostgreSQL, moto's S3 server, localdms, boto3 clients.

* ``postgres`` (session): a throwaway server, or the one named by ``DMS_TEST_POSTGRES_DSN``
  (a superuser URL such as ``postgresql://postgres:pw@127.0.0.1:5432/postgres``).
* ``source_db``: a fresh, empty database per test.
* ``s3_server`` (session) / ``s3``: moto's S3 server, emptied per test, and a client for it.
* ``localdms`` / ``dms``: a localdms server on a free port with its own state dir, and a client.
* ``northwind_sql``: the Northwind sample database's SQL, from ``../shared/fixtures/northwind/``
  beside the checkout (or ``DMS_NORTHWIND_SQL``); skipped with the reason when absent, failed in CI.
"""

from __future__ import annotations

import os
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from localdms.server import ThreadedLocalDms
from sandbox.postgres import ThrowawayPostgres
from sandbox.prefect_server import PrefectServer
from sandbox.s3 import MotoS3Server

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
)
for _variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_variable, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first, the slowest (the longest own timeout) at the head, each
    followed by one unit test; then the integration tests; then the other unit tests.

    ``tests/run_suite.sh`` spreads the suite over worker processes, and pytest-xdist (with
    ``--maxschedchunk 1``) first hands each worker the next two tests, then one more each time it
    finishes one. Paired so, the tests that take minutes start at once, one on each worker,
    and the short ones fill in around them; queued behind one another, or run last, two of them
    would decide the suite's wall time alone. Within a group, the files' order is kept.
    """

    def seconds(item: pytest.Item) -> float:
        timeout = item.get_closest_marker("timeout")
        return float(timeout.args[0]) if timeout and timeout.args else 0.0

    slow = sorted((i for i in items if i.get_closest_marker("e2e")), key=seconds, reverse=True)
    integration = [i for i in items if i.get_closest_marker("integration") and i not in slow]
    unit = [i for i in items if i not in slow and i not in integration]
    paired = [test for pair in zip(slow, unit, strict=False) for test in pair]
    items[:] = [*paired, *slow[len(paired) // 2 :], *integration, *unit[len(paired) // 2 :]]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def dsn(self, database: str = "postgres") -> str:
        password = urllib.parse.quote(self.password, safe="")
        return f"postgresql://{self.user}:{password}@{self.host}:{self.port}/{database}"


@dataclass(frozen=True)
class SourceDatabase:
    server: PostgresServer
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)

    def execute(self, statement: str | sql.Composable, params: Any = None) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(statement, params)  # type: ignore[arg-type]

    def fetchall(
        self, statement: str | sql.Composable, params: Any = None
    ) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    existing = os.environ.get("DMS_TEST_POSTGRES_DSN")
    if existing:
        url = urllib.parse.urlsplit(existing)
        yield PostgresServer(
            url.hostname or "127.0.0.1",
            url.port or 5432,
            urllib.parse.unquote(url.username or "postgres"),
            urllib.parse.unquote(url.password or ""),
        )
        return
    with ThrowawayPostgres() as server:
        yield PostgresServer(server.host, server.port, server.user, server.password)


@pytest.fixture
def source_db(postgres: PostgresServer) -> Iterator[SourceDatabase]:
    name = f"source_{secrets.token_hex(4)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield SourceDatabase(postgres, name)
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        drop_replication_slots(conn, name)
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_replication_slots(conn: psycopg.Connection[Any], database: str) -> None:
    """Drop the CDC slots a test left on ``database`` (PostgreSQL will not drop it otherwise)."""
    for _ in range(50):
        conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE database = %s AND active_pid IS NOT NULL",
            (database,),
        )
        try:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = %s",
                (database,),
            )
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.1)


NORTHWIND_SQL = Path(
    os.environ.get(
        "DMS_NORTHWIND_SQL",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "northwind" / "northwind.sql",
    )
)


@pytest.fixture
def northwind_sql() -> str:
    """Northwind's SQL. It is third-party data kept outside the project, so a bare clone skips the
    tests that need it (saying how to provide it); CI, which has it beside the checkout, fails."""
    if not NORTHWIND_SQL.is_file():
        message = (
            f"Northwind fixture not found at {NORTHWIND_SQL}: put shared/fixtures/northwind/ "
            "beside the checkout, or set DMS_NORTHWIND_SQL to northwind.sql"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return NORTHWIND_SQL.read_text()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    """moto's S3 for the session; it checks keys, and the environment holds the right ones (a
    client with other keys fails as against AWS)."""
    with MotoS3Server() as server:
        os.environ["AWS_ENDPOINT_URL_S3"] = server.url
        os.environ.update(server.credentials())
        yield server


@pytest.fixture
def s3(s3_server: MotoS3Server) -> Any:
    s3_server.reset()
    return boto3.client("s3", **s3_server.client_arguments())


@pytest.fixture
def localdms(tmp_path: Path, s3_server: MotoS3Server) -> Iterator[ThreadedLocalDms]:
    with ThreadedLocalDms(state_dir=tmp_path / "localdms", transition_seconds=0.2) as server:
        yield server


@pytest.fixture
def dms(localdms: ThreadedLocalDms) -> Any:
    return boto3.client("dms", endpoint_url=localdms.url)


@pytest.fixture(scope="session")
def prefect_api(postgres: PostgresServer) -> Iterator[str]:
    """One Prefect server for the session, backed by a database in the throwaway PostgreSQL.

    PostgreSQL rather than SQLite: per-table subflows start in bursts, and a SQLite-backed server
    answers concurrent writes with 503s and client back-off (measured: 600 subflows took ~220 s).
    """
    from flows.prefect_env import apply_local_defaults

    apply_local_defaults()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    name = f"prefect_{secrets.token_hex(4)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = postgres.dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    with (
        PrefectServer(database_url=database_url) as server,
        temporary_settings({PREFECT_API_URL: server.api_url}),
    ):
        os.environ["PREFECT_API_URL"] = server.api_url  # for subprocesses (CLI, worker)
        yield server.api_url
        os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture
def aws_endpoints(
    localdms: ThreadedLocalDms, s3_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point boto3 (and so AwsCredentials.get_client) at this test's localdms and S3."""
    from prefect_aws.credentials import _get_client_cached

    monkeypatch.setenv("AWS_ENDPOINT_URL_DATABASE_MIGRATION_SERVICE", localdms.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    _get_client_cached.cache_clear()  # prefect-aws caches clients with the endpoint they were built with
