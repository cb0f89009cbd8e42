"""Why a local server of the stack could not start, worded for the person who started it.

The demo, ``make serve``, the benchmarks and the tests start throwaway servers (PostgreSQL,
moto's S3, localdms, Prefect). When one cannot start for a reason the user can fix (the server
user cannot read the binaries, a port is taken, an S3 endpoint does not answer), it raises
``StackStartError`` with what happened and what to do; ``make demo`` and ``make serve`` print that
message alone, without a traceback. Anything else is a bug and keeps its traceback.

Example:
    >>> error = StackStartError("moto's S3 server did not start: port 5000 is taken. Stop ...")
    >>> isinstance(error, RuntimeError), str(error)
    (True, "moto's S3 server did not start: port 5000 is taken. Stop ...")
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable
from pathlib import Path


class StackStartError(RuntimeError):
    """A local server could not start; the message says which, why, and what to do."""


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on (or holds) ``host:port``.

    Example:
        >>> with socket.socket() as held:
        ...     held.bind(("127.0.0.1", 0)); held.listen()
        ...     port_taken("127.0.0.1", held.getsockname()[1])
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers bind (SO_REUSEADDR): a port whose last server just stopped, with its
        # connections in TIME_WAIT, is free to them, and so is not taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def refuse_taken_port(server: str, port: int, host: str = "127.0.0.1", instead: str = "") -> None:
    """Raise ``StackStartError`` naming the port when something already holds it.

    Args:
        server: what was to start there (``"moto's S3 server"``).
        instead: what else the user can do (default: give another port).

    Example:
        >>> with socket.socket() as held:
        ...     held.bind(("127.0.0.1", 0)); held.listen()
        ...     refuse_taken_port("The Prefect server", held.getsockname()[1])
        Traceback (most recent call last):
        sandbox.errors.StackStartError: The Prefect server did not start: port ... is taken. ...
    """
    if port_taken(host, port):
        raise StackStartError(
            f"{server} did not start: port {port} on {host} is taken. Stop what listens there "
            f"(`ss -ltnp | grep :{port}`) {instead or 'or give another port'}."
        )


def exit_code_of(run: Callable[[], int]) -> int:
    """``run()``'s exit code, or 2 with its message alone on standard error (no traceback) when
    a server it starts cannot start: how ``make demo`` and ``make serve`` end.

    Example:
        >>> import contextlib, io
        >>> def fails() -> int:
        ...     raise StackStartError("moto's S3 server did not start: ... Try again.")
        >>> with contextlib.redirect_stderr(io.StringIO()) as said:
        ...     code = exit_code_of(fails)
        >>> code, said.getvalue().strip()
        (2, "error: moto's S3 server did not start: ... Try again.")
    """
    try:
        return run()
    except StackStartError as exc:  # what happened, and what to do; the servers are stopped
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2


def last_lines(text: str, lines: int = 8) -> str:
    """The last ``lines`` lines of a server's output, indented, for a message: blank lines and
    the frames of a traceback left out (its last line, the error, is kept).

    Example:
        >>> output = "starting\\nTraceback (most recent call last):\\n  File \\"x.py\\"\\nOSError: no\\n"
        >>> last_lines(output)
        '\\n    starting\\n    OSError: no'
    """
    kept = [
        line
        for line in text.splitlines()
        if line.strip() and not line[0].isspace() and "Traceback (most recent" not in line
    ]
    return "".join(f"\n    {line}" for line in kept[-lines:])


def log_tail(path: Path, lines: int = 8) -> str:
    """``last_lines`` of a log file (empty when there is none yet)."""
    try:
        return last_lines(path.read_text(errors="replace"), lines)
    except OSError:
        return ""
