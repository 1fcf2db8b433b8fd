"""A per-tenant circuit breaker in front of the backend.

When the mail platform is down, every SCIM request would otherwise wait out the
client's full retry budget (seconds) before answering 503, tying up a backend slot
and a connection each. After ``threshold`` consecutive failures the breaker answers
503 at once for ``open_seconds``, then lets a single trial call through: its success
closes the circuit, its failure opens it again.

Only "unavailable" counts as a failure. A verdict (not found, conflict, rejected) or a
rate-limit answer proves the platform is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.provisioning.errors import CircuitOpen

CLOSED = 0
OPEN = 1
HALF_OPEN = 2
STATE_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}

FAILURE = "transient"
UNSETTLED = "error"
"""The call never got an answer we can judge (queue timeout, cancellation, a bug)."""


class CircuitBreaker:
    def __init__(self, threshold: int, open_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened_total = 0
        self._opened_at = 0.0
        self._trial = False

    def admit(self) -> bool:
        """Let a call through (True if it is the trial call), or raise CircuitOpen with the seconds until the
        next trial."""
        if self.state == CLOSED:
            return False
        if self.state == OPEN:
            remaining = self._opened_at + self.open_seconds - self._clock()
            if remaining > 0:
                raise self._refusal(remaining)
            self.state = HALF_OPEN
        if self._trial:
            # One probe at a time: a platform that just came back should not get the whole backlog at once.
            raise self._refusal(1.0)
        self._trial = True
        return True

    def settle(self, outcome: str, trial: bool) -> None:
        """Record how an admitted call ended (an outcome label of BackendGuard)."""
        if trial:
            self._trial = False
        if outcome == UNSETTLED:
            return
        if outcome != FAILURE:
            self.failures = 0
            self.state = CLOSED
            return
        self.failures += 1
        if trial or self.failures >= self.threshold:
            if self.state != OPEN:
                self.opened_total += 1
            self.state = OPEN
            self._opened_at = self._clock()

    def _refusal(self, retry_after: float) -> CircuitOpen:
        return CircuitOpen(
            f"The mail platform failed {self.failures} times in a row; the gateway stops calling it for "
            f"{self.open_seconds:g}s to let it recover. Retry later.",
            retry_after=retry_after,
        )
