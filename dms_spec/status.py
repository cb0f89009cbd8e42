"""The status vocabulary of AWS DMS, shared by the flow and localdms.

Values are exactly the strings the DMS API returns (botocore's service model and
the AWS DMS User Guide's task status and table state pages), so code compares against members,
never loose strings.

Example:
    >>> from dms_spec.status import TaskStatus, StopReason
    >>> TaskStatus("stopped") is TaskStatus.STOPPED
    True
    >>> StopReason.FULL_LOAD_ONLY_FINISHED.value
    'Stop Reason FULL_LOAD_ONLY_FINISHED'
"""

from enum import StrEnum


class TaskStatus(StrEnum):
    """ReplicationTask.Status."""

    CREATING = "creating"
    READY = "ready"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    MODIFYING = "modifying"
    DELETING = "deleting"
    MOVING = "moving"
    FAILED_MOVE = "failed-move"
    TESTING = "testing"


class StopReason(StrEnum):
    """ReplicationTask.StopReason values."""

    NORMAL = "Stop Reason NORMAL"
    RECOVERABLE_ERROR = "Stop Reason RECOVERABLE_ERROR"
    FATAL_ERROR = "Stop Reason FATAL_ERROR"
    FULL_LOAD_ONLY_FINISHED = "Stop Reason FULL_LOAD_ONLY_FINISHED"
    STOPPED_AFTER_FULL_LOAD = "Stop Reason STOPPED_AFTER_FULL_LOAD"
    STOPPED_AFTER_CACHED_EVENTS = "Stop Reason STOPPED_AFTER_CACHED_EVENTS"
    STOPPED_AT_SERVER_TIME = "Stop Reason STOPPED_AT_SERVER_TIME"
    STOPPED_AT_COMMIT_TIME = "Stop Reason STOPPED_AT_COMMIT_TIME"


class TableState(StrEnum):
    """TableStatistics.TableState values."""

    DOES_NOT_EXIST = "Table does not exist"
    BEFORE_LOAD = "Before load"
    FULL_LOAD = "Full load"
    COMPLETED = "Table completed"
    CANCELLED = "Table cancelled"
    ERROR = "Table error"
    RELOADING = "Table is being reloaded"


class MigrationType(StrEnum):
    """ReplicationTask.MigrationType values."""

    FULL_LOAD = "full-load"
    CDC = "cdc"
    FULL_LOAD_AND_CDC = "full-load-and-cdc"


class StartType(StrEnum):
    """StartReplicationTaskType values."""

    START_REPLICATION = "start-replication"
    RESUME_PROCESSING = "resume-processing"
    RELOAD_TARGET = "reload-target"


class ConnectionStatus(StrEnum):
    """Connection.Status values (TestConnection / DescribeConnections)."""

    TESTING = "testing"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DELETING = "deleting"


class InstanceStatus(StrEnum):
    """ReplicationInstance.ReplicationInstanceStatus values used here."""

    CREATING = "creating"
    AVAILABLE = "available"
    MODIFYING = "modifying"
    DELETING = "deleting"


FINISHED_FULL_LOAD_REASONS = frozenset(
    {
        StopReason.FULL_LOAD_ONLY_FINISHED,
        StopReason.STOPPED_AFTER_FULL_LOAD,
        StopReason.STOPPED_AFTER_CACHED_EVENTS,
    }
)
"""Stop reasons that mean the full load finished (a success, not an interruption)."""
