"""Retry timing shared by the backends' clients (part of the backend SDK).

Backoff is exponential with full jitter, at least as long as the platform's Retry-After
when it gave one, and every attempt of one logical call shares one deadline: no attempt
starts with less than ``MIN_ATTEMPT_S`` left. What may be retried at all (a read, an
idempotent write, a call that never reached the platform) is each client's decision.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from tenacity import RetryCallState

from adapters.base import Unavailable

MIN_ATTEMPT_S = 0.05
"""No new attempt starts with less time than this left before the deadline."""


class Retryable(Exception):
    """An attempt failed in a way another attempt may fix; ``final`` is raised if none does.

    ``retry_after``: how long the platform asked us to wait before the next attempt, if it said.
    """

    def __init__(self, final: Unavailable, retry_after: float | None = None) -> None:
        super().__init__(final.detail)
        self.final = final
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    attempt_timeout: float = 5.0
    connect_timeout: float = 2.0
    deadline: float = 20.0
    """Budget for one logical call, retries and waits included."""
    max_attempts: int = 4
    backoff_initial: float = 0.2
    backoff_max: float = 3.0
    fallback_retry_after: float = 5.0
    """Retry-After hint given to the caller when the platform gave none."""

    def should_stop(self, state: RetryCallState, deadline_at: float) -> bool:
        """Stop after the last attempt, or when the next one would start too close to the deadline."""
        if state.attempt_number >= self.max_attempts:
            return True
        starts_at = asyncio.get_running_loop().time() + state.upcoming_sleep
        return starts_at > deadline_at - MIN_ATTEMPT_S

    def backoff(self, attempt_number: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt_number + 1``."""
        if retry_after is not None:
            # Spread clients that were all told the same Retry-After.
            return retry_after + rng.uniform(0, self.backoff_initial)
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(attempt_number - 1, 30))
        return rng.uniform(0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return max(0.0, seconds) if math.isfinite(seconds) else None
