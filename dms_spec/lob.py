"""How DMS treats LOBs from a PostgreSQL source (AWS DMS User Guide: CHAP_Tasks.LOBSupport,
CHAP_Tasks.CustomizingTasks.TaskSettings.TargetMetadata, CHAP_Source.PostgreSQL data types).

"In limited LOB mode, you set a maximum LOB size for DMS to accept ... LOBs that exceed the
maximum LOB size are truncated, and a warning is issued to the log file"; "Any LOBs that are
larger than this value is truncated to this value" (``LobMaxSize``, in kilobytes, default 32).
Limited LOB mode is the default (``SupportLobs`` true, ``FullLobMode`` false,
``LimitedSizeLobMode`` true); an S3 target supports neither full nor inline LOB mode.

The guide does not say in which unit a character LOB is measured; localdms counts characters
for text-like LOBs (text, json, jsonb, xml, arrays, as their text) and bytes for bytea, so a
value of exactly ``LobMaxSize`` KB is kept whole and one more is cut.

Example:
    >>> limited_lob_size({"TargetMetadata": {"LobMaxSize": 32}})
    32768
    >>> limited_lob_size({"TargetMetadata": {"FullLobMode": True}}) is None
    True
    >>> is_lob_type("jsonb"), is_lob_type("_int4"), is_lob_type("varchar")
    (True, True, False)
"""

from __future__ import annotations

from typing import Any

LOB_BASE_TYPES = frozenset({"text", "bytea", "json", "jsonb", "xml"})
"""PostgreSQL types DMS migrates as LOBs (NCLOB or BLOB), with every array type (``_int4``...)."""


def is_lob_type(base_type: str) -> bool:
    """Whether DMS migrates a column of this base type (``pg_type.typname``) as a LOB."""
    return base_type in LOB_BASE_TYPES or base_type.startswith("_")


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


def limited_lob_size(settings: dict[str, Any]) -> int | None:
    """The size a LOB is cut at (characters, or bytes for bytea) under the task's settings, or
    None when LOBs are not cut (full LOB mode, or LOB support off)."""
    metadata = settings.get("TargetMetadata", {})
    if not metadata.get("SupportLobs", True) or metadata.get("FullLobMode", False):
        return None
    if not metadata.get("LimitedSizeLobMode", True):
        return None
    return int(metadata.get("LobMaxSize", 32)) * 1024
