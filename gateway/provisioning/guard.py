"""Backend calls under a concurrency budget, with adapter exceptions shaped as SCIM errors.

Every call to an adapter goes through ``BackendGuard.call`` so that back-pressure
(429 when the budget stays full), error shaping (503/429 + Retry-After, 4xx with
scimType) and call counting live in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ParamSpec, TypeVar

from adapters.base import AlreadyExists, Rejected, Transient
from gateway.scim.errors import ScimError

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_RETRY_AFTER = 5.0


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

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._queue_timeout)
        except TimeoutError:
            raise ScimError(
                429,
                "Too many concurrent requests for this tenant's mail platform; retry later.",
                retry_after=max(1.0, self._queue_timeout),
            ) from None
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def call(self, fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run one adapter call; Transient and Rejected become SCIM errors.

        NotFound and AlreadyExists pass through: only the caller knows what they mean there.
        """
        async with self._slot():
            self.calls += 1
            try:
                return await fn(*args, **kwargs)
            except AlreadyExists:
                raise
            except Transient as exc:
                raise transient_error(exc) from exc
            except Rejected as exc:
                raise rejected_error(exc) from exc


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
        raise ScimError(429, f"This tenant's request rate limit ({self.rate:g}/s) is exceeded; retry later.",
                        retry_after=wait)
