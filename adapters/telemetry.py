"""Per-request accounting of backend work, shared by the gateway and the adapters' clients.

A context variable rather than the clients' process-wide counters: one client serves
many requests at once, so a before/after delta of its counters would mix requests.
Tasks spawned by a request copy the context and with it a reference to the same
``RequestStats``, so their work is counted for that request too.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestStats:
    backend_calls: int = 0
    retries: int = 0
    throttle_reason: str | None = None
    """Why the gateway answered 429/503 (e.g. ``concurrency``, ``circuit_open``), set where it decided."""


CURRENT: ContextVar[RequestStats | None] = ContextVar("scim_gateway_request_stats", default=None)


def current() -> RequestStats | None:
    return CURRENT.get()


def note_retry() -> None:
    """Count one retry of a backend call for the request being served (if any)."""
    stats = CURRENT.get()
    if stats is not None:
        stats.retries += 1


def note_throttle(reason: str) -> None:
    stats = CURRENT.get()
    if stats is not None:
        stats.throttle_reason = reason
