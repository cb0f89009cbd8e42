"""The project's Prefect automations: ``cdc_alerts.yaml`` (a notification when the CDC watch
says the replication is unhealthy, and one when the watch itself goes silent), created against
the Prefect API with a notification block's id filled in.

Example:
    >>> [a["name"] for a in load()["automations"]]
    ['dms-cdc-unhealthy', 'dms-cdc-watch-silent']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FILE = Path(__file__).with_name("cdc_alerts.yaml")
PLACEHOLDER = "BLOCK_DOCUMENT_ID"


def load() -> dict[str, Any]:
    """The automations file, as ``prefect automation create --from-file`` reads it."""
    document: dict[str, Any] = yaml.safe_load(FILE.read_text())
    return document


def specs(block_document_id: str, silence_seconds: float | None = None) -> list[dict[str, Any]]:
    """The automations with the notification block's id (and the watch's silence) filled in."""
    automations: list[dict[str, Any]] = load()["automations"]
    for automation in automations:
        for action in automation["actions"]:
            if action.get("block_document_id") == PLACEHOLDER:
                action["block_document_id"] = block_document_id
        if silence_seconds is not None and automation["trigger"]["posture"] == "Proactive":
            automation["trigger"]["within"] = silence_seconds
    return automations


async def create(block_name: str, silence_seconds: float | None = None) -> list[str]:
    """Create (or replace, by name) the automations, notifying through the block named
    ``block_name`` (any notification block: a webhook, Slack, Microsoft Teams, PagerDuty).

    Returns:
        The automations' ids.

    Raises:
        ValueError: no notification block has that name.
    """
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    ids = []
    async with get_client() as client:
        block_id = await _block_id(client, block_name)
        for spec in specs(block_id, silence_seconds):
            for existing in await client.read_automations_by_name(spec["name"]):
                await client.delete_automation(existing.id)
            ids.append(str(await client.create_automation(AutomationCore.model_validate(spec))))
    return ids


async def _block_id(client: Any, name: str) -> str:
    """The id of the block named ``name`` (or ``<type>/<name>``, as ``prefect block ls`` shows).

    Raises:
        ValueError: none has that name, or blocks of several types do.
    """
    kind, _, bare = name.rpartition("/")
    found = [
        document for document in await client.read_block_documents(include_secrets=False)
        if document.name == bare and (not kind or document.block_type.slug == kind)
    ]  # fmt: skip
    if len(found) != 1:
        which = "No" if not found else f"{len(found)}"
        raise ValueError(
            f"{which} notification block named {name!r}"
            + (": name it as <type>/<name>." if found else ".")
        )
    return str(found[0].id)
