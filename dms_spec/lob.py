"""How DMS treats LOBs from a PostgreSQL source (AWS DMS User Guide: CHAP_Tasks.LOBSupport,
CHAP_Tasks.CustomizingTasks.TaskSettings.TargetMetadata, CHAP_Source.PostgreSQL data types).

Which columns are LOBs, and of which kind (CHAP_Source.PostgreSQL, "Source data types for
PostgreSQL"): bytea is a BLOB; xml, tsvector, tsquery, path and polygon are CLOBs; text, json,
jsonb, hstore, arrays and composite types are NCLOBs.

Their size, which ``LobMaxSize`` (kilobytes, default 32) bounds, is in bytes ("Working with LOB
source data types for PostgreSQL"): a BLOB's bytes; a CLOB "handles each character as a UTF8
character", so its UTF-8 bytes; an NCLOB "handles each character as a double-byte character",
so two bytes a character ("Limit LOB size to is equal to max_num_chars_text multiplied by 2").
At the default 32 KB a text value therefore keeps 16,384 characters, not 32,768.

"In limited LOB mode, you set a maximum LOB size for DMS to accept ... LOBs that exceed the
maximum LOB size are truncated, and a warning is issued to the log file"; "Any LOBs that are
larger than this value is truncated to this value". Limited LOB mode is the default
(``SupportLobs`` true, ``FullLobMode`` false, ``LimitedSizeLobMode`` true). An S3 target
supports neither full LOB mode ("Full LOB mode is not supported", CHAP_Target.S3 limitations)
nor inline LOB mode ("DMS doesn't support inline LOB mode for endpoints that don't support Full
LOB mode, like S3"); the guide does not say what a task asking for them does, so localdms cuts
at ``LobMaxSize`` as in limited mode and says so (``unsupported_lob_mode``): a copy that keeps
LOBs whole here would hide what AWS loses. With ``SupportLobs`` false "LOB columns are excluded
from the migration" (CHAP_Introduction.Components, "Don't include LOB columns").

localdms cuts on whole characters: a CLOB at the last character that ends within the limit's
bytes; an NCLOB at ``limit / 2`` characters. Where the guide leaves the rule open localdms
chooses, and says so: a character outside the Basic Multilingual Plane (4 bytes in UTF-16)
counts two bytes in an NCLOB like any other.

Example:
    >>> limited_lob_size({"TargetMetadata": {"LobMaxSize": 32}})
    32768
    >>> limited_lob_size({"TargetMetadata": {"SupportLobs": False}}) is None
    True
    >>> lob_type("jsonb"), lob_type("_int4"), lob_type("xml"), lob_type("varchar")
    ('NCLOB', 'NCLOB', 'CLOB', None)
    >>> cut_text("abcdef", "NCLOB", 4), cut_text("déjà", "CLOB", 4)
    ('ab', 'déj')
"""

from __future__ import annotations

from typing import Any

BLOB_TYPES = frozenset({"bytea"})
CLOB_TYPES = frozenset({"xml", "tsvector", "tsquery", "path", "polygon"})
NCLOB_TYPES = frozenset({"text", "json", "jsonb", "hstore", "record"})
"""``record`` is what ``localdms.engine.source_tables`` calls a column of a composite type."""


def is_array_type(base_type: str) -> bool:
    """Whether a base type (``pg_type.typname``) is an array type (``_int4``, ``_text``...)."""
    return base_type.startswith("_")


def lob_type(base_type: str) -> str | None:
    """The DMS LOB type a column of this base type (``pg_type.typname``) migrates as, or None.

    Every array type (``_int4``...) is an NCLOB.
    """
    if base_type in BLOB_TYPES:
        return "BLOB"
    if base_type in CLOB_TYPES:
        return "CLOB"
    if base_type in NCLOB_TYPES or is_array_type(base_type):
        return "NCLOB"
    return None


def is_lob_type(base_type: str) -> bool:
    """Whether DMS migrates a column of this base type as a LOB."""
    return lob_type(base_type) is not None


def text_size(value: str, kind: str) -> int:
    """The size in bytes DMS gives a CLOB or NCLOB value (see the module docstring)."""
    return 2 * len(value) if kind == "NCLOB" else len(value.encode())


def cut_text(value: str, kind: str, limit: int) -> str:
    """A CLOB or NCLOB value cut to ``limit`` bytes on whole characters (unchanged when it fits).

    Example:
        >>> cut_text("abcd", "NCLOB", 8), cut_text("日本語です", "CLOB", 7)
        ('abcd', '日本')
    """
    if text_size(value, kind) <= limit:
        return value
    if kind == "NCLOB":
        return value[: limit // 2]
    # The prefix's bytes end inside a character at most; "ignore" drops just that character.
    return value.encode()[:limit].decode(errors="ignore")


TRUNCATION_POLICIES = ("LOG_ERROR", "IGNORE_RECORD", "SUSPEND_TABLE", "STOP_TASK")
"""ErrorBehavior.DataTruncationErrorPolicy values ("the action AWS DMS takes when data is
truncated", default LOG_ERROR; CHAP_Tasks.CustomizingTasks.TaskSettings.ErrorHandling)."""


def truncation_policy(settings: dict[str, Any], fail_tasks_on_lob_truncation: bool) -> str:
    """What a cut LOB does: the task's DataTruncationErrorPolicy, or STOP_TASK when the source
    endpoint's ``FailTasksOnLobTruncation`` is set ("the task fails instead of truncating").

    Example:
        >>> truncation_policy({"ErrorBehavior": {"DataTruncationErrorPolicy": "SUSPEND_TABLE"}},
        ...                   False)
        'SUSPEND_TABLE'
    """
    if fail_tasks_on_lob_truncation:
        return "STOP_TASK"
    policy = str(settings.get("ErrorBehavior", {}).get("DataTruncationErrorPolicy", "LOG_ERROR"))
    return policy if policy in TRUNCATION_POLICIES else "LOG_ERROR"


def supports_lobs(settings: dict[str, Any]) -> bool:
    """Whether LOB columns are migrated at all (``TargetMetadata.SupportLobs``, default true).

    Example:
        >>> supports_lobs({}), supports_lobs({"TargetMetadata": {"SupportLobs": False}})
        (True, False)
    """
    return bool(settings.get("TargetMetadata", {}).get("SupportLobs", True))


def limited_lob_size(settings: dict[str, Any]) -> int | None:
    """The size in bytes a LOB is cut at under the task's settings (``LobMaxSize`` KB, in every
    LOB mode an S3 target has), or None when LOB columns are not migrated.

    Example:
        >>> limited_lob_size({"TargetMetadata": {"FullLobMode": True, "LobMaxSize": 64}})
        65536
    """
    if not supports_lobs(settings):
        return None
    return int(settings.get("TargetMetadata", {}).get("LobMaxSize", 32)) * 1024


def unsupported_lob_mode(settings: dict[str, Any]) -> str | None:
    """What the task asks for that an S3 target does not support, as a message, or None.

    Example:
        >>> print(unsupported_lob_mode({"TargetMetadata": {"FullLobMode": True}}))
        FullLobMode is true: an S3 target supports neither full nor inline LOB mode, so LOB values are cut at LobMaxSize (32 KB) as in limited LOB mode. Raise LobMaxSize to keep them.
    """
    metadata = settings.get("TargetMetadata", {})
    if not supports_lobs(settings):
        return None
    size = int(metadata.get("LobMaxSize", 32))
    if metadata.get("FullLobMode", False):
        asked = "FullLobMode is true"
    elif int(metadata.get("InlineLobMaxSize", 0) or 0) > 0:
        asked = f"InlineLobMaxSize is {metadata['InlineLobMaxSize']}"
    else:
        return None
    return (
        f"{asked}: an S3 target supports neither full nor inline LOB mode, so LOB values are "
        f"cut at LobMaxSize ({size} KB) as in limited LOB mode. Raise LobMaxSize to keep them."
    )
