"""What the access log and the request metrics call a request, and the /metrics endpoint."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.ids import new_hex_id
from gateway.metrics import Metrics

METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
MAX_REQUEST_ID = 128

_RESOURCE_ACTIONS = {
    "": {"GET": "list", "HEAD": "list", "POST": "create"},
    "/.search": {"POST": "search"},
    "/{id}": {"GET": "get", "HEAD": "get", "PUT": "replace", "PATCH": "patch", "DELETE": "delete"},
}
_DISCOVERY = ("ServiceProviderConfig", "ResourceTypes", "Schemas")
_PLAIN = {"/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics", "/scim/v2/.search": "search"}
_UNMATCHED = ("-", "unknown")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_described: dict[tuple[str, str, str], tuple[str, str]] = {}


def safe_request_id(incoming: str | None) -> str:
    """The caller's X-Request-ID when it is safe to log and echo, else a new one.

    Only printable ASCII up to 128 characters: anything else could forge log lines or
    bloat every line of the request.
    """
    if incoming and len(incoming) <= MAX_REQUEST_ID and incoming.isascii() and incoming.isprintable() \
            and incoming.strip():
        return incoming
    return new_hex_id()


def describe(request: web.Request) -> tuple[str, str]:
    """(route template, operation) of a request, e.g. ("/scim/v2/Users/{id}", "users.patch").

    The template names the route, not the path, so ids and userNames never reach a
    metric label and the log line groups by endpoint.
    """
    resource = request.match_info.route.resource
    if resource is None:
        return _UNMATCHED
    canonical = resource.canonical
    kind = request.match_info.get("kind", "")
    # Any token is a valid method for the catch-all routes: keep the cache bounded.
    method = request.method if request.method in _METHODS else "OTHER"
    key = (canonical, method, kind)
    found = _described.get(key)
    if found is None:
        found = _described[key] = _name(canonical, method, kind)
    return found


def _name(canonical: str, method: str, kind: str) -> tuple[str, str]:
    # The SCIM routes accept "//" after /scim/v2 (Entra's doubled slash) through a {sep} variable.
    template = canonical.replace("{sep}", "/").replace("{kind}", kind)
    if template in _PLAIN:
        return template, _PLAIN[template]
    if kind:
        suffix = template.removeprefix(f"/scim/v2/{kind}")
        action = _RESOURCE_ACTIONS.get(suffix, {}).get(method)
        return template, f"{kind.lower()}.{action}" if action else "unknown"
    if template.removeprefix("/scim/v2/").split("/", 1)[0] in _DISCOVERY:
        return template, "discovery"
    return template, "unknown"


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
