"""A throwaway PostgreSQL server: ``initdb`` + ``pg_ctl`` on a free port in a temporary directory.

Uses the installed server binaries (``initdb`` on PATH, or Debian's ``/usr/lib/postgresql/*/bin``).
``initdb`` refuses to run as root, so as root every server command runs as the unprivileged
``postgres`` user (``runuser``), with the data directory owned by it. The server listens on
127.0.0.1 only, needs a password (scram-sha-256, so wrong passwords are really refused), and has
``wal_level=logical``. Durability is traded for speed (``fsync=off``): it is for tests and demos.

Example:
    >>> with ThrowawayPostgres() as pg:  # doctest: +SKIP
    ...     print(pg.dsn())
    postgresql://postgres:...@127.0.0.1:54321/postgres
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandbox.ports import free_port


class PostgresNotInstalledError(RuntimeError):
    """No PostgreSQL server binaries were found."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise PostgresNotInstalledError(
        "No PostgreSQL server binaries found (initdb). Install them, e.g. "
        "`apt-get install postgresql` on Debian/Ubuntu, or point DMS_TEST_POSTGRES_DSN at a server."
    )


class ThrowawayPostgres:
    """Start a private PostgreSQL server; ``stop`` removes everything it wrote.

    Args:
        port: the port to listen on (a free one when None).
        password: the ``postgres`` user's password (random when None).
        settings: extra ``-c name=value`` server settings.
    """

    def __init__(
        self,
        port: int | None = None,
        password: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(16)
        self.user = "postgres"
        self.host = "127.0.0.1"
        self.settings = settings or {}
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="dms-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            )

    def start(self) -> ThrowawayPostgres:
        password_file = self.root / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        password_file.chmod(0o600)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
            f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        password_file.unlink()
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        options = " ".join(f"-c {key}={value}" for key, value in settings.items())
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` (includes the password: do not print it)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Restart the server (fast shutdown), keeping its data."""
        # pg_ctl reuses the server options but not the log file: without -l the server would
        # write to (and hold open) our output pipe, and this call would never return.
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-m", "fast", "-w", "-t", "60", "restart",
        )  # fmt: skip

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
