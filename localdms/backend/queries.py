"""What DMS's Describe operations share: Filters, MaxRecords/Marker pages, and task settings
documents (the captured defaults of a real task, merged with a caller's)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from localdms.backend.shapes import Filter
from localdms.exceptions import InvalidParameterValueException, ResourceNotFoundFault
from localdms.identifiers import validate_identifier


def default_task_settings() -> dict[str, Any]:
    """The settings a real DMS task reports when created with none (a captured document)."""
    text = resources.files("localdms").joinpath("default_task_settings.json").read_text()
    settings: dict[str, Any] = json.loads(text)
    settings.pop("_comment", None)
    return settings


def merge_settings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (objects merge, other values replace)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def filtered(
    items: list[Any],
    filters: Sequence[Filter] | None,
    fields: dict[str, Callable[[Any], list[str]]],
    id_filters: Sequence[str] = (),
    what: str | None = "resources",
) -> list[Any]:
    """Apply DMS Filters (names ANDed, values ORed); no match with filters → ResourceNotFoundFault."""
    if not filters:
        return items
    for flt in filters:
        name = flt["Name"]
        if name not in fields:
            raise InvalidParameterValueException(
                f"The filter name {name!r} is not valid here; valid filter names: "
                f"{', '.join(fields)}."
            )
        values = list(flt["Values"])
        if name in id_filters:
            for value in values:
                validate_identifier(f"Filter: {name}", value)
        items = [item for item in items if set(fields[name](item)) & set(values)]
    if not items and what is not None:
        raise ResourceNotFoundFault(f"No {what} found matching the given filters.")
    return items


def paginate(
    items: list[Any], max_records: int | None, marker: str | None, maximum: int = 100
) -> tuple[list[Any], str | None]:
    """One page of ``items`` for MaxRecords and Marker, and the Marker of the next page (or None).

    Example:
        >>> page, marker = paginate(list(range(45)), 20, None)
        >>> page[-1], paginate(list(range(45)), 20, marker)[0][0]
        (19, 20)
    """
    limit = 100 if max_records is None else int(max_records)
    if max_records is not None and not 20 <= limit <= maximum:
        raise InvalidParameterValueException(
            f"MaxRecords must be between 20 and {maximum}; got {max_records}."
        )
    offset = 0
    if marker:
        try:
            offset = int(base64.b64decode(str(marker)).decode().removeprefix("offset:"))
        except ValueError as exc:
            raise InvalidParameterValueException(f"Marker {marker!r} is not valid.") from exc
    page = items[offset : offset + limit]
    more = offset + limit < len(items)
    next_marker = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else None
    return page, next_marker


def page_body(
    key: str,
    items: list[Any],
    render: Callable[[Any], dict[str, Any]],
    max_records: int | None,
    marker: str | None,
    maximum: int = 100,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Describe response: one page of ``items`` rendered under ``key``, and the next Marker.

    Example:
        >>> body = page_body("Numbers", list(range(45)), lambda n: {"N": n}, 20, None)
        >>> len(body["Numbers"]), "Marker" in body
        (20, True)
    """
    page, next_marker = paginate(items, max_records, marker, maximum)
    return with_marker({**(extra or {}), key: [render(item) for item in page]}, next_marker)


def with_marker(body: dict[str, Any], marker: str | None) -> dict[str, Any]:
    if marker is not None:
        body["Marker"] = marker
    return body


def parse_task_settings(text: Any, creating: bool) -> dict[str, Any]:
    """A ReplicationTaskSettings document's overrides, checked as DMS checks them."""
    if text in (None, ""):
        return {}
    try:
        settings = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValueException(
            f"ReplicationTaskSettings is not valid JSON: {exc}."
        ) from exc
    if not isinstance(settings, dict):
        raise InvalidParameterValueException("ReplicationTaskSettings must be a JSON object.")
    logging_settings = settings.get("Logging") or {}
    if creating and (
        logging_settings.get("CloudWatchLogGroup") or logging_settings.get("CloudWatchLogStream")
    ):
        raise InvalidParameterValueException(
            "Task Settings CloudWatchLogGroup or CloudWatchLogStream cannot be set on create."
        )
    return settings
