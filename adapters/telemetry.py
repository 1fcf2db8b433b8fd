"""Per-request accounting of backend work, shared by the gateway and the adapters' clients.

A context variable rather than the clients' process-wide counters: one client serves
many requests at once, so a before/after delta of its counters would mix requests.
Tasks spawned by a request copy the context and with it a reference to the same
``RequestStats``, so their work is counted for that request too.

Part of the backend SDK: a backend that talks to its platform over the network calls
``spend()`` before every request it sends (retries included) and declares
``Capabilities.counts_platform_calls``; the gateway then bounds each SCIM request's
calls to the platform by the tenant's budget.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from adapters.base import Rejected


@dataclass(slots=True)
class RequestStats:
    backend_calls: int = 0
    """Adapter calls made by the gateway."""
    platform_calls: int = 0
    """Requests sent to the mail platform, as the backend counts them (see ``spend``)."""
    retries: int = 0
    throttle_reason: str | None = None
    """Why the gateway answered 429/503 (e.g. ``concurrency``, ``circuit_open``), set where it decided."""
    budget: int | None = None
    """Most platform calls this request may make (None: unbounded)."""


class BudgetExhausted(Rejected):
    """The request would need more calls to the mail platform than its tenant's budget allows."""

    def __init__(self, budget: int) -> None:
        super().__init__(f"the request needs more than {budget} calls to the mail platform, this tenant's "
                         "budget per request", scim_type="tooMany")
        self.budget = budget


CURRENT: ContextVar[RequestStats | None] = ContextVar("scim_gateway_request_stats", default=None)


def current() -> RequestStats | None:
    return CURRENT.get()


def spend() -> None:
    """Count one call to the platform for the request being served; BudgetExhausted once over its budget.

    Raised before the call is sent: nothing was applied.
    """
    stats = CURRENT.get()
    if stats is None:
        return
    stats.platform_calls += 1
    if stats.budget is not None and stats.platform_calls > stats.budget:
        raise BudgetExhausted(stats.budget)


def note_retry() -> None:
    """Count one retry of a backend call for the request being served (if any)."""
    stats = CURRENT.get()
    if stats is not None:
        stats.retries += 1


def note_throttle(reason: str) -> None:
    stats = CURRENT.get()
    if stats is not None:
        stats.throttle_reason = reason
