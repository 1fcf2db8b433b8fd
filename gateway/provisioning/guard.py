"""Backend calls under a concurrency budget, with adapter exceptions shaped as SCIM errors.

Every call to an adapter goes through ``BackendGuard.call`` so that back-pressure
(429 when the budget stays full), error shaping (503/429 + Retry-After, 4xx with
scimType) and call counting live in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import structlog

from adapters import telemetry
from adapters.base import AlreadyExists, NotFound, Rejected, Transient
from gateway.provisioning.breaker import UNSETTLED, CircuitBreaker
from gateway.scim.errors import ScimError

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_RETRY_AFTER = 5.0
log = structlog.get_logger("gateway.backend")


class CallObserver(Protocol):
    """Told about every backend call: its operation, outcome label and duration."""

    def __call__(self, operation: str, outcome: str, seconds: float) -> None: ...


_OPERATION_NAMES: dict[Any, str] = {}


def operation_name(fn: Callable[..., Any]) -> str:
    """A stable label for the adapter call ``fn`` (cached per function, not per bound method)."""
    func = getattr(fn, "__func__", fn)
    name = _OPERATION_NAMES.get(func)
    if name is None:
        name = getattr(func, "__name__", "call")
        rt = getattr(getattr(fn, "__self__", None), "rt", None)
        if name.startswith("_") and rt is not None:
            # A service's private wrapper (``UserService._find``) calls the adapter's find_users.
            name = f"{name.strip('_')}_{str(rt.name).lower()}s"
        if "<locals>" not in getattr(func, "__qualname__", "<locals>"):
            # Closures are new objects on every call: caching them would grow without bound.
            _OPERATION_NAMES[func] = name
    return name


def transient_error(exc: Transient) -> ScimError:
    retry_after = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
    if exc.rate_limited:
        return ScimError(429, f"The mail platform is rate-limiting the gateway: {exc.detail}",
                         retry_after=retry_after)
    return ScimError(503, f"The mail platform is unavailable: {exc.detail}", retry_after=retry_after)


def rejected_error(exc: Rejected) -> ScimError:
    return ScimError(exc.status, f"The mail platform rejected the request: {exc.detail}", exc.scim_type)


class BackendGuard:
    def __init__(self, concurrency: int, queue_timeout: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._queue_timeout = queue_timeout
        self.calls = 0
        self.in_flight = 0
        self.breaker: CircuitBreaker | None = None
        self.observer: CallObserver | None = None

    async def _acquire(self) -> None:
        """A backend slot, or 429 once the queue wait is over (no timer when a slot is free)."""
        try:
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), self._queue_timeout)
            else:
                await self._slots.acquire()
        except TimeoutError:
            telemetry.note_throttle("concurrency")
            raise ScimError(
                429,
                "Too many concurrent requests for this tenant's mail platform; retry later.",
                retry_after=max(1.0, self._queue_timeout),
            ) from None
        self.in_flight += 1

    def _release(self) -> None:
        self.in_flight -= 1
        self._slots.release()

    async def call(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one adapter call; Transient and Rejected become SCIM errors.

        NotFound and AlreadyExists pass through: only the caller knows what they mean there.
        """
        breaker = self.breaker
        trial = False
        if breaker is not None:
            try:
                trial = breaker.admit()
            except ScimError:
                telemetry.note_throttle("circuit_open")
                raise
        outcome = UNSETTLED
        try:
            # Acquire/release by hand: an async context manager per backend call costs more than the call
            # to the in-memory backend itself.
            await self._acquire()
            try:
                self.calls += 1
                stats = telemetry.current()
                retries_before = 0
                if stats is not None:
                    stats.backend_calls += 1
                    retries_before = stats.retries
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                    outcome = "ok"
                    return result
                except NotFound:
                    outcome = "not_found"
                    raise
                except AlreadyExists:
                    outcome = "conflict"
                    raise
                except Transient as exc:
                    outcome = "rate_limited" if exc.rate_limited else "transient"
                    telemetry.note_throttle("backend_rate_limited" if exc.rate_limited else "backend_unavailable")
                    raise transient_error(exc) from exc
                except Rejected as exc:
                    outcome = "rejected"
                    raise rejected_error(exc) from exc
                finally:
                    self._observe(fn, outcome, time.perf_counter() - started, stats, retries_before)
            finally:
                self._release()
        finally:
            if breaker is not None:
                breaker.settle(outcome, trial)

    def _observe(self, fn: Callable[..., Any], outcome: str, seconds: float,
                 stats: telemetry.RequestStats | None, retries_before: int) -> None:
        operation = operation_name(fn)
        if self.observer is not None:
            self.observer(operation, outcome, seconds)
        if log.is_enabled_for(logging.DEBUG):
            log.debug("backend call", operation=operation, outcome=outcome, duration_ms=round(seconds * 1000, 2),
                      retries=stats.retries - retries_before if stats is not None else None)


class RateLimiter:
    """Token bucket: ``rate`` requests per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate * 2)
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def acquire(self) -> None:
        """Take one token or raise 429 with the wait until one is free."""
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        wait = (1.0 - self._tokens) / self.rate
        telemetry.note_throttle("rate_limit")
        raise ScimError(429, f"This tenant's request rate limit ({self.rate:g}/s) is exceeded; retry later.",
                        retry_after=wait)
