"""Prefect settings that make a local run start reliably on a small, offline machine."""

from __future__ import annotations

import os

DEFAULTS = {
    # A fresh PREFECT_HOME takes ~29 s to start the temporary API here; the default allows 20.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # No network beyond package registries: do not try to send analytics.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def apply_local_defaults() -> None:
    """Set the defaults above unless the user already set them (call before importing prefect)."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
