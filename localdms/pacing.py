"""How localdms shows a status for a while, as DMS does while it works: the one place for it.

Two cases, one way each:

- **A status nothing waits behind** (an endpoint, instance or task ``creating``, ``modifying``,
  ``moving``, ``deleting``; a connection ``testing``): the resource's ``schedule(status, then,
  seconds)`` (``localdms/backend/resources.py``); the backend advances it lazily whenever it is
  read, so boto3's waiters see it as on AWS.
- **A status a piece of work starts behind** (a run ``starting`` and ``running``, an assessment
  ``starting``): the work holds its next step until the status has shown for its time
  (``hold``, ``ahold`` here), so nothing is written before DMS would write it. DMS Serverless's
  starting phases are read off the same clock: each shows for ``transition_seconds`` from the
  start (``ReplicationConfig.replication_status``), while the run holds for all of them.

Example:
    >>> remaining(2.0, since=10.0, now=11.5), remaining(2.0, since=10.0, now=13.0)
    (0.5, 0.0)
"""

from __future__ import annotations

import asyncio
import time


def remaining(seconds: float, since: float, now: float | None = None) -> float:
    """How much longer a status shown since ``since`` (``time.monotonic``) must show."""
    return max(0.0, seconds - ((time.monotonic() if now is None else now) - since))


def hold(seconds: float, since: float) -> None:
    """Wait until a status shown since ``since`` has shown for ``seconds`` (on a thread)."""
    time.sleep(remaining(seconds, since))


async def ahold(seconds: float, since: float) -> None:
    """``hold`` in a run's event loop."""
    await asyncio.sleep(remaining(seconds, since))
