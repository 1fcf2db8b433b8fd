"""Refusals the gateway decides itself in front of the backend, as backend domain errors.

They say "not now" exactly as an unavailable or rate-limiting platform would, so the
services treat them alike (nothing was sent, so nothing may have been applied), and the
HTTP edge answers 429 or 503 with Retry-After. Their detail is the whole message.
"""

from __future__ import annotations

from adapters.base import RateLimited, Unavailable


class Backpressure(Unavailable):
    """Marks a refusal made by the gateway, not by the platform."""


class CircuitOpen(Backpressure):
    """The platform failed too often in a row; calls are held back while it recovers."""


class Overloaded(RateLimited, Backpressure):
    """The tenant's budget of concurrent backend calls stayed full for the whole queue wait."""
