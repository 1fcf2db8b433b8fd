"""Client-side pacing that mirrors Modoboa's own request throttles, so the gateway never trips them.

Modoboa (Django REST framework) throttles every API token with three sliding windows:

* ``user``: all requests of the token, 300 per minute by default;
* ``ddos``: writes (create, update, delete, custom actions) to one URL pattern, 5 per second;
* ``ddos_lesser``: reads (list, retrieve) of one URL pattern, 200 per minute.

The two per-pattern windows count one shared history: a GET search on ``/accounts/`` and a
POST to ``/accounts/`` land in the same log, so searches eat into the 5 writes per second.
``Pacer`` keeps the same logs on this side and holds each request until all its windows
have room, in arrival order per pattern (a waiting write is not starved by reads behind it).
Windows are widened by a small margin because Modoboa stamps a request when its worker
gets to it, not when it was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

WINDOW_MARGIN = 0.25
"""Fraction added to each window: Modoboa's own timestamps lag ours by a variable delay."""


@dataclass(frozen=True)
class Rates:
    """Modoboa's throttle rates for the gateway's token (0 turns a window off)."""

    requests_per_minute: int = 300
    writes_per_second: int = 5
    reads_per_minute: int = 200


class TooLong(Exception):
    """Admission would take longer than the caller may wait; nothing was sent."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the throttle mirror needs {wait:.1f}s")
        self.wait = wait


def _delay(stamps: deque[float], limit: int, period: float, now: float) -> float:
    """Seconds until one more request fits ``limit`` per ``period`` (0 when it fits now, or no limit)."""
    if limit <= 0:
        return 0.0
    recent = 0
    for stamp in reversed(stamps):
        if stamp <= now - period:
            break
        recent += 1
    if recent < limit:
        return 0.0
    # The request that must leave the window first is the limit-th most recent one.
    return stamps[len(stamps) - limit] + period - now


def _trim(stamps: deque[float], keep: float, now: float) -> None:
    while stamps and stamps[0] <= now - keep:
        stamps.popleft()


@dataclass
class _Pattern:
    """One URL pattern's shared history, read with the read or the write window."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stamps: deque[float] = field(default_factory=deque)
    paused_until: float = 0.0


class Pacer:
    def __init__(self, rates: Rates, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.rates = rates
        self._clock = clock
        self._sleep = sleep
        scale = 1 + WINDOW_MARGIN
        self._global_stamps: deque[float] = deque()
        self._global_period = 60.0 * scale
        self._global_lock = asyncio.Lock()
        self._global_paused_until = 0.0
        self._patterns: dict[str, _Pattern] = {}
        self._write_period = 1.0 * scale
        self._read_period = 60.0 * scale
        self.waited_s = 0.0
        self.waits = 0

    def _pattern(self, name: str) -> _Pattern:
        pattern = self._patterns.get(name)
        if pattern is None:
            pattern = self._patterns[name] = _Pattern()
        return pattern

    def _pattern_delay(self, pattern: _Pattern, write: bool, now: float) -> float:
        limit, period = ((self.rates.writes_per_second, self._write_period) if write
                         else (self.rates.reads_per_minute, self._read_period))
        # Keep a minute of history: reads look that far back, writes only a second.
        _trim(pattern.stamps, self._read_period, now)
        return max(_delay(pattern.stamps, limit, period, now), pattern.paused_until - now)

    async def admit(self, pattern_name: str, write: bool, max_wait: float) -> None:
        """Wait until a request to ``pattern_name`` fits every window, then count it as sent.

        Raises ``TooLong`` (without counting anything) when that would take more than ``max_wait``.
        """
        pattern = self._pattern(pattern_name)
        started = self._clock()
        async with pattern.lock:
            await self._sleep_while(lambda now: self._pattern_delay(pattern, write, now), started, max_wait)
            async with self._global_lock:
                await self._sleep_while(self._global_delay, started, max_wait)
                now = self._clock()
                self._global_stamps.append(now)
                pattern.stamps.append(now)
        waited = self._clock() - started
        if waited > 0.001:
            self.waits += 1
            self.waited_s += waited

    def _global_delay(self, now: float) -> float:
        _trim(self._global_stamps, self._global_period, now)
        delay = _delay(self._global_stamps, self.rates.requests_per_minute, self._global_period, now)
        return max(delay, self._global_paused_until - now)

    async def _sleep_while(self, delay_at: Callable[[float], float], started: float, max_wait: float) -> None:
        while True:
            now = self._clock()
            delay = delay_at(now)
            if delay <= 0:
                return
            if now + delay - started > max_wait:
                raise TooLong(now + delay - started)
            await self._sleep(delay)

    def pause(self, pattern_name: str | None, seconds: float) -> None:
        """Modoboa throttled us anyway (another client on the token?): hold requests for ``seconds``.

        A 429 does not say which window it came from. A wait of a second or less can only be
        a per-pattern write window; a longer one comes from a minute window, most likely the
        token's own, so then every pattern waits.
        """
        until = self._clock() + seconds
        if pattern_name is not None:
            pattern = self._pattern(pattern_name)
            pattern.paused_until = max(pattern.paused_until, until)
        if pattern_name is None or seconds > 1.0:
            self._global_paused_until = max(self._global_paused_until, until)
