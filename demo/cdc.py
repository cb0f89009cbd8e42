"""``make demo DEMO_ARGS=--cdc``: after a ``full-load-and-cdc`` load, what operating CDC looks
like, offline: a writer keeps changing the source, the CDC watch says healthy, S3 is made
unreachable (a forwarder in front of it refuses connections), the watch says lagging and the
automation's notification arrives at a webhook, S3 comes back, the watch says healthy again.

localdms publishes its metrics every ``METRICS_PERIOD`` seconds here (a minute on AWS), so the
story takes a minute, not an hour.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

METRICS_PERIOD = 2.0
WATCH = {"cdc_metrics_period_seconds": 2, "cdc_watch_window_seconds": 60,
         "max_cdc_latency_seconds": 10}  # fmt: skip
"""The watch's settings for a story told in a minute (defaults: 60 s, 600 s, 300 s)."""
PREFECT_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.engine")


class _Webhook:
    """Where the alert goes: an HTTP server on loopback that prints what it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _writer(source_dsn: str, stop: threading.Event) -> None:
    """A steady writer: a booking's total changed every 50 ms, one transaction each."""
    import psycopg

    with psycopg.connect(source_dsn, autocommit=True) as conn:
        refs = [row[0] for row in conn.execute("SELECT book_ref FROM bookings.bookings LIMIT 1000")]
        changed = 0
        while refs and not stop.is_set():
            conn.execute(
                "UPDATE bookings.bookings SET total_amount = total_amount + 1 WHERE book_ref = %s",
                (refs[changed % len(refs)],),
            )
            changed += 1
            time.sleep(0.05)


async def _until(verdict: str, config: Path, timeout: float = 120) -> Any:
    """Watch every few seconds until the verdict is ``verdict``; print each look."""
    from flows.cdc_watch import dms_cdc_watch
    from flows.exceptions import CdcUnhealthyError

    deadline = time.monotonic() + timeout
    while True:
        try:
            report = await dms_cdc_watch(config_path=str(config), overrides=WATCH)
        except CdcUnhealthyError as exc:
            report = exc.report
        print(f"    watch: {report.verdict} ({report.reason})", flush=True)
        if report.verdict == verdict:
            return report
        if time.monotonic() > deadline:
            raise RuntimeError(f"the watch did not say {verdict} within {timeout:.0f} s")
        await asyncio.sleep(3)


def tell(config: Path, source_dsn: str, s3_down: Callable[[], None], s3_up: Callable[[], None],
         step: Callable[[str, str], None]) -> None:  # fmt: skip
    """The story, after the flow returned with the task capturing changes."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    import automations

    webhook = _Webhook()
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(source_dsn, stop), daemon=True)
    # Each look is a flow run of its own: its Prefect lines would bury the story's (they are in
    # the Prefect UI); the story prints one line per look.
    quiet = {name: logging.getLogger(name).level for name in PREFECT_LOGGERS}
    for name in PREFECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        step(
            "alerts",
            f"Creating the CDC alerts (automations/), notifying a webhook at {webhook.url}",
        )
        CustomWebhookNotificationBlock(
            name="dms-demo", url=webhook.url, method="POST", allow_private_urls=True, headers=None,
            cookies=None,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save("dms-demo-alerts", overwrite=True)  # fmt: skip
        asyncio.run(automations.create("dms-demo-alerts"))
        step("writer", "A writer changes bookings.bookings 20 times a second")
        writer.start()
        time.sleep(3 * METRICS_PERIOD)
        step("watch", "The CDC watch, while changes flow to S3")
        asyncio.run(_until("healthy", config))
        step("S3 down", "S3 made unreachable for localdms: its CDC files cannot be written")
        s3_down()
        asyncio.run(_until("lagging", config))
        deadline = time.monotonic() + 60
        while not webhook.received and time.monotonic() < deadline:
            time.sleep(0.5)
        for alert in webhook.received:
            print(f"    notification: {alert.get('subject')}: {alert.get('body')}", flush=True)
        if not webhook.received:
            print("    notification: none arrived within 60 s", flush=True)
        step("S3 back", "S3 reachable again: capture restarts from its checkpoint")
        s3_up()
        asyncio.run(_until("healthy", config))
    finally:
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        stop.set()
        if writer.is_alive():
            writer.join(5)
        webhook.server.shutdown()
