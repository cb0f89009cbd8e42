"""The structured request members the operations take, as the botocore DMS model defines them.

The response layer (``localdms/responses.py``) has checked each request against the model before
an operation sees it, so these are the shapes the values have, not hopes.
"""

from __future__ import annotations

from typing import TypedDict


class Filter(TypedDict):
    """One DMS ``Filter``: the item matches when its field has any of the values."""

    Name: str
    Values: list[str]


class _TagRequired(TypedDict):
    Key: str


class Tag(_TagRequired, total=False):
    """One tag as requests carry it (``ResourceArn`` only appears in ListTagsForResource)."""

    Value: str
    ResourceArn: str


class TableToReload(TypedDict):
    """One member of ReloadTables' ``TablesToReload``."""

    SchemaName: str
    TableName: str
