"""Fault injection: answer a share of API calls with throttling or server errors, as AWS does under
load, so clients' retries can be tested. Off by default.

Set ``LOCALDMS_FAULTS`` (or ``localdms serve --faults``) to ``throttle=R,error=R[,seed=N]``: each
API request is answered ``400 ThrottlingException`` with probability ``throttle`` and ``503
ServiceUnavailable`` with probability ``error``, before it reaches the backend (so a refused call
changes nothing). ``GET /health`` is never refused.

Example:
    >>> FaultInjector.parse("throttle=0.5,seed=1").throttle
    0.5
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

THROTTLING = (400, "ThrottlingException", "Rate exceeded")
UNAVAILABLE = (503, "ServiceUnavailable", "Service unavailable (injected by LOCALDMS_FAULTS)")


@dataclass
class FaultInjector:
    throttle: float = 0.0
    error: float = 0.0
    seed: int | None = None
    injected: dict[str, int] = field(default_factory=lambda: {"throttle": 0, "error": 0})
    _random: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 (test faults, not secrets)

    @classmethod
    def parse(cls, text: str | None) -> FaultInjector:
        """Read ``throttle=R,error=R,seed=N``; ValueError naming what is wrong."""
        values: dict[str, float] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("throttle", "error", "seed"):
                raise ValueError(
                    f"LOCALDMS_FAULTS part {part!r} is not valid: use throttle=R, error=R, seed=N"
                )
            values[key] = float(value)
        injector = cls(
            throttle=values.get("throttle", 0.0),
            error=values.get("error", 0.0),
            seed=int(values["seed"]) if "seed" in values else None,
        )
        if not (0 <= injector.throttle <= 1 and 0 <= injector.error <= 1) or (
            injector.throttle + injector.error > 1
        ):
            raise ValueError(
                "LOCALDMS_FAULTS rates must be between 0 and 1 and add up to 1 at most"
            )
        return injector

    @property
    def enabled(self) -> bool:
        return self.throttle > 0 or self.error > 0

    def pick(self) -> tuple[int, str, str] | None:
        """The fault to answer this request with, or None to serve it."""
        if not self.enabled:
            return None
        with self._lock:
            draw = self._random.random()
            if draw < self.throttle:
                self.injected["throttle"] += 1
                return THROTTLING
            if draw < self.throttle + self.error:
                self.injected["error"] += 1
                return UNAVAILABLE
        return None
