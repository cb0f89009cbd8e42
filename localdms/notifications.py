"""Where DMS's events go besides DescribeEvents: Amazon EventBridge and Amazon SNS.

- **EventBridge**: every event localdms records, and each status of a DMS Serverless
  replication, is put on the default event bus of the standard AWS configuration
  (``AWS_ENDPOINT_URL_EVENTBRIDGE``; moto's server answers it and routes to the rules' SQS
  targets), shaped as DMS sends it (``dms_spec.events.eventbridge_event``). A rule matching
  ``source: aws.dms`` and ``detail.eventType`` or ``detail.detailMessage`` (``Stop Reason
  FULL_LOAD_ONLY_FINISHED``) fires on localdms as on AWS.
- **SNS**: an event matching an enabled event subscription (CreateEventSubscription) is
  published to the subscription's topic (``AWS_ENDPOINT_URL_SNS``) as DMS publishes it
  (``dms_spec.events.sns_notification``: subject ``DMS Notification Message``, a JSON message
  with ``Event Source``, ``Event Time``, ``Identifier Link``, ``Event ID``, ``Event Message``).

Each channel is on only when its endpoint variable is set (localdms never sends to AWS itself).
Notifications are sent from one thread, in order, so an operation never waits on them; one
that cannot be sent is logged and dropped, as DMS's notifications are best effort.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

EVENTBRIDGE_VARIABLE = "AWS_ENDPOINT_URL_EVENTBRIDGE"
SNS_VARIABLE = "AWS_ENDPOINT_URL_SNS"


@dataclass(frozen=True)
class _Publication:
    topic_arn: str
    subject: str
    message: str


class NotificationSender:
    """Puts events on EventBridge's default bus (one PutEvents call each) and publishes SNS
    notifications, from a daemon thread.

    Args:
        events_factory: returns a boto3 EventBridge (``events``) client; None: no EventBridge.
        sns_factory: returns a boto3 SNS client; None: no SNS notifications.
    """

    def __init__(
        self,
        events_factory: Callable[[], Any] | None,
        sns_factory: Callable[[], Any] | None,
    ) -> None:
        self.events_factory = events_factory
        self.sns_factory = sns_factory
        self._queue: queue.Queue[dict[str, Any] | _Publication | None] = queue.Queue()
        self._thread = threading.Thread(target=self._main, name="localdms-events", daemon=True)
        self._thread.start()

    @property
    def publishes_to_sns(self) -> bool:
        return self.sns_factory is not None

    def put_event(self, entry: dict[str, Any]) -> None:
        """Queue one PutEvents entry (returns at once; nothing when EventBridge is off)."""
        if self.events_factory is not None:
            self._queue.put(entry)

    def publish(self, topic_arn: str, subject: str, message: str) -> None:
        """Queue one SNS Publish (returns at once; nothing when SNS is off)."""
        if self.sns_factory is not None:
            self._queue.put(_Publication(topic_arn, subject, message))

    def sns_client(self) -> Any:
        """A new SNS client (None when SNS is off), for checks made outside the thread."""
        return self.sns_factory() if self.sns_factory is not None else None

    def close(self, timeout: float = 10) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _main(self) -> None:
        # Only items of a channel that is on are queued (``put_event``, ``publish``).
        events: Any = self.events_factory() if self.events_factory is not None else None
        sns: Any = self.sns_factory() if self.sns_factory is not None else None
        while (item := self._queue.get()) is not None:
            try:
                if isinstance(item, _Publication):
                    sns.publish(TopicArn=item.topic_arn, Subject=item.subject,
                                Message=item.message)  # fmt: skip
                    continue
                answer = events.put_events(Entries=[item])
                if answer.get("FailedEntryCount"):
                    log.warning("EventBridge refused a DMS event: %s", answer["Entries"])
            except Exception:  # the thread's top frame: logged, never raised
                log.exception("sending a DMS event notification failed")
