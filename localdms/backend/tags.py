"""Tags: AddTagsToResource, RemoveTagsFromResource, ListTagsForResource (any resource's ARN)."""

from __future__ import annotations

from typing import Any

from localdms.backend.base import BackendBase
from localdms.backend.shapes import Tag
from localdms.exceptions import InvalidParameterValueException, ResourceNotFoundFault
from localdms.identifiers import arn_kind


class TagBackend(BackendBase):
    """The tag operations. Tags given at creation are set by the creating operation."""

    def _resource_exists(self, arn: str) -> None:
        if arn_kind(arn) is None:
            raise InvalidParameterValueException(f"{arn!r} is not a valid DMS resource ARN.")
        if not any(arn in family for family in (self.tasks, self.endpoints, self.instances,
                                                 self.subnet_groups, self.certificates,
                                                 self.replication_configs, self.event_subscriptions,
                                                 self.state.assessment_runs)):  # fmt: skip
            raise ResourceNotFoundFault(f"Resource {arn} not found.")

    def add_tags_to_resource(self, *, resource_arn: str, tags: list[Tag]) -> dict[str, Any]:
        """AddTagsToResource (every request member is acted on)."""
        with self.lock:
            self._advance()
            self._resource_exists(resource_arn)
            self._set_tags(resource_arn, tags)
            self._save()
            return {}

    def remove_tags_from_resource(
        self, *, resource_arn: str, tag_keys: list[str]
    ) -> dict[str, Any]:
        """RemoveTagsFromResource (every request member is acted on)."""
        with self.lock:
            self._advance()
            self._resource_exists(resource_arn)
            tags = self.tags.get(resource_arn, {})
            for key in tag_keys:
                tags.pop(key, None)
            self._save()
            return {}

    def list_tags_for_resource(
        self, *, resource_arn: str | None = None, resource_arn_list: list[str] | None = None
    ) -> dict[str, Any]:
        """ListTagsForResource (every request member is acted on)."""
        with self.lock:
            self._advance()
            arns = list(resource_arn_list or [])
            if resource_arn:
                arns.insert(0, resource_arn)
            if not arns:
                raise InvalidParameterValueException("Give ResourceArn or ResourceArnList.")
            tag_list = []
            for arn in arns:
                self._resource_exists(arn)
                for key, value in self.tags.get(arn, {}).items():
                    tag_list.append({"Key": key, "Value": value, "ResourceArn": arn})
            return {"TagList": tag_list}
