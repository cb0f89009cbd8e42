"""The vocabulary of DMS Serverless replications, shared by the flow and localdms.

Read from the clients that poll real DMS: the Terraform AWS provider (``replication_config.go``
and its status constants) and Airflow's ``waiters/dms.json``; the capacity units from the
``ComputeConfig`` reference.

The two directions of the mapping between a replication's statuses and a task's are both here:
``task_status`` (the flow reads a replication as it reads a task) and ``replication_status``
(localdms runs a replication as a task and reports it as a replication).

Example:
    >>> task_status("provisioning_capacity"), task_status("created"), task_status("stopped")
    ('starting', 'ready', 'stopped')
    >>> replication_status("starting", phase=5), replication_status("ready")
    ('provisioning_capacity', 'created')
    >>> all(replication_status(task_status(s), STARTING_PHASES.index(s) if s in STARTING_PHASES
    ...     else 0) == s for s in (*STARTING_PHASES, *REPLICATION_STATUSES))
    True
"""

from __future__ import annotations

STARTING_PHASES = (
    "initializing",
    "preparing_metadata_resources",
    "testing_connection",
    "fetching_metadata",
    "calculating_capacity",
    "provisioning_capacity",
    "replication_starting",
)
"""The statuses of a starting replication, in order (the guide's state diagram)."""
CREATED = "created"
"""A replication config's replication before its first start."""
REPLICATION_STATUSES = (CREATED, "running", "stopping", "stopped", "failed", "deleting")
"""A replication's statuses outside its start (which shows ``STARTING_PHASES``)."""
SETTLED = frozenset({CREATED, "stopped", "failed"})
"""Where a replication may be started, modified or deleted."""
CAPACITY_UNITS = (1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384)
"""The DMS capacity unit (DCU) values ComputeConfig's Min/MaxCapacityUnits take."""


def task_status(replication_status: str) -> str:
    """The replication task status a replication's status corresponds to: every starting phase is
    ``starting``, ``created`` is ``ready``; the others (running, stopping, stopped, failed,
    deleting) are the same words."""
    if replication_status in STARTING_PHASES:
        return "starting"
    return "ready" if replication_status == CREATED else replication_status


def replication_status(task_status: str, phase: int = 0) -> str:
    """The other way: the replication status of a run in ``task_status``; a starting run shows
    the ``phase``-th of ``STARTING_PHASES`` (the last one once past it)."""
    if task_status == "starting":
        return STARTING_PHASES[min(max(phase, 0), len(STARTING_PHASES) - 1)]
    return CREATED if task_status == "ready" else task_status
