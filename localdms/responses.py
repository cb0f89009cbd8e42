"""The response layer: the DMS operations localdms answers, checked against the botocore model.

A request is checked against the operation's input shape in the botocore DMS model (required
members, types, no unknown members) before the backend sees it, then its members become the
keyword arguments of the backend method of the same name (``StartReplicationTask`` →
``start_replication_task(replication_task_arn=..., start_replication_task_type=...)``). Members an
operation accepts without acting on are marked with ``backend.base.ignores`` and dropped here, with
a log line; any other member the operation does not take is refused. The backend guards and
returns the response body; an operation localdms does not implement is answered with
``InvalidAction`` naming it.

Example:
    >>> arguments("DescribeEndpoints", {"MaxRecords": 20, "Marker": None})
    {'max_records': 20}
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore import xform_name
from botocore.model import ListShape, OperationModel, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator

from localdms.backend import DmsBackend
from localdms.exceptions import InvalidAction, InvalidParameterValueException

log = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonDMSv20160101."
_VALIDATOR = ParamValidator()

SUPPORTED = (
    "CreateEndpoint",
    "DescribeEndpoints",
    "ModifyEndpoint",
    "DeleteEndpoint",
    "TestConnection",
    "DescribeConnections",
    "CreateReplicationInstance",
    "DescribeReplicationInstances",
    "ModifyReplicationInstance",
    "DeleteReplicationInstance",
    "CreateReplicationSubnetGroup",
    "DescribeReplicationSubnetGroups",
    "ModifyReplicationSubnetGroup",
    "DeleteReplicationSubnetGroup",
    "CreateReplicationTask",
    "ModifyReplicationTask",
    "DescribeReplicationTasks",
    "StartReplicationTask",
    "MoveReplicationTask",
    "StopReplicationTask",
    "DeleteReplicationTask",
    "DescribeTableStatistics",
    "ReloadTables",
    "AddTagsToResource",
    "RemoveTagsFromResource",
    "ListTagsForResource",
    "ImportCertificate",
    "DescribeCertificates",
    "DeleteCertificate",
    "DescribeEvents",
    "DescribeEventCategories",
    "CreateEventSubscription",
    "DescribeEventSubscriptions",
    "ModifyEventSubscription",
    "DeleteEventSubscription",
    "DescribeReplicationInstanceTaskLogs",
    "DescribeOrderableReplicationInstances",
    "DescribeEngineVersions",
    "DescribeEndpointTypes",
    "DescribeEndpointSettings",
    "DescribeAccountAttributes",
    "CreateReplicationConfig",
    "DescribeReplicationConfigs",
    "ModifyReplicationConfig",
    "DeleteReplicationConfig",
    "StartReplication",
    "StopReplication",
    "DescribeReplications",
    "DescribeReplicationTableStatistics",
    "ReloadReplicationTables",
    "StartReplicationTaskAssessmentRun",
    "DescribeReplicationTaskAssessmentRuns",
    "DescribeReplicationTaskIndividualAssessments",
    "DescribeApplicableIndividualAssessments",
    "CancelReplicationTaskAssessmentRun",
    "DeleteReplicationTaskAssessmentRun",
    "StartReplicationTaskAssessment",
    "DescribeReplicationTaskAssessmentResults",
)
"""The operations localdms answers; each is the ``DmsBackend`` method of its snake_case name."""


@functools.cache
def service_model() -> ServiceModel:
    """The DMS service model that ships with botocore (the API's own definition)."""
    return botocore.session.get_session().get_service_model("dms")


def handler(operation: str) -> Callable[..., dict[str, Any]]:
    """The backend method that answers ``operation`` (unbound: call it with the backend first)."""
    method: Callable[..., dict[str, Any]] = getattr(DmsBackend, xform_name(operation))
    return method


def ignored_members(operation: str) -> frozenset[str]:
    """The request members ``operation`` accepts and does not act on."""
    marked: frozenset[str] = getattr(handler(operation), "ignored_members", frozenset())
    return marked


@functools.cache
def _accepted(operation: str) -> tuple[frozenset[str], frozenset[str]]:
    """The keyword parameters of ``operation``'s method and its ignored members (once each)."""
    parameters = frozenset(inspect.signature(handler(operation)).parameters) - {"self"}
    return parameters, ignored_members(operation)


def _sensitive_values(value: Any, shape: Shape) -> set[str]:
    """The texts of the values a request gives in members the model marks sensitive
    (passwords, wallet contents), at any depth."""
    if shape.metadata.get("sensitive"):
        return {str(value), repr(value)} if value not in (None, "") else set()
    found: set[str] = set()
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                found |= _sensitive_values(value[name], member)
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for item in value:
            found |= _sensitive_values(item, shape.member)
    return found


def arguments(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``operation``'s backend method for a checked request.

    Raises:
        InvalidParameterValueException: the request does not match the model's input shape, or
            names a member localdms neither acts on nor ignores.
    """
    model: OperationModel = service_model().operation_model(operation)
    present = {name: value for name, value in request.items() if value is not None}
    if model.input_shape is not None:
        report = _VALIDATOR.validate(present, model.input_shape)
        if report.has_errors():
            text = report.generate_report()  # botocore quotes bad values: hide the secret ones
            for secret in sorted(_sensitive_values(present, model.input_shape), key=len)[::-1]:
                text = text.replace(secret, "***")
            raise InvalidParameterValueException(f"Invalid {operation} request: {text}")
    taken, ignorable = _accepted(operation)
    ignored = ignorable & present.keys()
    if ignored:
        log.info("%s: localdms does not act on %s", operation, ", ".join(sorted(ignored)))
    kwargs = {xform_name(name): value for name, value in present.items() if name not in ignored}
    refused = [name for name in present if name not in ignored and xform_name(name) not in taken]
    if refused:
        raise InvalidParameterValueException(
            f"localdms does not support {', '.join(refused)} on {operation}: leave "
            f"{'them' if len(refused) > 1 else 'it'} out (the operation's docstring in "
            "localdms/backend/ says what it takes)."
        )
    return kwargs


def dispatch(backend: DmsBackend, target: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run the operation named by the ``X-Amz-Target`` header.

    Raises:
        InvalidAction: the header names no operation, or one localdms does not implement.
        DmsFault: the request does not match the model, or whatever the operation raises.
    """
    operation = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
    if operation not in SUPPORTED:
        raise InvalidAction(
            f"The DMS operation {operation or target or '(none)'} is not supported by localdms. "
            f"Supported operations: {', '.join(sorted(SUPPORTED))}."
        )
    method = getattr(backend, xform_name(operation))
    body: dict[str, Any] = method(**arguments(operation, request))
    return body
