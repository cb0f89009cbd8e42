"""Which replication-task statuses allow which operation, and how DMS words a failure.

One table for both sides: localdms refuses an operation in any other status with DMS's
InvalidResourceStateFault, and the flow decides with the same sets whether to wait, attach, start
or refuse (``flows/decisions.py``). From the AWS DMS User Guide ("Task status") and the API
reference's InvalidResourceStateFault cases.

Example:
    >>> TaskStatus.STOPPED in STARTABLE, TaskStatus.RUNNING in STARTABLE
    (True, False)
    >>> last_error("No tables were found.", StopReason.FATAL_ERROR)
    'Last Error  No tables were found. Stop Reason FATAL_ERROR Error Level FATAL'
"""

from __future__ import annotations

from dms_spec.status import StopReason, TaskStatus

STARTABLE = frozenset({TaskStatus.READY, TaskStatus.STOPPED, TaskStatus.FAILED})
"""StartReplicationTask, and ModifyReplicationTask, are accepted in these statuses only."""
MODIFIABLE = STARTABLE
MOVABLE = STARTABLE
"""A task can move to another instance only when it is not running (MoveReplicationTask)."""
ACTIVE = frozenset({TaskStatus.STARTING, TaskStatus.RUNNING})
"""A run is under way: StopReplicationTask is accepted; a second run is not."""
RUNNING_STATES = frozenset({*ACTIVE, TaskStatus.STOPPING})
"""A run has not ended yet."""
SETTLING = frozenset(
    {
        TaskStatus.CREATING,
        TaskStatus.MODIFYING,
        TaskStatus.MOVING,
        TaskStatus.STOPPING,
        TaskStatus.TESTING,
    }
)
"""Short-lived statuses that end by themselves in a settled one (ready, stopped, failed)."""
UNDELETABLE = frozenset(
    {
        *RUNNING_STATES,
        TaskStatus.CREATING,
        TaskStatus.MODIFYING,
        TaskStatus.MOVING,
        TaskStatus.DELETING,
        TaskStatus.TESTING,
    }
)
"""DeleteReplicationTask is refused in these statuses."""
RELOADABLE = frozenset({TaskStatus.RUNNING})
"""ReloadTables is accepted only while the task runs."""

_LEVELS = {
    StopReason.FATAL_ERROR: "FATAL",
    StopReason.RECOVERABLE_ERROR: "RECOVERABLE",
}


def last_error(text: str, reason: StopReason) -> str:
    """A LastFailureMessage in DMS's form: ``Last Error  <text> Stop Reason <R> Error Level <L>``."""
    return f"Last Error  {text} {reason} Error Level {_LEVELS.get(reason, 'ERROR')}"
