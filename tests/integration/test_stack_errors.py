"""When the local stack cannot start, `make demo` and `make serve` say what happened and what to
do, without a traceback: a PostgreSQL that cannot start (a port taken, a folder its user cannot
enter, no ``postgres`` user as root), an S3 endpoint that does not answer, a Prefect server that
does not come up, a port already taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.errors import StackStartError
from sandbox.ports import free_port
from sandbox.postgres import PostgresNotInstalledError, ThrowawayPostgres
from sandbox.prefect_server import PrefectServer
from sandbox.s3 import MotoS3Server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something listens on."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def run_module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_the_demo_says_an_s3_endpoint_does_not_answer():
    closed = free_port()  # nothing listens there
    result = run_module(
        "demo", "--s3-endpoint", f"http://127.0.0.1:{closed}",
        env={"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio-secret"},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"error: The S3 endpoint http://127.0.0.1:{closed} does not answer" in result.stderr
    assert "leave --s3-endpoint out" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "minio-secret" not in result.stderr + result.stdout


def test_make_serve_says_the_prefect_server_did_not_come_up():
    """A Prefect database that does not answer: the server exits, and serve says so with the
    last lines of the server's log, then stops what it started."""
    closed = free_port()
    result = run_module(
        "demo.serve",
        env={
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://u:p@127.0.0.1:{closed}/x"
        },
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "error: The Prefect server did not start" in result.stderr
    assert "ConnectionRefusedError" in result.stderr  # the server's own last words
    assert "set PREFECT_API_URL to a running server" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_port_already_taken_is_named(taken_port):
    postgres = ThrowawayPostgres(port=taken_port)
    for server in (postgres, MotoS3Server(port=taken_port), PrefectServer(port=taken_port)):
        with pytest.raises(StackStartError, match=rf"port {taken_port} on 127\.0\.0\.1 is taken"):
            server.start()
    assert not postgres.root.exists()  # the cluster initdb made is removed with its folder


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: the server runs as postgres then")
def test_as_root_a_temporary_folder_the_server_user_cannot_enter_is_named(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(
        StackStartError, match="the postgres user cannot reach the temporary folder"
    ):
        ThrowawayPostgres().start()
    assert list(private.iterdir()) == []  # nothing left behind


def test_as_root_without_a_postgres_user_says_how_to_make_one(monkeypatch):
    import pwd

    server = ThrowawayPostgres()
    server._as_postgres = True  # as root, whoever runs the suite

    def no_such_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwnam", no_such_user)
    with pytest.raises(PostgresNotInstalledError, match=r"useradd --system"):
        server.start()
    assert not server.root.exists()
