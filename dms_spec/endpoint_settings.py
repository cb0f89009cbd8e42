"""How DMS reads an endpoint's settings: the settings object, then ExtraConnectionAttributes.

An endpoint carries its settings twice over: a settings object (``S3Settings``,
``PostgreSQLSettings``) and the older ExtraConnectionAttributes string, ``key=value;...`` in lower
camel case. Both localdms (creating endpoints) and the flow (reading the target endpoint) merge
them the same way: the attributes first, the settings object winning.
"""

from __future__ import annotations

from typing import Any


def parse_extra_connection_attributes(text: str | None) -> dict[str, str]:
    """Parse ``key=value;key=value`` into a dict with the keys in UpperCamelCase.

    Example:
        >>> parse_extra_connection_attributes("bucketFolder=raw;compressionType=GZIP;")
        {'BucketFolder': 'raw', 'CompressionType': 'GZIP'}
    """
    result: dict[str, str] = {}
    for part in (text or "").split(";"):
        if "=" in part:
            key, value = part.split("=", 1)
            key = key.strip()
            if key:
                result[key[0].upper() + key[1:]] = value.strip()
    return result


def merged_settings(endpoint: dict[str, Any], settings_key: str) -> dict[str, Any]:
    """An endpoint description's settings: ExtraConnectionAttributes, then ``settings_key`` wins.

    Example:
        >>> merged_settings({"ExtraConnectionAttributes": "bucketFolder=old;addColumnName=true",
        ...                  "S3Settings": {"BucketName": "lake", "BucketFolder": "raw"}}, "S3Settings")
        {'BucketFolder': 'raw', 'AddColumnName': 'true', 'BucketName': 'lake'}
    """
    return {
        **parse_extra_connection_attributes(endpoint.get("ExtraConnectionAttributes")),
        **(endpoint.get(settings_key) or {}),
    }


def setting_flag(value: Any, default: bool = False) -> bool:
    """A boolean endpoint setting as DMS reads it: a bool, or ``true``/``y``/``yes``/``1``
    (ExtraConnectionAttributes carry strings), ``default`` when absent.

    Example:
        >>> setting_flag("Y"), setting_flag(None, True), setting_flag("false", True)
        (True, True, False)
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "y", "yes", "1")
