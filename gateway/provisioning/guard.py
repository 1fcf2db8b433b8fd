"""Backend calls under a concurrency budget and a circuit breaker, counted and timed.

Every call to an adapter goes through ``BackendGuard.call`` so that back-pressure, the
breaker and call accounting live in one place. Errors pass through unchanged: they are
domain errors until the HTTP edge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, Protocol, TypeVar

import structlog

from adapters import telemetry
from adapters.base import AlreadyExists, NotFound, RateLimited, Rejected, Unavailable
from gateway.provisioning.breaker import FAILURE, UNSETTLED, CircuitBreaker
from gateway.provisioning.errors import CircuitOpen, Overloaded

P = ParamSpec("P")
R = TypeVar("R")

log = structlog.get_logger("gateway.backend")


class CallObserver(Protocol):
    """Told about every backend call: its operation, outcome label and duration."""

    def __call__(self, operation: str, outcome: str, seconds: float) -> None: ...


def outcome_label(exc: BaseException | None) -> str:
    """How a backend call ended, as metrics and the breaker see it."""
    if exc is None:
        return "ok"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, AlreadyExists):
        return "conflict"
    if isinstance(exc, Rejected):
        return "rejected"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, Unavailable):
        return FAILURE
    return UNSETTLED


class BackendGuard:
    def __init__(self, concurrency: int, queue_timeout: float, *, adapter_counts_calls: bool = False) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._adapter_counts_calls = adapter_counts_calls
        self._queue_timeout = queue_timeout
        self.calls = 0
        self.in_flight = 0
        self.breaker: CircuitBreaker | None = None
        self.observer: CallObserver | None = None

    async def _acquire(self) -> None:
        """A backend slot, or Overloaded once the queue wait is over (no timer when a slot is free)."""
        try:
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), self._queue_timeout)
            else:
                await self._slots.acquire()
        except TimeoutError:
            telemetry.note_throttle("concurrency")
            raise Overloaded(
                "Too many concurrent requests for this tenant's mail platform; retry later.",
                retry_after=max(1.0, self._queue_timeout),
            ) from None
        self.in_flight += 1

    def _admit(self) -> bool:
        """Pass the breaker (True for its trial call) or raise CircuitOpen."""
        if self.breaker is None:
            return False
        try:
            return self.breaker.admit()
        except CircuitOpen:
            telemetry.note_throttle("circuit_open")
            raise

    async def call(self, operation: str, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one adapter call, labelled ``operation`` in metrics and logs."""
        if not self._adapter_counts_calls:
            telemetry.spend()  # the adapter does not count its platform calls: this one call is one
        trial = self._admit()
        outcome = UNSETTLED
        try:
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
                except BaseException as exc:
                    outcome = outcome_label(exc)
                    if isinstance(exc, Unavailable):
                        telemetry.note_throttle(
                            "backend_rate_limited" if isinstance(exc, RateLimited) else "backend_unavailable")
                    raise
                else:
                    outcome = "ok"
                    return result
                finally:
                    self._observe(operation, outcome, time.perf_counter() - started, stats, retries_before)
            finally:
                self.in_flight -= 1
                self._slots.release()
        finally:
            if self.breaker is not None:
                self.breaker.settle(outcome, trial)

    def _observe(self, operation: str, outcome: str, seconds: float,
                 stats: telemetry.RequestStats | None, retries_before: int) -> None:
        if self.observer is not None:
            self.observer(operation, outcome, seconds)
        if log.is_enabled_for(logging.DEBUG):
            log.debug("backend call", operation=operation, outcome=outcome, duration_ms=round(seconds * 1000, 2),
                      retries=stats.retries - retries_before if stats is not None else None)
