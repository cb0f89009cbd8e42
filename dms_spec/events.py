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
