"""How an endpoint's settings read back in DescribeEndpoints, as real DMS returns them.

What DMS returns was read from the Terraform AWS provider, whose acceptance tests run against
AWS (``internal/service/dms``):

- **S3Settings echo what was set, nothing more.** Its ``aws_dms_s3_endpoint`` "simple" test reads
  back an endpoint made with only a bucket and a role (plus the provider's own defaults
  ``CompressionType=NONE``, ``CsvDelimiter=,``, ``CsvRowDelimiter=\\n``, ``EnableStatistics``,
  ``Rfc4180``) and finds ``DataFormat``, ``MaxFileSize``, ``EncodingType``, ``ParquetVersion``
  ... empty. DMS applies its defaults when it writes; it does not report them. So localdms
  returns the values given, as given (``GZIP`` stays upper case, ``yyyymmddhh`` lower), and
  filling in defaults would show Terraform a change on every plan.
- **ExtraConnectionAttributes of an S3 endpoint are built from its settings**, lower camel case,
  ``key=value;`` each, without ``ServiceAccessRoleArn`` (the provider's
  ``suppressExtraConnectionAttributesDiffs``: "fields such as service_access_role_arn (in the
  case of "s3") are not returned from the API in extra_connection_attributes").
- **PostgreSQLSettings carry the connection**: when the settings object is present the provider
  reads ``Username``, ``ServerName``, ``Port``, ``DatabaseName`` from it, not from the top
  level, so top-level values are reflected into it (and the other way round). ``Password`` is
  never returned, from either place.
"""

from __future__ import annotations

from typing import Any

CONNECTION_MEMBERS = ("Username", "ServerName", "Port", "DatabaseName")
"""The connection members DMS shows both at the top level and in PostgreSQLSettings."""
_NOT_IN_ATTRIBUTES = frozenset({"ServiceAccessRoleArn", "ExternalTableDefinition"})


def s3_extra_connection_attributes(settings: dict[str, Any]) -> str:
    """An S3 endpoint's ExtraConnectionAttributes, built from its settings as DMS builds them.

    Example:
        >>> s3_extra_connection_attributes({"BucketName": "lake", "AddColumnName": True,
        ...     "ServiceAccessRoleArn": "arn:aws:iam::123456789012:role/dms"})
        'addColumnName=true;bucketName=lake;'
    """
    parts = []
    for key in sorted(settings):
        if key in _NOT_IN_ATTRIBUTES:
            continue
        value = settings[key]
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{key[0].lower()}{key[1:]}={text};")
    return "".join(parts)


def s3_settings(fields: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """An S3 endpoint's S3Settings: as given, with the endpoint's ServiceAccessRoleArn.

    Example:
        >>> s3_settings({"ServiceAccessRoleArn": "arn:aws:iam::123456789012:role/dms"},
        ...             {"BucketName": "lake"})
        {'BucketName': 'lake', 'ServiceAccessRoleArn': 'arn:aws:iam::123456789012:role/dms'}
    """
    role = settings.get("ServiceAccessRoleArn") or fields.get("ServiceAccessRoleArn")
    return {**settings, **({"ServiceAccessRoleArn": role} if role else {})}


def postgres_settings(fields: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A PostgreSQL endpoint's PostgreSQLSettings: as given, with the top-level connection
    members filled in where the settings lack them, and never a password.

    Example:
        >>> postgres_settings({"ServerName": "db", "Port": 5432, "Username": "dms"},
        ...                   {"SlotName": "dms_slot", "Password": "secret"})
        {'SlotName': 'dms_slot', 'Username': 'dms', 'ServerName': 'db', 'Port': 5432}
    """
    body = {k: v for k, v in settings.items() if k != "Password"}
    for member in CONNECTION_MEMBERS:
        if member not in body and fields.get(member) not in (None, ""):
            body[member] = fields[member]
    return body


def top_level_connection(fields: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The top-level connection members, taken from PostgreSQLSettings where the request gave
    them only there.

    Example:
        >>> top_level_connection({"Username": "dms"}, {"ServerName": "db", "Port": 5432})
        {'Username': 'dms', 'ServerName': 'db', 'Port': 5432}
    """
    return {
        member: fields.get(member) if fields.get(member) not in (None, "") else settings[member]
        for member in CONNECTION_MEMBERS
        if fields.get(member) not in (None, "") or settings.get(member) not in (None, "")
    }
