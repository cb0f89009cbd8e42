"""DMS identifier rules and ARNs (the constraints the AWS DMS API Reference documents on its
Create* operations)."""

from __future__ import annotations

import re
import secrets

from localdms.exceptions import InvalidParameterValueException

_IDENTIFIER = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]*(?<!-)$")
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ARN = re.compile(
    r"^arn:aws[a-z-]*:dms:[a-z0-9-]+:\d{12}:(task|endpoint|rep|subgrp|cert|replication-config|assessment-run|es):[A-Za-z0-9._ -]+$"
)

IDENTIFIER_RULE = (
    "Identifiers must begin with a letter; must contain only ASCII letters, digits, and hyphens; "
    "and must not end with a hyphen or contain two consecutive hyphens."
)


def is_valid_identifier(value: str, max_length: int = 255) -> bool:
    """Whether ``value`` follows DMS's identifier rules.

    Example:
        >>> is_valid_identifier("postgres-migration-test"), is_valid_identifier("a--b")
        (True, False)
    """
    return 0 < len(value) <= max_length and bool(_IDENTIFIER.match(value))


def validate_identifier(parameter: str, value: object, max_length: int = 255) -> str:
    """Return ``value`` if it is a valid identifier, else raise the DMS fault.

    Raises:
        InvalidParameterValueException: with the message DMS gives for a bad identifier.
    """
    if not isinstance(value, str) or not is_valid_identifier(value, max_length):
        raise InvalidParameterValueException(
            f"The parameter {parameter} is not a valid identifier. {IDENTIFIER_RULE}"
            + (f" It must be 1 to {max_length} characters long." if max_length != 255 else "")
        )
    return value


def random_resource_id() -> str:
    """A random 39-character uppercase base32 resource id, as newer DMS ARNs have."""
    return "".join(secrets.choice(_BASE32) for _ in range(39))


def make_arn(region: str, account: str, kind: str, resource_id: str) -> str:
    """Build a DMS ARN; ``kind`` is ``task``, ``endpoint`` or ``rep``.

    Example:
        >>> make_arn("us-east-1", "123456789012", "task", "ABC")
        'arn:aws:dms:us-east-1:123456789012:task:ABC'
    """
    return f"arn:aws:dms:{region}:{account}:{kind}:{resource_id}"


def arn_kind(arn: str) -> str | None:
    """The resource type of a well-formed DMS ARN (``task``/``endpoint``/``rep``/``subgrp``), else
    None."""
    match = _ARN.match(arn)
    return match.group(1) if match else None
