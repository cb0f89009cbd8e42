"""The vocabulary of DMS Serverless replications, shared by the flow and localdms.

Read from the clients that poll real DMS: the Terraform AWS provider (``replication_config.go``
and its status constants) and Airflow's ``waiters/dms.json``; the capacity units from the
``ComputeConfig`` reference.

Example:
    >>> task_status("provisioning_capacity"), task_status("created"), task_status("stopped")
    ('starting', 'ready', 'stopped')
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
