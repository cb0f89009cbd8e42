"""Persistence of localdms's state: one JSON document in the state directory.

Written atomically (temporary file, fsync, rename), so a killed server never leaves a
half-written state file. The backend decides when: at once for a resource or task transition,
batched for table-level progress (``Persistence.save_soon`` in ``localdms/backend/persistence.py``). The file holds endpoint
passwords, so it is created readable by its owner only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "localdms-state.json"


class Store:
    """Loads and saves the backend's state under ``state_dir`` (nothing is kept when None)."""

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / STATE_FILE if state_dir is not None else None
        if state_dir is not None:
            _check_writable(state_dir)

    def load(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        with self.path.open(encoding="utf-8") as handle:
            data: dict[str, Any] = json.load(handle)
        return data

    def save(self, state: dict[str, Any]) -> None:
        if self.path is None:
            return
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _check_writable(state_dir: Path) -> None:
    """Create ``state_dir`` and prove it writable now, not at the first save.

    Raises:
        ValueError: it cannot be created or written, saying whose it is and what to do.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=state_dir).close()
    except OSError as exc:  # EACCES, EPERM, a read-only file system
        owner = state_dir.stat().st_uid if state_dir.exists() else None
        raise ValueError(
            f"localdms cannot write its state directory {state_dir}"
            + (f" (owned by uid {owner})" if owner is not None else "")
            + f" as uid {os.getuid()}: make it writable by this user (for a bind mount in "
            f"Docker: chown {os.getuid()} on the host directory), or use a named volume."
        ) from exc
