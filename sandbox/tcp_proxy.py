"""A TCP forwarder on a free loopback port that can be made to refuse connections for a while:
an S3 (or any server) that goes away and comes back, without the server losing its data.

Bytes pass through unchanged, so a request signed for the forwarder's address (SigV4 signs the
Host header) is checked by the server behind it as it was sent.

Example:
    >>> with TcpProxy(5000) as proxy:  # doctest: +SKIP
    ...     proxy.refuse()   # connection refused, open connections cut
    ...     proxy.accept()   # forwarding again
"""

from __future__ import annotations

import contextlib
import socket
import threading

from sandbox.ports import free_port


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>`` until refused or closed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def accept(self) -> None:
        """Listen and forward (again)."""
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR, as servers
        self._listener = listener
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    def refuse(self) -> None:
        """Stop listening (new connections are refused) and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # close() alone leaves a thread blocked in accept() listening (Linux); shutdown
            # wakes it, and the port refuses from then on.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._open.clear()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # refused or closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def __enter__(self) -> TcpProxy:
        self.accept()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refuse()
