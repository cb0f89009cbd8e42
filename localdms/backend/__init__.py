"""The DMS backend of localdms: resources, their lifecycle, and the guards DMS applies.

Where things are (a family per module, composed here as moto composes its large services):

- ``resources.py``: the resources and their transitions (the only writers of status fields), and
  ``table_statistics.py`` a task's tables;
- ``persistence.py``: what is saved, when, and what a restart finds;
- ``records.py``: what has no lifecycle (certificates, events);
- ``endpoints.py``, ``instances.py``, ``subnet_groups.py``, ``tasks.py``, ``tables.py``,
  ``tags.py``, ``certificates.py``, ``events.py`` (and task logs), ``event_subscriptions.py`` (SNS
  notifications), ``offerings.py`` (orderable
  instances, engine versions, endpoint types and settings, account quotas), ``serverless.py``
  (replication configs; ``replication_config.py`` how a replication reports),
  ``assessment_runs.py`` (premigration assessment runs), ``task_assessments.py`` (the legacy task
  assessment): the operations, one public method each, named as in the API, taking the request's
  members as keyword arguments
  (``localdms/responses.py`` checks each request against the botocore model first); each checks
  existence and status (raising DMS's fault), makes the transition, persists and returns the
  response body; ``shapes.py`` types the structured members;
- ``runs.py``: how a start becomes a run of the engine, and what a restart resumes;
- ``progress.py``: how a task run (``engine.replication_run``, on its own thread) reports back;
- ``queries.py``: Filters, pages and task-settings documents shared by the Describe operations.

Short-lived statuses (``creating``, ``modifying``, ``deleting``, ``testing``) are kept for
``transition_seconds`` and advanced lazily whenever the backend is read, so boto3's waiters see
them as on AWS; a status that work starts behind (a run's ``starting``) is held by the work
(``localdms/pacing.py`` says which is which).
"""

from __future__ import annotations

from localdms.backend.assessment_runs import AssessmentRunBackend
from localdms.backend.certificates import CertificateBackend
from localdms.backend.endpoints import EndpointBackend
from localdms.backend.event_subscriptions import EventSubscriptionBackend
from localdms.backend.events import EventBackend
from localdms.backend.instances import InstanceBackend
from localdms.backend.offerings import OfferingsBackend
from localdms.backend.serverless import ServerlessBackend
from localdms.backend.tables import TableBackend
from localdms.backend.tags import TagBackend
from localdms.backend.task_assessments import TaskAssessmentBackend
from localdms.backend.tasks import TaskBackend

__all__ = ["DmsBackend"]


class DmsBackend(
    ServerlessBackend,
    EndpointBackend,
    InstanceBackend,
    TaskBackend,
    TableBackend,
    TagBackend,
    CertificateBackend,
    EventBackend,
    EventSubscriptionBackend,
    OfferingsBackend,
    AssessmentRunBackend,
    TaskAssessmentBackend,
):
    """All DMS resources of one localdms server (see ``BackendBase`` for the arguments)."""
