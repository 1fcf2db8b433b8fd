"""Running behind a TLS-terminating reverse proxy (only with ``trust_proxy``).

Entra caches ``meta.location`` and the ``Location`` header; behind a proxy the gateway
would otherwise hand out its own internal ``http://10.0.0.5:8080`` URLs. With
``trust_proxy`` on, the proxy's X-Forwarded-Proto and X-Forwarded-Host name the URL
the client used. Off by default: a client that can reach the gateway directly could
otherwise make it advertise any host.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SCHEMES = frozenset({"http", "https"})
# A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?")


def _first(value: str | None) -> str | None:
    """The first entry of a header a chain of proxies appends to ("a, b")."""
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


@web.middleware
async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    proto = (_first(request.headers.get("X-Forwarded-Proto")) or "").lower()
    host = _first(request.headers.get("X-Forwarded-Host"))
    scheme = proto if proto in _SCHEMES else request.scheme
    if host is None or not _HOST.fullmatch(host):
        host = request.host
    if scheme != request.scheme or host != request.host:
        request = request.clone(scheme=scheme, host=host)
    return await handler(request)
