"""The DMS operations localdms answers, mapped to backend methods (routing is data).

Each handler takes the decoded JSON request and returns the JSON response body; the backend does
the checking and the work. Any other DMS operation is answered with ``InvalidAction`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localdms.backend import DmsBackend
from localdms.exceptions import InvalidAction

TARGET_PREFIX = "AmazonDMSv20160101."

OPERATIONS: dict[str, Callable[[DmsBackend, dict[str, Any]], dict[str, Any]]] = {
    "CreateEndpoint": DmsBackend.create_endpoint,
    "DescribeEndpoints": DmsBackend.describe_endpoints,
    "DeleteEndpoint": DmsBackend.delete_endpoint,
    "TestConnection": DmsBackend.test_connection,
    "DescribeConnections": DmsBackend.describe_connections,
    "CreateReplicationInstance": DmsBackend.create_replication_instance,
    "DescribeReplicationInstances": DmsBackend.describe_replication_instances,
    "DeleteReplicationInstance": DmsBackend.delete_replication_instance,
    "CreateReplicationTask": DmsBackend.create_replication_task,
    "ModifyReplicationTask": DmsBackend.modify_replication_task,
    "DescribeReplicationTasks": DmsBackend.describe_replication_tasks,
    "StartReplicationTask": DmsBackend.start_replication_task,
    "StopReplicationTask": DmsBackend.stop_replication_task,
    "DeleteReplicationTask": DmsBackend.delete_replication_task,
    "DescribeTableStatistics": DmsBackend.describe_table_statistics,
    "ReloadTables": DmsBackend.reload_tables,
    "AddTagsToResource": DmsBackend.add_tags_to_resource,
    "RemoveTagsFromResource": DmsBackend.remove_tags_from_resource,
    "ListTagsForResource": DmsBackend.list_tags_for_resource,
}


def dispatch(backend: DmsBackend, target: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run the operation named by the ``X-Amz-Target`` header.

    Raises:
        InvalidAction: the header names no operation, or one localdms does not implement.
        DmsFault: whatever the operation raises.
    """
    operation = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise InvalidAction(
            f"The DMS operation {operation or target or '(none)'} is not supported by localdms. "
            f"Supported operations: {', '.join(sorted(OPERATIONS))}."
        )
    return handler(backend, request)
