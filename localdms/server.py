"""The localdms HTTP server: AWS JSON 1.1 over ``POST /``.

Requests carry ``X-Amz-Target: AmazonDMSv20160101.<Operation>``; answers are JSON with an
``x-amzn-RequestId`` header, and faults are HTTP 400 ``{"__type": code, "message": ...}``.
Signatures are not checked: any credentials are accepted (localdms is a local tool with no
authentication; it binds to 127.0.0.1 unless told otherwise). ``GET /health`` answers ``ok``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import botocore.config

from localdms.aws_session import aws_session
from localdms.backend import DmsBackend
from localdms.exceptions import DmsFault, SerializationException
from localdms.faults import FaultInjector
from localdms.metrics import DEFAULT_PERIOD_SECONDS, MetricsPublisher
from localdms.metrics import ENDPOINT_VARIABLE as METRICS_ENDPOINT_VARIABLE
from localdms.metrics import NAMESPACE as METRICS_NAMESPACE
from localdms.notifications import EVENTBRIDGE_VARIABLE, SNS_VARIABLE, NotificationSender
from localdms.responses import dispatch
from localdms.store import Store

log = logging.getLogger(__name__)


def default_s3_client() -> Any:
    """An S3 client from the standard AWS configuration (``AWS_ENDPOINT_URL_S3`` included).

    SigV4 throughout, presigned URLs too (botocore would presign with SigV2 here, which AWS
    regions opened since 2014 refuse and moto's server fails on).
    """
    return aws_session().client(
        "s3",
        config=botocore.config.Config(
            max_pool_connections=32,
            retries={"mode": "standard", "max_attempts": 5},
            signature_version="s3v4",
        ),
    )


class _Handler(BaseHTTPRequestHandler):
    server: LocalDmsServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    """TCP_NODELAY: a response goes out as headers, then body. With Nagle's algorithm the body
    waited for the client to acknowledge the headers, which it delays by up to 40 ms, so every
    call on a kept-alive connection took ~45 ms (DescribeReplicationTasks: 45 ms, now ~3 ms)."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"__type": "NotFound", "message": "POST DMS API requests to /."})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        injected = self.server.faults.pick()
        if injected is not None:
            status, code, message = injected
            log.info("%s -> injected %s", target, code)
            self._send(status, {"__type": code, "message": message})
            return
        try:
            try:
                request = json.loads(raw or b"{}")
            except ValueError as exc:
                raise SerializationException(f"The request body is not valid JSON: {exc}") from exc
            body = dispatch(self.server.backend, target, request)
        except DmsFault as fault:
            log.info("%s -> %s: %s", target, fault.code, fault.message)
            self._send(fault.status_code, {"__type": fault.code, "message": fault.message})
            return
        except Exception as exc:  # the request's top frame: answer, keep serving
            log.exception("%s failed", target)
            self._send(500, {"__type": "InternalFailure", "message": f"localdms error: {exc!r}"})
            return
        self._send(200, body)


class LocalDmsServer(ThreadingHTTPServer):
    """A localdms server bound to ``host:port`` (port 0 picks a free one).

    Example:
        >>> server = LocalDmsServer(("127.0.0.1", 0), DmsBackend(Store(None), default_s3_client))
        >>> server.url.startswith("http://127.0.0.1:")
        True
        >>> server.server_close()
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        backend: DmsBackend,
        faults: FaultInjector | None = None,
        metrics: MetricsPublisher | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.faults = faults or FaultInjector()
        self.metrics = metrics
        """Publishes CloudWatch metrics while the server serves (``localdms/metrics.py``)."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        if self.metrics is not None:
            self.metrics.start()
        super().serve_forever(poll_interval)

    def server_close(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        if self.backend.notifier is not None:
            self.backend.notifier.close()
        super().server_close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    state_dir: Path | None = None,
    transition_seconds: float = 1.0,
    region: str = "us-east-1",
    faults: str | None = None,
    min_running_seconds: float | None = None,
    metrics_period: float = DEFAULT_PERIOD_SECONDS,
) -> LocalDmsServer:
    """Build a server with its backend (state restored from ``state_dir`` if present).

    Args:
        faults: a fault-injection spec (see ``localdms.faults``); off when None or empty.
        min_running_seconds: how long a task shows ``running`` at least (``transition_seconds``
            when None).
        metrics_period: seconds between two CloudWatch publications, when
            ``AWS_ENDPOINT_URL_CLOUDWATCH`` names a CloudWatch (else none are published).
    """
    notifier = _notifier(region)
    backend = DmsBackend(
        Store(state_dir), default_s3_client, region=region, transition_seconds=transition_seconds,
        min_running_seconds=min_running_seconds, notifier=notifier,
    )  # fmt: skip
    metrics = None
    if os.environ.get(METRICS_ENDPOINT_VARIABLE):
        log.info("publishing CloudWatch metrics (%s) to %s every %s s", METRICS_NAMESPACE,
                 os.environ[METRICS_ENDPOINT_VARIABLE], metrics_period)  # fmt: skip
        metrics = MetricsPublisher(
            backend, lambda: aws_session().client("cloudwatch", region_name=region),
            metrics_period, state_dir,
        )  # fmt: skip
    else:
        log.info("%s is not set: no CloudWatch metrics are published", METRICS_ENDPOINT_VARIABLE)
    return LocalDmsServer((host, port), backend, FaultInjector.parse(faults), metrics)


def _notifier(region: str) -> NotificationSender | None:
    """Where events go besides DescribeEvents: EventBridge and SNS, each when its endpoint
    variable is set (said once, at start)."""
    channels: dict[str, Callable[[], Any] | None] = {}
    for variable, service in ((EVENTBRIDGE_VARIABLE, "events"), (SNS_VARIABLE, "sns")):
        if os.environ.get(variable):
            log.info("sending DMS events to %s at %s", service, os.environ[variable])
            channels[service] = functools.partial(_client, service, region)
        else:
            log.info("%s is not set: no DMS events are sent to %s", variable, service)
            channels[service] = None
    if not any(channels.values()):
        return None
    return NotificationSender(channels["events"], channels["sns"])


def _client(service: str, region: str) -> Any:
    return aws_session().client(service, region_name=region)  # type: ignore[call-overload]


class ThreadedLocalDms:
    """A localdms server in a background thread, for tests and embedding.

    Example:
        >>> with ThreadedLocalDms(transition_seconds=0.1) as dms:
        ...     dms.url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(self, **kwargs: Any) -> None:
        self.server = make_server(**kwargs)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def backend(self) -> DmsBackend:
        return self.server.backend

    def start(self) -> ThreadedLocalDms:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for run in list(self.backend.runs.values()):
            run.stop()
            run.join(10)

    def __enter__(self) -> ThreadedLocalDms:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
