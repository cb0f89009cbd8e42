"""The backend's state on disk: what is saved, when, and what a restart finds.

``BackendState`` holds every resource; ``Persistence`` writes it through the ``Store`` (one atomic JSON
document) at once for resource and task transitions, and at most once a second for table-level
progress (each save rewrites and fsyncs the whole state: per table transition that cost 34 ms at
600 tables, 41 of 48 s of a load, measured). On load, a task that was stopping when the server
died comes back ``stopped`` (the stop it was asked for), one that was loading comes back
``failed`` (``ReplicationTask.interrupt``), and one that was capturing changes is resumed by the
backend from its checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from dms_spec.assessments import AssessmentStatus, RunStatus
from dms_spec.lifecycle import ACTIVE
from dms_spec.status import StopReason, TaskStatus
from localdms.backend.records import (
    AssessmentRun,
    Certificate,
    Event,
    IndividualAssessment,
    TaskAssessment,
)
from localdms.backend.replication_config import ReplicationConfig
from localdms.backend.resources import (
    Connection,
    Endpoint,
    EventSubscription,
    ReplicationInstance,
    ReplicationSubnetGroup,
    ReplicationTask,
)
from localdms.backend.table_statistics import TableStatistics
from localdms.store import Store

TABLE_SAVE_INTERVAL_SECONDS = 1.0


@dataclass
class BackendState:
    """Every resource of one localdms server."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    instances: dict[str, ReplicationInstance] = field(default_factory=dict)
    subnet_groups: dict[str, ReplicationSubnetGroup] = field(default_factory=dict)
    """By ARN (``...:subgrp:<identifier>``)."""
    tasks: dict[str, ReplicationTask] = field(default_factory=dict)
    connections: dict[tuple[str, str], Connection] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    replication_configs: dict[str, ReplicationConfig] = field(default_factory=dict)
    """DMS Serverless replication configs, each holding its replication (a run)."""
    assessment_runs: dict[str, AssessmentRun] = field(default_factory=dict)
    task_assessments: dict[str, TaskAssessment] = field(default_factory=dict)
    """The latest legacy task assessment, by task ARN."""
    events: list[Event] = field(default_factory=list)
    """The newest ``MAX_EVENTS`` instance and task events, oldest first."""
    event_subscriptions: dict[str, EventSubscription] = field(default_factory=dict)


class Persistence:
    """Loads and saves a ``BackendState`` through a ``Store``, batching table-level saves."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._last_save = 0.0
        self._dirty = False

    def load(self) -> BackendState:
        """The saved state; tasks that were loading when the server died are ``failed``."""
        raw_state = self.store.load()
        state = BackendState()
        for raw in raw_state.get("endpoints", []):
            endpoint = Endpoint(**raw)
            state.endpoints[endpoint.arn] = endpoint
        for raw in raw_state.get("instances", []):
            instance = ReplicationInstance(**raw)
            state.instances[instance.arn] = instance
        for raw in raw_state.get("subnet_groups", []):
            group = ReplicationSubnetGroup(**raw)
            state.subnet_groups[group.arn] = group
        for raw in raw_state.get("connections", []):
            connection = Connection(**raw)
            state.connections[(connection.endpoint_arn, connection.instance_arn)] = connection
        for raw in raw_state.get("tasks", []):
            task = _task(raw)
            state.tasks[task.arn] = task
        for raw in raw_state.get("replication_configs", []):
            config = ReplicationConfig(**{**raw, "replication": _task(raw["replication"])})
            state.replication_configs[config.arn] = config
        state.tags = raw_state.get("tags", {})
        for raw in raw_state.get("certificates", []):
            certificate = Certificate(**raw)
            state.certificates[certificate.arn] = certificate
        state.events = [Event(**raw) for raw in raw_state.get("events", [])]
        for raw in raw_state.get("event_subscriptions", []):
            subscription = EventSubscription(**raw)
            state.event_subscriptions[subscription.arn] = subscription
        for raw in raw_state.get("assessment_runs", []):
            individual = [IndividualAssessment(**a) for a in raw.pop("assessments", [])]
            run = AssessmentRun(**raw, assessments=individual)
            if run.status in (RunStatus.STARTING, RunStatus.RUNNING):  # it died while it ran
                run.interrupt()
                assessed = state.replication_configs.get(run.task_arn)
                tested = assessed.replication if assessed else state.tasks.get(run.task_arn)
                if tested is not None:
                    tested.end_testing(run.task_status or TaskStatus.READY)
            state.assessment_runs[run.arn] = run
        for raw in raw_state.get("task_assessments", []):
            assessment = TaskAssessment(**raw)
            if assessment.status == AssessmentStatus.RUNNING:  # the server died while it ran
                assessment.interrupt()
                tested = state.tasks.get(assessment.task_arn)
                if tested is not None:
                    tested.end_testing(TaskStatus.STOPPED)
            state.task_assessments[assessment.task_arn] = assessment
        self.save(state)
        return state

    def save(self, state: BackendState) -> None:
        """Write everything now."""
        self._last_save = time.monotonic()
        self._dirty = False
        self.store.save(
            {
                "endpoints": [asdict(e) for e in state.endpoints.values()],
                "instances": [asdict(i) for i in state.instances.values()],
                "subnet_groups": [asdict(g) for g in state.subnet_groups.values()],
                "connections": [asdict(c) for c in state.connections.values()],
                "tasks": [asdict(t) for t in state.tasks.values()],
                "tags": state.tags,
                "certificates": [asdict(c) for c in state.certificates.values()],
                "events": [asdict(e) for e in state.events],
                "event_subscriptions": [asdict(s) for s in state.event_subscriptions.values()],
                "replication_configs": [asdict(c) for c in state.replication_configs.values()],
                "assessment_runs": [asdict(r) for r in state.assessment_runs.values()],
                "task_assessments": [asdict(a) for a in state.task_assessments.values()],
            }
        )

    def save_soon(self, state: BackendState) -> None:
        """Write at most once per ``TABLE_SAVE_INTERVAL_SECONDS`` (table-level changes)."""
        if time.monotonic() - self._last_save >= TABLE_SAVE_INTERVAL_SECONDS:
            self.save(state)
        else:
            self._dirty = True

    def save_if_due(self, state: BackendState, changed: bool) -> None:
        """Write when something changed, or when batched changes have waited long enough."""
        if changed or (
            self._dirty and time.monotonic() - self._last_save >= TABLE_SAVE_INTERVAL_SECONDS
        ):
            self.save(state)


def _task(raw: dict[str, Any]) -> ReplicationTask:
    """A saved task (or serverless replication), as the server's death leaves it.

    One that was stopping ends as the stop it was asked for would have ended it, ``stopped``
    with ``Stop Reason NORMAL``: what it had captured and not written is still in the slot after
    its checkpoint, for a ``resume-processing``. One that was loading is ``failed``. One that
    was capturing stays running, and the backend resumes it (``RunBackend._resume_runs``).
    """
    tables = {k: TableStatistics(**v) for k, v in raw.pop("tables", {}).items()}
    task = ReplicationTask(**raw, tables=tables)
    if task.status == TaskStatus.STOPPING:
        task.stop(StopReason.NORMAL, time.time())
    elif task.status in ACTIVE and not task.capturing:
        task.interrupt(time.time())
    return task
