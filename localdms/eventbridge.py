"""DMS's events on Amazon EventBridge: every event localdms records (DescribeEvents) is also put
on the default event bus of the standard AWS configuration (``AWS_ENDPOINT_URL_EVENTBRIDGE``;
moto's server answers it and routes to the rules' SQS targets), shaped as DMS sends it
(``dms_spec.events.eventbridge_event``). A rule matching ``source: aws.dms`` and
``detail.eventType`` or ``detail.detailMessage`` (``Stop Reason FULL_LOAD_ONLY_FINISHED``)
fires on localdms as on AWS.

Events are sent from a thread of their own, in order, so an operation never waits on
EventBridge; one that cannot be sent is logged and dropped, as a notification is.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_EVENTBRIDGE"


class EventBridgeSender:
    """Puts events on the default bus, one PutEvents call per event, from a daemon thread.

    Args:
        client_factory: returns a boto3 EventBridge (``events``) client.
    """

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self.client_factory = client_factory
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._main, name="localdms-events", daemon=True)
        self._thread.start()

    def send(self, entry: dict[str, Any]) -> None:
        """Queue one PutEvents entry (returns at once)."""
        self._queue.put(entry)

    def close(self, timeout: float = 10) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _main(self) -> None:
        client = self.client_factory()
        while (entry := self._queue.get()) is not None:
            try:
                answer = client.put_events(Entries=[entry])
                if answer.get("FailedEntryCount"):
                    log.warning("EventBridge refused a DMS event: %s", answer["Entries"])
            except Exception:  # the thread's top frame: logged, never raised
                log.exception("sending a DMS event to EventBridge failed")
