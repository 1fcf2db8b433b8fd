"""Edge protection in front of authentication: client networks, and failed-token throttling."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable

from gateway.http.proxy import Network
from gateway.ratelimit import RateLimiter

MAX_TRACKED_ADDRESSES = 10_000
"""Addresses whose failed authentications are remembered; the oldest are forgotten first."""


def allows(networks: Iterable[Network], address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class EdgeGuard:
    """Which client addresses may try at all, and which have failed too often lately."""

    def __init__(self, tenant_networks: Iterable[list[Network]], failures_per_minute: int) -> None:
        lists = list(tenant_networks)
        # Before the token says which tenant it is, only an address no tenant admits can be refused.
        self.admitted: list[Network] | None = None if not lists or any(not n for n in lists) else \
            [network for networks in lists for network in networks]
        self.failures_per_minute = failures_per_minute
        self._failures: OrderedDict[str, RateLimiter] = OrderedDict()

    def admits(self, address: str) -> bool:
        return self.admitted is None or allows(self.admitted, address)

    def lockout(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        bucket = self._failures.get(address)
        if bucket is None or bucket.tokens_left() >= 1.0:
            return None
        return bucket.seconds_until_token()

    def failed(self, address: str) -> None:
        if not self.failures_per_minute:
            return
        bucket = self._failures.get(address)
        if bucket is None:
            if len(self._failures) >= MAX_TRACKED_ADDRESSES:
                self._forget_some()
            bucket = self._failures[address] = RateLimiter(self.failures_per_minute / 60.0,
                                                           burst=float(self.failures_per_minute))
        self._failures.move_to_end(address)
        bucket.take()

    def _forget_some(self) -> None:
        # Addresses whose bucket has refilled carry no information; drop those first, then the oldest.
        for address in [a for a, b in self._failures.items() if b.full()]:
            del self._failures[address]
        while len(self._failures) >= MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)
