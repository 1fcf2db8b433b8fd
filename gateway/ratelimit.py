"""A token bucket: a tenant's request rate, failed authentications per client address."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """``rate`` requests per second, bursts of ``burst`` (default: two seconds' worth)."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate * 2)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> float | None:
        """Take one token: None when one was free, else the seconds until one will be."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate

    def full(self) -> bool:
        """Whether the bucket has refilled completely (its owner may forget it)."""
        self._refill()
        return self._tokens >= self.capacity

    def tokens_left(self) -> float:
        self._refill()
        return self._tokens

    def seconds_until_token(self) -> float:
        """Seconds until one token is free (0 when one is)."""
        return max(0.0, (1.0 - self.tokens_left()) / self.rate)
