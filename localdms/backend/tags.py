"""Tags: AddTagsToResource, RemoveTagsFromResource, ListTagsForResource (any resource's ARN)."""

from __future__ import annotations

from typing import Any

from localdms.backend.base import BackendBase
from localdms.exceptions import InvalidParameterValueException, ResourceNotFoundFault
from localdms.identifiers import arn_kind


class TagBackend(BackendBase):
    """The tag operations. Tags given at creation are set by the creating operation."""

    def _resource_exists(self, arn: Any) -> None:
        if not isinstance(arn, str) or arn_kind(arn) is None:
            raise InvalidParameterValueException(f"{arn!r} is not a valid DMS resource ARN.")
        if arn not in self.tasks and arn not in self.endpoints and arn not in self.instances:
            raise ResourceNotFoundFault(f"Resource {arn} not found.")

    def add_tags_to_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        """AddTagsToResource.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            self._resource_exists(params.get("ResourceArn"))
            self._set_tags(params["ResourceArn"], params.get("Tags") or [])
            self._save()
            return {}

    def remove_tags_from_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        """RemoveTagsFromResource.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            self._resource_exists(params.get("ResourceArn"))
            tags = self.tags.get(params["ResourceArn"], {})
            for key in params.get("TagKeys") or []:
                tags.pop(key, None)
            self._save()
            return {}

    def list_tags_for_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListTagsForResource.

        Every request member is acted on.
        """
        with self.lock:
            self._advance()
            arns = list(params.get("ResourceArnList") or [])
            if params.get("ResourceArn"):
                arns.insert(0, params["ResourceArn"])
            if not arns:
                raise InvalidParameterValueException("Give ResourceArn or ResourceArnList.")
            tag_list = []
            for arn in arns:
                self._resource_exists(arn)
                for key, value in self.tags.get(arn, {}).items():
                    tag_list.append({"Key": key, "Value": value, "ResourceArn": arn})
            return {"TagList": tag_list}
