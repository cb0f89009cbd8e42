"""The DMS backend of localdms: resources, their lifecycle, and the guards DMS applies.

Where things are (a family per module, composed here as moto composes its large services):

- ``resources.py``: the resources and their transitions (the only writers of status fields);
- ``persistence.py``: what is saved, when, and what a restart finds;
- ``endpoints.py``, ``instances.py``, ``tasks.py``, ``tags.py``: the operations, one public method
  each, named as in the API; each checks existence and status (raising DMS's fault), makes the
  transition, persists and returns the response body;
- ``progress.py``: how a task run (``engine.task_run``, on its own thread) reports back;
- ``queries.py``: Filters, pages and task-settings documents shared by the Describe operations.

Short-lived statuses (``creating``, ``modifying``, ``deleting``, ``testing``) are kept for
``transition_seconds`` and advanced lazily whenever the backend is read, so boto3's waiters see
them as on AWS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dms_spec.lifecycle import RUNNING_STATES
from dms_spec.status import StartType
from localdms.backend.endpoints import EndpointBackend
from localdms.backend.instances import InstanceBackend
from localdms.backend.tags import TagBackend
from localdms.backend.tasks import TaskBackend
from localdms.store import Store

__all__ = ["DmsBackend"]

log = logging.getLogger(__name__)


class DmsBackend(EndpointBackend, InstanceBackend, TaskBackend, TagBackend):
    """All DMS resources of one localdms server (see ``BackendBase`` for the arguments).

    A task that was capturing changes when the server stopped resumes capture from its
    checkpoint here: the slot kept every change after it.
    """

    def __init__(
        self,
        store: Store,
        s3_factory: Callable[[], Any],
        region: str = "us-east-1",
        account_id: str = "123456789012",
        transition_seconds: float = 1.0,
    ) -> None:
        super().__init__(store, s3_factory, region, account_id, transition_seconds)
        for task in self.tasks.values():
            if task.status in RUNNING_STATES and task.capturing:
                log.info("task %s: resuming change capture from %s", task.identifier,
                         task.recovery_checkpoint)  # fmt: skip
                self._start(task, StartType.RESUME_PROCESSING)
