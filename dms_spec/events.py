"""The DMS events of replication instances and tasks, as the AWS DMS User Guide lists them
(CHAP_Events, "AWS DMS event categories and event messages for SNS notifications").

DescribeEvents returns an event's source, category, message and date; its DMS event id is not a
member of the API's ``Event`` shape (it is part of SNS and EventBridge notifications), so
localdms logs it beside the event and this table keeps it.

Example:
    >>> event = task_event("running", "stopped")
    >>> event.event_id, event.category, event.message
    ('DMS-EVENT-0079', 'state change', 'The replication task has stopped.')
    >>> instance_event("creating", "available").event_id
    'DMS-EVENT-0005'
"""

from __future__ import annotations

from dataclasses import dataclass

REPLICATION_INSTANCE = "replication-instance"
REPLICATION_TASK = "replication-task"


@dataclass(frozen=True)
class EventKind:
    """One event of the guide's tables."""

    event_id: str
    source_type: str
    category: str
    """Lower case, as DescribeEventCategories and EventCategories filters spell it."""
    message: str


def _kind(event_id: str, source_type: str, category: str, message: str) -> EventKind:
    return EventKind(f"DMS-EVENT-{event_id}", source_type, category, message)


INSTANCE_CREATING = _kind("0067", REPLICATION_INSTANCE, "creation",
                          "A replication instance is being created.")  # fmt: skip
INSTANCE_CREATED = _kind("0005", REPLICATION_INSTANCE, "creation",
                         "A replication instance is created.")  # fmt: skip
INSTANCE_DELETING = _kind("0066", REPLICATION_INSTANCE, "deletion",
                          "The replication instance is being deleted.")  # fmt: skip
INSTANCE_DELETED = _kind("0003", REPLICATION_INSTANCE, "deletion",
                         "The replication instance is deleted.")  # fmt: skip
TASK_CREATED = _kind("0074", REPLICATION_TASK, "creation", "The replication task is created.")
TASK_STARTED = _kind("0069", REPLICATION_TASK, "state change",
                     "The replication task has started.")  # fmt: skip
TASK_RELOAD_REQUESTED = _kind("0081", REPLICATION_TASK, "state change",
                              "A reload of table details has been requested.")  # fmt: skip
TASK_STOPPED = _kind("0079", REPLICATION_TASK, "state change",
                     "The replication task has stopped.")  # fmt: skip
TASK_FAILED = _kind("0078", REPLICATION_TASK, "failure", "The replication task has failed.")
TASK_MODIFIED = _kind("0080", REPLICATION_TASK, "configuration change",
                      "The replication task is modified.")  # fmt: skip
TASK_DELETED = _kind("0073", REPLICATION_TASK, "deletion", "The replication task is deleted.")

ALL = (
    INSTANCE_CREATING, INSTANCE_CREATED, INSTANCE_DELETING, INSTANCE_DELETED,
    TASK_CREATED, TASK_STARTED, TASK_RELOAD_REQUESTED, TASK_STOPPED, TASK_FAILED,
    TASK_MODIFIED, TASK_DELETED,
)  # fmt: skip
"""The events localdms emits. The guide lists more (configuration changes of an instance,
failover, storage, maintenance), which nothing here causes."""

CATEGORIES = {
    REPLICATION_INSTANCE: (
        "configuration change", "creation", "deletion", "maintenance", "low storage",
        "failover", "failure",
    ),
    REPLICATION_TASK: ("state change", "failure", "configuration change", "deletion", "creation"),
}  # fmt: skip
"""DescribeEventCategories: every category of the guide's tables, per source type."""

_TASK_TRANSITIONS = {
    (None, "creating"): TASK_CREATED,
    ("modifying", "ready"): TASK_MODIFIED,
    ("modifying", "stopped"): TASK_MODIFIED,
    ("modifying", "failed"): TASK_MODIFIED,
    ("running", "stopped"): TASK_STOPPED,
    ("stopping", "stopped"): TASK_STOPPED,
    ("starting", "stopped"): TASK_STOPPED,
    ("deleting", None): TASK_DELETED,
}


def task_event(old: str | None, new: str | None) -> EventKind | None:
    """The event of a task's status change (None: the task is new, or gone), if any.

    A start is ``TASK_STARTED`` whatever the task was before; a failure ``TASK_FAILED``.
    """
    if new == "starting" and old != "starting":
        return TASK_STARTED
    if new == "failed" and old not in ("failed", "modifying"):
        return TASK_FAILED
    return _TASK_TRANSITIONS.get((old, new))


def instance_event(old: str | None, new: str | None) -> EventKind | None:
    """The event of a replication instance's status change (None: new, or gone), if any."""
    if new == "creating" and old is None:
        return INSTANCE_CREATING
    if (old, new) == ("creating", "available"):
        return INSTANCE_CREATED
    if new == "deleting" and old != "deleting":
        return INSTANCE_DELETING
    if (old, new) == ("deleting", None):
        return INSTANCE_DELETED
    return None


# ------------------------------------------------------------------ EventBridge
DETAIL_TYPES = {
    REPLICATION_TASK: "DMS Replication Task State Change",
    REPLICATION_INSTANCE: "DMS Replication Instance State Change",
}
"""The ``detail-type`` of an event on EventBridge: the task's is the guide's example
(CHAP_EventBridge); the instance's follows it (the guide shows none)."""

_EVENT_TYPES = {
    "0069": "REPLICATION_TASK_STARTED", "0079": "REPLICATION_TASK_STOPPED",
    "0078": "REPLICATION_TASK_FAILED", "0074": "REPLICATION_TASK_CREATED",
    "0073": "REPLICATION_TASK_DELETED", "0080": "REPLICATION_TASK_MODIFIED",
    "0081": "REPLICATION_TASK_RELOAD_TABLES_REQUESTED",
    "0067": "REPLICATION_INSTANCE_CREATING", "0005": "REPLICATION_INSTANCE_CREATED",
    "0066": "REPLICATION_INSTANCE_DELETING", "0003": "REPLICATION_INSTANCE_DELETED",
}  # fmt: skip
"""``detail.eventType``: ``REPLICATION_TASK_STARTED`` is the guide's example and
``REPLICATION_TASK_STOPPED`` what rules in the wild match; the others follow their pattern."""


def eventbridge_event(
    kind: EventKind, arn: str, identifier: str, detail_message: str, region: str
) -> dict[str, str | list[str]]:
    """The event DMS sends to EventBridge's default bus for ``kind`` (the guide's example:
    ``source`` aws.dms, the resource's ARN in ``resources``, and a ``detail`` of type, category,
    eventType, eventId, resourceLink and detailMessage), as PutEvents takes it (EventBridge adds
    the id, account, region and time).

    Example:
        >>> entry = eventbridge_event(TASK_STOPPED, "arn:aws:dms:us-east-1:1:task:T", "t",
        ...     "Stop Reason FULL_LOAD_ONLY_FINISHED", "us-east-1")
        >>> entry["DetailType"], entry["Source"], entry["Resources"]
        ('DMS Replication Task State Change', 'aws.dms', ['arn:aws:dms:us-east-1:1:task:T'])
        >>> import json; detail = json.loads(str(entry["Detail"]))
        >>> detail["eventType"], detail["eventId"], detail["category"], detail["detailMessage"]
        ('REPLICATION_TASK_STOPPED', 'DMS-EVENT-0079', 'StateChange', 'Stop Reason FULL_LOAD_ONLY_FINISHED')
    """
    import json

    number = kind.event_id.rsplit("-", 1)[-1]
    page = "taskDetails" if kind.source_type == REPLICATION_TASK else "instanceDetails"
    detail = {
        "type": kind.source_type.upper().replace("-", "_"),
        "category": kind.category.title().replace(" ", ""),
        "eventType": _EVENT_TYPES.get(number, kind.message),
        "eventId": kind.event_id,
        "resourceLink": f"https://console.aws.amazon.com/dms/v2/home?region={region}#{page}/"
        f"{identifier}",
        "detailMessage": detail_message,
    }
    return {
        "Source": "aws.dms",
        "DetailType": DETAIL_TYPES[kind.source_type],
        "Resources": [arn],
        "Detail": json.dumps(detail),
    }


# ------------------------------------------------------------------ SNS
SNS_SUBJECT = "DMS Notification Message"
"""The subject of every notification DMS publishes to an event subscription's topic."""

_SNS_MESSAGES = {
    "0069": "Replication task has started.",
    "0079": "Replication task has stopped.",
    "0078": "Replication task has failed.",
}
"""``Event Message`` where notifications in the wild show DMS's own words (they differ from the
guide's table: "Replication task has stopped.", not "The replication task has stopped."); the
other events use the guide's message."""

_CONSOLE_PAGES = {REPLICATION_TASK: "tasks", REPLICATION_INSTANCE: "replication-instances"}


def sns_notification(
    kind: EventKind, identifier: str, detail: str | None, region: str, when: float
) -> str:
    """The message DMS publishes to an event subscription's SNS topic, as consumers parse it
    (the terraform-aws-notify-slack module's fixtures are real notifications): a JSON object
    of ``Event Source``, ``Event Time`` (UTC, milliseconds), ``Identifier Link`` (the console
    link, then ``SourceId:``), ``Event ID`` (the guide's anchor, with DMS's trailing space) and
    ``Event Message``, where a stop adds its StopReason (``Stop Reason <reason>.``) and a failure
    ``Reason:`` and the task's last error on a line of its own.

    Example:
        >>> import json
        >>> message = json.loads(sns_notification(TASK_STOPPED, "hello-world",
        ...     "Stop Reason FULL_LOAD_ONLY_FINISHED", "eu-west-2", 1549986324.091))
        >>> message["Event Source"], message["Event Time"], message["Event Message"]
        ('replication-task', '2019-02-12 15:45:24.091', 'Replication task has stopped. Stop Reason FULL_LOAD_ONLY_FINISHED.')
        >>> message["Event ID"]
        'http://docs.aws.amazon.com/dms/latest/userguide/CHAP_Events.html#DMS-EVENT-0079 '
        >>> message["Identifier Link"].splitlines()[1]
        'SourceId: hello-world '
    """
    import json
    from datetime import UTC, datetime

    number = kind.event_id.rsplit("-", 1)[-1]
    text = _SNS_MESSAGES.get(number, kind.message)
    if detail and kind is TASK_STOPPED:
        text = f"{text} {detail}."
    elif detail and kind is TASK_FAILED:
        text = f"{text}\nReason: {detail}"
    elif detail:
        text = f"{text} {detail}"
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    page = _CONSOLE_PAGES[kind.source_type]
    return json.dumps(
        {
            "Event Source": kind.source_type,
            "Event Time": stamp,
            "Identifier Link": f"https://console.aws.amazon.com/dms/home?region={region}#{page}:"
            f"ids={identifier}\nSourceId: {identifier} ",
            "Event ID": f"http://docs.aws.amazon.com/dms/latest/userguide/CHAP_Events.html#"
            f"{kind.event_id} ",
            "Event Message": text,
        }
    )


def subscription_categories(source_type: str | None) -> tuple[str, ...]:
    """The categories an event subscription may name for ``source_type`` (every one when no
    source type is given)."""
    if source_type is None:
        return tuple(dict.fromkeys(c for group in CATEGORIES.values() for c in group))
    return CATEGORIES[source_type]


# ------------------------------------------------------------------ Serverless
REPLICATION_CONFIG = "replication-config"
"""A DMS Serverless replication's events: on EventBridge only (DescribeEvents and event
subscriptions take replication instances and tasks)."""
REPLICATION_DETAIL_TYPE = "DMS Replication State Change"

_REPLICATION_SEQUENCE = (
    "initializing", "preparing_metadata_resources", "testing_connection", "fetching_metadata",
    "calculating_capacity", "provisioning_capacity", "replication_starting", "running",
)  # fmt: skip


def replication_statuses_passed(old: str | None, new: str) -> list[str]:
    """The statuses a replication went through from ``old`` to ``new``, each one event: a start
    seen late still reports each phase it passed, in order.

    Example:
        >>> replication_statuses_passed("created", "initializing")
        ['initializing']
        >>> replication_statuses_passed("fetching_metadata", "replication_starting")
        ['calculating_capacity', 'provisioning_capacity', 'replication_starting']
        >>> replication_statuses_passed("running", "stopped")
        ['stopped']
    """
    sequence = _REPLICATION_SEQUENCE
    if new in sequence:
        begin = sequence.index(old) + 1 if old in sequence else 0
        if begin <= sequence.index(new):
            return list(sequence[begin : sequence.index(new) + 1])
    return [new]


def replication_eventbridge_event(
    arn: str, status: str, detail: str | None
) -> dict[str, str | list[str]]:
    """The event a DMS Serverless replication sends to EventBridge when its status changes, as
    observed on AWS (the guide shows none): ``detail-type`` ``DMS Replication State Change``, the
    config's ARN in ``resources``, a ``detail`` of type ``REPLICATION_CONFIG``, category
    ``StateChange``, ``eventType`` ``REPLICATION_`` and the status (``REPLICATION_INITIALIZING``,
    ``REPLICATION_FAILED``), and ``detailMessage`` "Replication with resource id, '<id>', is
    initializing." (a stop or failure adds its reason).

    Example:
        >>> import json
        >>> entry = replication_eventbridge_event(
        ...     "arn:aws:dms:us-east-1:1:replication-config:XYZ", "initializing", None)
        >>> entry["DetailType"], json.loads(str(entry["Detail"]))["eventType"]
        ('DMS Replication State Change', 'REPLICATION_INITIALIZING')
        >>> json.loads(str(entry["Detail"]))["detailMessage"]
        "Replication with resource id, 'XYZ', is initializing."
    """
    import json

    resource_id = arn.rsplit(":", 1)[-1]
    words = status.replace("_", " ")
    verb = {"stopped": "has stopped.", "failed": "has failed."}.get(status, f"is {words}.")
    message = f"Replication with resource id, '{resource_id}', {verb}"
    detail_body = {
        "type": "REPLICATION_CONFIG",
        "category": "StateChange",
        "eventType": f"REPLICATION_{status.upper()}",
        "detailMessage": f"{message} {detail}" if detail else message,
    }
    return {
        "Source": "aws.dms",
        "DetailType": REPLICATION_DETAIL_TYPE,
        "Resources": [arn],
        "Detail": json.dumps(detail_body),
    }
