"""How DMS restarts a task after a recoverable error (AWS DMS User Guide:
CHAP_Tasks.CustomizingTasks.TaskSettings.ErrorHandling, the ``ErrorBehavior`` settings).

"An environmental error" (the source restarted, a lost connection, a target that refuses for a
while) does not fail the task at once: DMS restarts it ``RecoverableErrorCount`` times (-1, the
default: indefinitely; 0: never), waiting ``RecoverableErrorInterval`` seconds (5) before each
restart, doubled each time while ``RecoverableErrorThrottling`` is on (10, 20, 40 ...) up to
``RecoverableErrorThrottlingMax`` (1800); ``RecoverableErrorStopRetryAfterThrottlingMax`` (true)
"stops restarting the task after the maximum number of seconds ... is reached". The guide does
not say whether the restart that waits the maximum happens: here it does, and it is the last.

Example:
    >>> policy = RecoveryPolicy.from_settings({})  # DMS's defaults
    >>> [policy.delay(attempt) for attempt in (1, 2, 3, 9, 10, 11, 12)]
    [5.0, 10.0, 20.0, 1280.0, 1800.0, None, None]
    >>> RecoveryPolicy.from_settings({"RecoverableErrorCount": 0}).delay(1) is None
    True
    >>> RecoveryPolicy.from_settings({"RecoverableErrorThrottling": False}).delay(50)
    5.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecoveryPolicy:
    """``ErrorBehavior``'s recoverable-error settings, with DMS's defaults."""

    count: int = -1
    """RecoverableErrorCount: restarts allowed (-1: no limit, 0: none)."""
    interval: float = 5.0
    throttling: bool = True
    throttling_max: float = 1800.0
    stop_after_max: bool = True

    @classmethod
    def from_settings(cls, error_behavior: dict[str, Any]) -> RecoveryPolicy:
        """From a task's ``ErrorBehavior`` (missing members take DMS's defaults)."""

        def flag(name: str, default: bool) -> bool:
            value = error_behavior.get(name, default)
            return value if isinstance(value, bool) else str(value).lower() in ("true", "y", "1")

        return cls(
            count=int(error_behavior.get("RecoverableErrorCount", -1)),
            interval=float(error_behavior.get("RecoverableErrorInterval", 5)),
            throttling=flag("RecoverableErrorThrottling", True),
            throttling_max=float(error_behavior.get("RecoverableErrorThrottlingMax", 1800)),
            stop_after_max=flag("RecoverableErrorStopRetryAfterThrottlingMax", True),
        )

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait before restart number ``attempt`` (1 for the first), or None: no more
        restarts, the task stops with the error."""
        if self.count >= 0 and attempt > self.count:
            return None
        if not self.throttling:
            return self.interval
        wait = self.interval * 2.0 ** (attempt - 1)
        if wait <= self.throttling_max:
            return wait
        if not self.stop_after_max:
            return self.throttling_max
        earlier = self.interval * 2.0 ** (attempt - 2)
        return self.throttling_max if earlier < self.throttling_max else None
