"""What every resource family of the backend shares: the state, the lock, lazy transitions,
ARNs and lookups. The families (``endpoints``, ``instances``, ``tasks``, ``tags``) are mixins of
``BackendBase``, composed into ``DmsBackend`` as moto composes its large services."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import botocore.exceptions

from dms_spec import events
from dms_spec.status import TaskStatus
from localdms.aws_session import aws_session
from localdms.backend.persistence import BackendState, Persistence
from localdms.backend.records import MAX_EVENTS, Certificate, Event
from localdms.backend.replication_config import ReplicationConfig
from localdms.backend.resources import (
    GONE,
    Connection,
    Endpoint,
    EventSubscription,
    ReplicationInstance,
    ReplicationSubnetGroup,
    ReplicationTask,
)
from localdms.backend.shapes import Tag
from localdms.endpoint_settings import PostgresSource
from localdms.engine.capture_source import drop_capture, on_thread
from localdms.engine.replication_run import ReplicationRun
from localdms.exceptions import (
    InvalidParameterValueException,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
)
from localdms.identifiers import make_arn, random_resource_id, validate_identifier
from localdms.notifications import NotificationSender
from localdms.store import Store

log = logging.getLogger(__name__)


def _default_secrets_client() -> Any:
    """A Secrets Manager client from the standard AWS configuration
    (``AWS_ENDPOINT_URL_SECRETS_MANAGER`` included)."""
    return aws_session().client("secretsmanager")


_Operation = TypeVar("_Operation", bound=Callable[..., Any])


def ignores(*members: str) -> Callable[[_Operation], _Operation]:
    """Mark the request members an operation accepts and does not act on.

    The response layer drops them (logging which) before calling the operation; a member that is
    neither a parameter of the operation nor marked here is refused, so nothing is dropped
    silently. The operation's docstring names them too.
    """

    def mark(operation: _Operation) -> _Operation:
        setattr(operation, "ignored_members", frozenset(members))  # noqa: B010
        return operation

    return mark


class BackendBase:
    """The state of one localdms server and what its operations share.

    Args:
        store: where state persists.
        s3_factory: returns a boto3 S3 client for the task runs.
        region: the region in ARNs.
        account_id: the account in ARNs.
        transition_seconds: how long transient states (creating, starting, modifying, deleting,
            testing) stay visible. DMS takes minutes; a second is enough for the waiters.
        min_running_seconds: how long a task shows ``running`` at least, for clients that look
            late (``transition_seconds`` when None).
        secrets_factory: returns a boto3 Secrets Manager client, for endpoints whose
            credentials are a secret (the standard AWS configuration by default).
        notifier: sends each event on to EventBridge and to the SNS topics of the event
            subscriptions that match it (``localdms/notifications.py``), or None.
    """

    def __init__(
        self,
        store: Store,
        s3_factory: Callable[[], Any],
        region: str = "us-east-1",
        account_id: str = "123456789012",
        transition_seconds: float = 1.0,
        min_running_seconds: float | None = None,
        secrets_factory: Callable[[], Any] | None = None,
        notifier: NotificationSender | None = None,
    ) -> None:
        self.s3_factory = s3_factory
        self.notifier = notifier
        self.secrets_factory = secrets_factory or _default_secrets_client
        self.region = region
        self.account_id = account_id
        self.transition_seconds = transition_seconds
        self.min_running_seconds = (
            transition_seconds if min_running_seconds is None else min_running_seconds
        )
        self.lock = threading.RLock()
        self.runs: dict[str, ReplicationRun] = {}
        self.persistence = Persistence(store)
        self.state: BackendState = self.persistence.load()
        self._statuses = self._current_statuses()
        self._resume_runs()

    def _resume_runs(self) -> None:
        """After loading: restart what was running when the server stopped (the tasks family)."""

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        return self.state.endpoints

    @property
    def instances(self) -> dict[str, ReplicationInstance]:
        return self.state.instances

    @property
    def subnet_groups(self) -> dict[str, ReplicationSubnetGroup]:
        return self.state.subnet_groups

    @property
    def tasks(self) -> dict[str, ReplicationTask]:
        return self.state.tasks

    @property
    def connections(self) -> dict[tuple[str, str], Connection]:
        return self.state.connections

    @property
    def tags(self) -> dict[str, dict[str, str]]:
        return self.state.tags

    @property
    def certificates(self) -> dict[str, Certificate]:
        return self.state.certificates

    @property
    def replication_configs(self) -> dict[str, ReplicationConfig]:
        return self.state.replication_configs

    @property
    def event_subscriptions(self) -> dict[str, EventSubscription]:
        return self.state.event_subscriptions

    def _runnable(self, arn: str) -> ReplicationTask | None:
        """The task, or the serverless replication, of ``arn`` (None when gone)."""
        config = self.replication_configs.get(arn)
        return config.replication if config is not None else self.tasks.get(arn)

    def _runnables(self) -> list[ReplicationTask]:
        """Every task and serverless replication."""
        return [*self.tasks.values(), *(c.replication for c in self.replication_configs.values())]

    def _save(self) -> None:
        self._note_changes()
        self.persistence.save(self.state)

    def _current_statuses(self) -> dict[str, tuple[str, str, str]]:
        """ARN → (source type, identifier, status) of every instance, task and serverless
        replication (whose starting phases change with time)."""
        statuses = {
            arn: (events.REPLICATION_INSTANCE, instance.identifier, instance.status)
            for arn, instance in self.instances.items()
        }
        statuses.update(
            (arn, (events.REPLICATION_TASK, task.identifier, task.status))
            for arn, task in self.tasks.items()
        )
        now = time.time()
        statuses.update(
            (arn, (events.REPLICATION_CONFIG, config.identifier,
                   config.replication_status(now, self.transition_seconds)))
            for arn, config in self.replication_configs.items()
        )  # fmt: skip
        return statuses

    def _note_changes(self) -> None:
        """Record the DMS events of the status changes since the last look (each is logged with
        its DMS event id); a serverless replication's go to EventBridge only, as on AWS."""
        current = self._current_statuses()
        for arn in [*self._statuses, *(a for a in current if a not in self._statuses)]:
            before, after = self._statuses.get(arn), current.get(arn)
            old = before[2] if before else None
            new = after[2] if after else None
            known = after or before
            if old == new or known is None:
                continue
            source_type, identifier, _ = known
            if source_type == events.REPLICATION_CONFIG:
                if old is not None and new is not None:
                    self._replication_changed(arn, identifier, old, new)
                continue
            if source_type == events.REPLICATION_TASK:
                kind, detail = events.task_event(old, new), self._task_detail(arn, new)
            else:
                kind, detail = events.instance_event(old, new), None
            if kind is not None:
                self._record_event(kind, identifier, arn, detail)
        self._statuses = current

    def _replication_changed(self, arn: str, identifier: str, old: str, new: str) -> None:
        """A serverless replication's status changed: an EventBridge event per status passed."""
        config = self.replication_configs.get(arn)
        run = config.replication if config is not None else None
        for status in events.replication_statuses_passed(old, new):
            detail = None
            if run is not None and status == TaskStatus.STOPPED:
                detail = run.stop_reason  # "Stop Reason FULL_LOAD_ONLY_FINISHED"
            elif run is not None and status == TaskStatus.FAILED:
                detail = run.last_failure_message
            log.info("replication %s: %s", identifier, status)
            if self.notifier is not None:
                self.notifier.put_event(events.replication_eventbridge_event(arn, status, detail))

    def _task_detail(self, arn: str, status: str | None) -> str | None:
        """What a task's stop or failure event adds: its StopReason or LastFailureMessage."""
        task = self.tasks.get(arn)
        if task is None:
            return None
        if status == TaskStatus.STOPPED:
            return task.stop_reason
        return task.last_failure_message if status == TaskStatus.FAILED else None

    def _record_event(
        self, kind: events.EventKind, identifier: str, arn: str, detail: str | None = None
    ) -> None:
        """Keep the event (DescribeEvents), and send it to EventBridge and to the SNS topic of
        each event subscription that wants it."""
        message = f"{kind.message} {detail}" if detail else kind.message
        now = time.time()
        log.info("%s %s %s: %s", kind.event_id, kind.source_type, identifier, message)
        if self.notifier is not None:
            self.notifier.put_event(
                events.eventbridge_event(kind, arn, identifier, detail or kind.message, self.region)
            )
            for subscription in self.event_subscriptions.values():
                if subscription.wants(kind.source_type, identifier, kind.category):
                    self.notifier.publish(
                        subscription.sns_topic_arn, events.SNS_SUBJECT,
                        events.sns_notification(kind, identifier, detail, self.region, now),
                    )  # fmt: skip
        self.state.events.append(
            Event(identifier, arn, kind.source_type, kind.event_id, kind.category, message, now)
        )
        del self.state.events[:-MAX_EVENTS]

    def task_restarted(self, arn: str, attempt: int, error: str) -> None:
        """A run restarted itself after a recoverable error (``dms_spec.recovery``): the task
        stays running, and its events and log get DMS's start event, saying why."""
        with self.lock:
            task = self.tasks.get(arn)
            if task is None:
                return  # a serverless replication: DescribeEvents has none (its log has the restart)
            self._record_event(
                events.TASK_STARTED, task.identifier, task.arn,
                f"Restart {attempt} after a recoverable error: {error}",
            )  # fmt: skip
            self._save()

    def update_task(
        self, arn: str, change: Callable[[ReplicationTask], None], save: str = "now"
    ) -> None:
        """Apply ``change`` to a task under the lock (nothing if it is gone); persist ``now``
        (task transitions), ``soon`` (table ones) or ``never`` (row counts)."""
        with self.lock:
            task = self._runnable(arn)
            if task is None:
                return
            change(task)
            if save == "now":
                self._save()
            elif save == "soon":
                self.persistence.save_soon(self.state)

    def _advance(self) -> None:
        """Apply due transitions; drop resources whose deletion finished."""
        now = time.time()
        changed = False
        collections: tuple[dict[str, Any], ...] = (
            self.endpoints, self.instances, self.tasks, self.subnet_groups,
            self.replication_configs, self.event_subscriptions,
        )  # fmt: skip
        for collection in collections:
            for arn, resource in list(collection.items()):
                if resource.advance(now):
                    changed = True
                    if resource.status == GONE:
                        del collection[arn]
                        self.tags.pop(arn, None)
        for connection in self.connections.values():
            changed |= connection.advance(now)
        if changed or self.replication_configs:  # a replication's phases change with time
            self._note_changes()
        self.persistence.save_if_due(self.state, changed)

    def _arn(self, kind: str, resource_identifier: str | None) -> str:
        if resource_identifier is not None:
            validate_identifier("ResourceIdentifier", resource_identifier, 31)
        return make_arn(
            self.region, self.account_id, kind, resource_identifier or random_resource_id()
        )

    def _default_kms_key(self) -> str:
        """The account's DMS key in this region, as DMS names it when no KmsKeyId is given (for
        instances and endpoints alike)."""
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"localdms:{self.account_id}:{self.region}:aws/dms")
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{key}"

    def _get(self, collection: dict[str, Any], arn: str, what: str) -> Any:
        if arn not in collection:
            raise ResourceNotFoundFault(f"{what} {arn} not found.")
        return collection[arn]

    def _source(self, endpoint: Endpoint) -> PostgresSource:
        """The endpoint's source, its Secrets Manager secret read now, as DMS reads it for each
        connection (so a rotated secret is used).

        Raises:
            ResourceNotFoundFault: the secret cannot be read or is not a JSON object, saying why.
        """
        ca_pem = self._certificate_pem(endpoint)
        secret_id = endpoint.settings.get("SecretsManagerSecretId")
        if not secret_id:
            return endpoint.postgres_source(None, ca_pem)
        try:
            text = self.secrets_factory().get_secret_value(SecretId=str(secret_id))["SecretString"]
            secret = json.loads(text)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise ResourceNotFoundFault(
                f"The Secrets Manager secret {secret_id} of endpoint {endpoint.identifier} could "
                f"not be read: {error.get('Code')}: {error.get('Message')}. Check "
                "SecretsManagerSecretId and that SecretsManagerAccessRoleArn may read it."
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise ResourceNotFoundFault(
                f"The Secrets Manager secret {secret_id} of endpoint {endpoint.identifier} could "
                f"not be read: {exc}. Check AWS_ENDPOINT_URL_SECRETS_MANAGER / the network."
            ) from exc
        except (KeyError, ValueError) as exc:
            raise ResourceNotFoundFault(
                f"The Secrets Manager secret {secret_id} of endpoint {endpoint.identifier} is not "
                "a JSON object with username, password, host, port and dbname."
            ) from exc
        if not isinstance(secret, dict):
            raise ResourceNotFoundFault(
                f"The Secrets Manager secret {secret_id} of endpoint {endpoint.identifier} is not "
                "a JSON object with username, password, host, port and dbname."
            )
        return endpoint.postgres_source(secret, ca_pem)

    def _drop_capture_later(self, source_arn: str, slot: str) -> None:
        """Drop the slot (and publications) localdms made for a deleted task or replication, on
        a thread, connecting as every run does (``_source``: the endpoint's Secrets Manager
        secret and CA certificate). A slot left behind holds WAL on the source until its disk
        fills, so a drop that fails says which slot stays and how to drop it."""
        if not slot or source_arn not in self.endpoints:
            return
        endpoint = self._endpoint(source_arn)

        def drop() -> None:
            try:
                drop_capture(self._source(endpoint), slot)
            except Exception as exc:
                log.warning(
                    "The replication slot %s of deleted %s stays on the source of endpoint %s "
                    "(%s): it holds WAL until it is dropped; drop it with SELECT "
                    "pg_drop_replication_slot('%s') and DROP PUBLICATION %s, %s_ins.",
                    slot, source_arn, endpoint.identifier, exc, slot, slot, slot,
                )  # fmt: skip

        on_thread(drop, f"drop-slot-{slot}")

    def _certificate_pem(self, endpoint: Endpoint) -> str | None:
        """The PEM of the endpoint's CertificateArn, if it names one.

        Raises:
            ResourceNotFoundFault: the certificate was deleted since, or is a wallet.
        """
        arn = endpoint.fields.get("CertificateArn")
        if not arn:
            return None
        certificate = self._certificate(str(arn))
        if certificate.pem is None:
            raise InvalidParameterValueException(
                f"Certificate {certificate.identifier} is an Oracle wallet; a PostgreSQL "
                "endpoint needs a PEM CA certificate."
            )
        return certificate.pem

    def _certificate(self, arn: str) -> Certificate:
        certificate = self.certificates.get(arn)
        if certificate is None:
            raise ResourceNotFoundFault(
                f"Certificate {arn} not found: import it (ImportCertificate) and use its ARN."
            )
        return certificate

    def _endpoint(self, arn: str) -> Endpoint:
        endpoint: Endpoint = self._get(self.endpoints, arn, "Endpoint")
        return endpoint

    def _instance(self, arn: str) -> ReplicationInstance:
        instance: ReplicationInstance = self._get(self.instances, arn, "Replication instance")
        return instance

    def _task(self, arn: str) -> ReplicationTask:
        task: ReplicationTask = self._get(self.tasks, arn, "Replication task")
        return task

    def _claim_identifier(
        self, collection: dict[str, Any], identifier: str, what: str, current: Any = None
    ) -> str:
        """``identifier``, unless another resource of ``collection`` (than ``current``, when one
        is renamed) has it in any case: then DMS's ResourceAlreadyExistsFault."""
        if any(
            r is not current and r.identifier.lower() == identifier.lower()
            for r in collection.values()
        ):
            raise ResourceAlreadyExistsFault(f"{what} {identifier} already exists.")
        return identifier

    def _set_tags(self, arn: str, tags: Sequence[Tag] | None) -> None:
        for tag in tags or ():
            key = tag["Key"]
            if not 1 <= len(key) <= 128 or key.lower().startswith(("aws:", "dms:")):
                raise InvalidParameterValueException(
                    f"Tag key {key!r} is not valid: 1 to 128 characters, not starting with aws: or dms:."
                )
            self.tags.setdefault(arn, {})[key] = tag.get("Value", "")
