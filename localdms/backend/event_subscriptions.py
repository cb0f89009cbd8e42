"""Event notification subscriptions: CreateEventSubscription, DescribeEventSubscriptions,
ModifyEventSubscription, DeleteEventSubscription; and the notifications they send.

Read from the Terraform provider's ``aws_dms_event_subscription`` (``event_subscription.go``),
which polls real DMS: a subscription is ``creating``, then ``active``; a change shows
``modifying``, a deletion ``deleting`` (each for ``transition_seconds``), and
DescribeEventSubscriptions with a SubscriptionName that is not there is a ResourceNotFoundFault
(the provider's "not found"). Its ARN, for tags, is ``arn:aws:dms:<region>:<account>:es:<name>``.
SourceIds, SourceType and EventCategories read back as given.

Each event localdms records (``BackendBase._record_event``) is published to the topic of every
enabled subscription whose source type, source ids and categories match it, in DMS's message
format (``dms_spec.events.sns_notification``), when ``AWS_ENDPOINT_URL_SNS`` names an SNS
(``localdms/notifications.py``). There, CreateEventSubscription and a ModifyEventSubscription
that names a topic check it as DMS does: a topic that does not exist is SNSInvalidTopicFault, one
the caller may not use SNSNoAuthorizationFault.
"""

from __future__ import annotations

import time
from typing import Any

import botocore.exceptions

from dms_spec import events
from localdms.backend.base import BackendBase
from localdms.backend.offerings import QUOTAS
from localdms.backend.queries import filtered, page_body
from localdms.backend.resources import EventSubscription
from localdms.backend.shapes import Filter, Tag
from localdms.exceptions import (
    InvalidParameterValueException,
    InvalidResourceStateFault,
    ResourceAlreadyExistsFault,
    ResourceNotFoundFault,
    ResourceQuotaExceededFault,
    SNSInvalidTopicFault,
    SNSNoAuthorizationFault,
)
from localdms.identifiers import make_arn

_SOURCE_TYPES = (events.REPLICATION_INSTANCE, events.REPLICATION_TASK)


class EventSubscriptionBackend(BackendBase):
    """The event subscription operations."""

    def create_event_subscription(
        self,
        *,
        subscription_name: str,
        sns_topic_arn: str,
        source_type: str | None = None,
        event_categories: list[str] | None = None,
        source_ids: list[str] | None = None,
        enabled: bool | None = None,
        tags: list[Tag] | None = None,
    ) -> dict[str, Any]:
        """CreateEventSubscription (every request member is acted on)."""
        _check_name(subscription_name)
        self._check_topic(sns_topic_arn)
        with self.lock:
            self._advance()
            arn = self._subscription_arn(subscription_name)
            if arn in self.event_subscriptions:
                raise ResourceAlreadyExistsFault(
                    f"Event subscription {subscription_name} already exists."
                )
            if len(self.event_subscriptions) >= QUOTAS["EventSubscriptions"]:
                raise ResourceQuotaExceededFault(
                    f"The quota of {QUOTAS['EventSubscriptions']} event subscriptions per "
                    "account is reached: delete one first."
                )
            subscription = EventSubscription(
                arn=arn,
                identifier=subscription_name,
                status="creating",
                created=time.time(),
                sns_topic_arn=sns_topic_arn,
                source_type=_source_type(source_type),
                source_ids=list(source_ids or []),
                categories=_categories(event_categories, source_type),
                enabled=True if enabled is None else enabled,
                customer_id=self.account_id,
            )
            subscription.schedule("creating", "active", self.transition_seconds)
            self.event_subscriptions[arn] = subscription
            self._set_tags(arn, tags)
            self._save()
            return {"EventSubscription": subscription.to_api()}

    def describe_event_subscriptions(
        self,
        *,
        subscription_name: str | None = None,
        filters: list[Filter] | None = None,
        max_records: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeEventSubscriptions: a SubscriptionName that is not there is
        ResourceNotFoundFault. Filters: ``event-subscription-arn``, ``event-subscription-id``."""
        with self.lock:
            self._advance()
            items = sorted(self.event_subscriptions.values(), key=lambda s: s.identifier)
            if subscription_name is not None:
                items = [self._subscription(subscription_name)]
            items = filtered(
                items,
                filters,
                {
                    "event-subscription-arn": lambda s: [s.arn],
                    "event-subscription-id": lambda s: [s.identifier],
                },
                what=None,
            )
            return page_body(
                "EventSubscriptionsList", items, EventSubscription.to_api, max_records, marker
            )

    def modify_event_subscription(
        self,
        *,
        subscription_name: str,
        sns_topic_arn: str | None = None,
        source_type: str | None = None,
        event_categories: list[str] | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """ModifyEventSubscription: the members given replace the subscription's (its SourceIds
        stay: the API has no member for them)."""
        if sns_topic_arn is not None:
            self._check_topic(sns_topic_arn)
        with self.lock:
            self._advance()
            subscription = self._subscription(subscription_name)
            if subscription.status == "deleting":
                raise InvalidResourceStateFault(
                    f"Event subscription {subscription_name} is being deleted."
                )
            kind = subscription.source_type if source_type is None else _source_type(source_type)
            changes: dict[str, Any] = {"source_type": kind}
            if sns_topic_arn is not None:
                changes["sns_topic_arn"] = sns_topic_arn
            if event_categories is not None:
                changes["categories"] = _categories(event_categories, kind)
            if enabled is not None:
                changes["enabled"] = enabled
            subscription.modify(changes, self.transition_seconds)
            self._save()
            return {"EventSubscription": subscription.to_api()}

    def delete_event_subscription(self, *, subscription_name: str) -> dict[str, Any]:
        """DeleteEventSubscription: ``deleting``, then gone."""
        with self.lock:
            self._advance()
            subscription = self._subscription(subscription_name)
            subscription.delete(self.transition_seconds)
            self._save()
            return {"EventSubscription": subscription.to_api()}

    def _subscription_arn(self, name: str) -> str:
        return make_arn(self.region, self.account_id, "es", name)

    def _subscription(self, name: str) -> EventSubscription:
        subscription = self.event_subscriptions.get(self._subscription_arn(name))
        if subscription is None:
            raise ResourceNotFoundFault(f"Event subscription {name} not found.")
        return subscription

    def _check_topic(self, topic_arn: str) -> None:
        """The topic must exist and be the caller's to publish to, when SNS is reachable."""
        if not topic_arn.startswith("arn:") or ":sns:" not in topic_arn:
            raise SNSInvalidTopicFault(f"{topic_arn!r} is not an SNS topic ARN.")
        sns = self.notifier.sns_client() if self.notifier is not None else None
        if sns is None:
            return
        try:
            sns.get_topic_attributes(TopicArn=topic_arn)
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NotFound", "NotFoundException", "InvalidParameter"):
                raise SNSInvalidTopicFault(
                    f"SNS topic {topic_arn} does not exist: create it first."
                ) from exc
            raise SNSNoAuthorizationFault(
                f"SNS topic {topic_arn} cannot be used: {code}: "
                f"{exc.response.get('Error', {}).get('Message')}."
            ) from exc


def _check_name(name: str) -> None:
    if not 1 <= len(name) <= 255:
        raise InvalidParameterValueException("SubscriptionName must be 1 to 255 characters long.")


def _source_type(value: str | None) -> str | None:
    if value is not None and value not in _SOURCE_TYPES:
        raise InvalidParameterValueException(
            f"SourceType {value!r} is not valid: use {' or '.join(_SOURCE_TYPES)}."
        )
    return value


def _categories(given: list[str] | None, source_type: str | None) -> list[str]:
    """The categories as given, each one of the source type's (any case)."""
    known = events.subscription_categories(source_type)
    unknown = [c for c in given or [] if c.lower() not in known]
    if unknown:
        raise InvalidParameterValueException(
            f"Event categories {', '.join(map(repr, unknown))} are not valid for "
            f"{source_type or 'any source type'}; valid categories: {', '.join(known)}."
        )
    return list(given or [])
