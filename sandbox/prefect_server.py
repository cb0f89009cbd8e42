"""A Prefect server as a subprocess on a free loopback port, optionally PostgreSQL-backed.

A SQLite-backed server answers concurrent writes slowly (``SQLITE_BUSY``, 503s and client
back-off), which per-table subflows produce in bursts; give ``database_url`` (a
``postgresql+asyncpg://`` URL) to avoid that. ``prefect server start --background`` returns before
the API is healthy, so this polls ``/api/health`` itself.

Example:
    >>> with PrefectServer() as server:  # doctest: +SKIP
    ...     print(server.api_url)
    http://127.0.0.1:54321/api
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.errors import StackStartError, log_tail, refuse_taken_port
from sandbox.ports import free_port, stop_process


class PrefectServer:
    """``prefect server start`` with its own ``PREFECT_HOME`` (removed on stop).

    Args:
        database_url: the server's database; SQLite in its ``PREFECT_HOME`` when None.
        port: the port (a free one when None).
        log_path: where the server's output goes (its home when None).
    """

    def __init__(
        self, database_url: str | None = None, port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.home = Path(tempfile.mkdtemp(prefix="dms-prefect-"))
        self.database_url = database_url
        self.log_path = log_path or self.home / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        """Variables for the server process."""
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_UI_API_URL": self.api_url,
        }
        env.pop("PREFECT_API_URL", None)
        if self.database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        return env

    def start(self, timeout: float = 180.0) -> PrefectServer:
        """Launch the server and wait until its API is healthy."""
        return self.launch().wait_until_healthy(timeout)

    def launch(self) -> PrefectServer:
        """Start the server process and return at once (it takes seconds to become healthy, which
        a caller can spend on other work before ``wait_until_healthy``)."""
        refuse_taken_port("The Prefect server", self.port)
        prefect = shutil.which("prefect") or str(Path(sys.executable).parent / "prefect")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
            )
        return self

    def wait_until_healthy(self, timeout: float = 180.0) -> PrefectServer:
        """Poll ``/api/health`` until it answers 200.

        Raises:
            StackStartError: the server process exited, or was not healthy within ``timeout``
                seconds (then it is stopped); the message has the last lines of its log.
        """
        assert self._process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StackStartError(
                    f"The Prefect server did not start: `prefect server start` exited with "
                    f"{self._process.returncode}; the last lines of its log:"
                    f"{log_tail(self.log_path)}\nFix what they name (a database URL that does "
                    "not answer, say), or set PREFECT_API_URL to a running server."
                )
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        tail = log_tail(self.log_path)
        self.stop()
        raise StackStartError(
            f"The Prefect server did not start: its API did not answer on {self.url} within "
            f"{timeout:.0f} s; the last lines of its log:{tail}\nThe machine may be overloaded "
            "(a first start migrates a new database, ~30 s on 2 cores): try again, or set "
            "PREFECT_API_URL to a running server."
        )

    @staticmethod
    def drain_clients() -> None:
        """Send this process's pending Prefect logs and events now.

        Prefect ships them from background workers that otherwise flush at interpreter exit and,
        with the server already gone, retry for about a minute before giving up.
        """
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)

    def stop(self) -> None:
        if "prefect" in sys.modules:
            self.drain_clients()
        if self._process is not None:
            stop_process(self._process, timeout=20)
            self._process = None
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
