"""Running behind a TLS-terminating reverse proxy: who the client is, and which URL it used.

Entra caches ``meta.location`` and the ``Location`` header; behind a proxy the gateway
would otherwise hand out its own internal ``http://10.0.0.5:8080`` URLs. The proxy's
X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-For are honoured only when the
connection comes from one of the ``trusted_proxies`` (addresses or CIDRs): anyone else
could make the gateway advertise any host, or pretend to be another client.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

CLIENT_IP_KEY: web.RequestKey[str] = web.RequestKey("client_ip", str)
_SCHEMES = frozenset({"http", "https"})
# A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?")


@functools.lru_cache(maxsize=4096)
def parse_address(text: str | None) -> Address | None:
    # Cached: every request parses its peer's address, and a gateway hears from a handful of peers.
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().removeprefix("[").split("]")[0])
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket (::ffff:10.0.0.1) is that IPv4 client.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client(self, request: web.Request, peer: Address | None) -> Address | None:
        """The client's address: the ``peer``, or, through trusted proxies, the last hop they were told of."""
        address = peer
        if not self.trusts(address):
            return address
        hops = [parse_address(h) for h in request.headers.getall("X-Forwarded-For", []) for h in h.split(",")]
        for hop in reversed(hops):
            if hop is None:
                break  # a garbled entry: trust nothing before it
            if not self.trusts(hop):
                return hop
            address = hop
        return address


@functools.lru_cache(maxsize=4096)
def _text(address: Address | None) -> str:
    return str(address) if address is not None else "unknown"


def client_ip(request: web.Request) -> str:
    """The client's address as text: set by ``forwarded`` behind trusted proxies, else the peer's."""
    known = request.get(CLIENT_IP_KEY)
    return known if known is not None else _text(parse_address(request.remote))


def _first(value: str | None) -> str | None:
    """The first entry of a header a chain of proxies appends to ("a, b")."""
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None


def forwarded(proxies: TrustedProxies) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = parse_address(request.remote)
        client = proxies.client(request, peer)
        if proxies.trusts(peer):
            proto = (_first(request.headers.get("X-Forwarded-Proto")) or "").lower()
            host = _first(request.headers.get("X-Forwarded-Host"))
            scheme = proto if proto in _SCHEMES else request.scheme
            if host is None or not _HOST.fullmatch(host):
                host = request.host
            if scheme != request.scheme or host != request.host:
                request = request.clone(scheme=scheme, host=host)
        request[CLIENT_IP_KEY] = _text(client)
        return await handler(request)

    return middleware
