"""Request id, access log, SCIM-shaped errors and bearer authentication."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters import telemetry
from adapters.base import BackendError
from gateway.http.body import ClientGone, UnreadableBody, read_body
from gateway.http.deadlines import Deadlines
from gateway.http.edge import EdgeGuard, allows
from gateway.http.errors import as_scim_error
from gateway.http.observe import describe, safe_request_id
from gateway.http.proxy import client_ip
from gateway.http.render import error_response
from gateway.logs import REQUEST_ID
from gateway.metrics import NO_TENANT, Metrics
from gateway.provisioning.idempotency import IdempotencyKeys, StoredReply, fingerprint
from gateway.scim.errors import ScimError
from gateway.scim.limits import check_unicode
from gateway.store.base import StoreBusy
from gateway.tenants import Tenant, TenantRegistry

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("gateway.http")

SCIM_PREFIX = "/scim/"
REGISTRY_KEY: web.AppKey[TenantRegistry] = web.AppKey("registry", TenantRegistry)
IDEMPOTENCY_KEY: web.AppKey[IdempotencyKeys] = web.AppKey("idempotency", IdempotencyKeys)
_REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")
TENANT_KEY: web.RequestKey[Tenant] = web.RequestKey("tenant", Tenant)
DEADLINES_KEY: web.AppKey[Deadlines] = web.AppKey("deadlines", Deadlines)
EDGE_KEY: web.AppKey[EdgeGuard] = web.AppKey("edge", EdgeGuard)


def _http_error(exc: web.HTTPException) -> ScimError:
    if exc.status == 404:
        return ScimError(404, "No such endpoint. The SCIM base URL is /scim/v2 (e.g. /scim/v2/Users).")
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        return ScimError(405, f"This endpoint does not accept this method; it accepts: {allow}.",
                         headers={"Allow": allow} if allow else None)
    if exc.status == 413:
        return ScimError(413, "The request body is larger than this gateway accepts.", "tooLarge")
    return ScimError(exc.status, exc.reason or "HTTP error")


def request_context(metrics: Metrics, deadlines: Deadlines) -> Middleware:
    """Request id in, request id out, one log line per request, every error as a SCIM Error."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = safe_request_id(request.headers.get("X-Request-ID"))
        started = time.perf_counter()
        request_id_token = REQUEST_ID.set(request_id)
        stats = telemetry.RequestStats()
        stats_token = telemetry.CURRENT.set(stats)
        metrics.in_flight += 1
        status = 500
        task = asyncio.current_task()
        if task is not None:
            deadlines.enter(task)
        try:
            try:
                response = await handler(request)
            except (ScimError, BackendError) as exc:
                response = error_response(as_scim_error(exc))
                if isinstance(exc, UnreadableBody):
                    response.force_close()  # the rest of the stream cannot be parsed as another request
            except ClientGone as exc:
                status = 499  # nobody to answer: the access log and metrics show the client left
                log.info("client went away before its request was read", detail=str(exc))
                response = web.Response(status=499)
            except asyncio.CancelledError:
                if task is None or not deadlines.expired(task):
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        status = 499
                        log.info("client went away; its request was cancelled")
                    raise
                log.warning("request took too long", limit_s=deadlines.limit_s, method=request.method,
                            path=request.path)
                telemetry.note_throttle("request_timeout")
                response = error_response(ScimError(
                    503, f"The request did not finish within {deadlines.limit_s:g}s; retry later.", retry_after=5))
            except web.HTTPException as exc:
                if exc.status < 400:
                    status = exc.status
                    raise
                response = error_response(_http_error(exc))
            except StoreBusy as exc:
                log.warning("state store busy", detail=str(exc))
                response = error_response(ScimError(
                    503, "The gateway is busy coordinating other writes to the same object; retry shortly.",
                    retry_after=2,
                ))
            except Exception:
                log.exception("unhandled error", method=request.method, path=request.path)
                response = error_response(ScimError(500, "Internal error in the gateway; see its log for request "
                                                         f"{request_id}."))
            status = response.status
            response.headers["X-Request-ID"] = request_id
            return response
        finally:
            if task is not None:
                deadlines.leave(task)
            elapsed = time.perf_counter() - started
            route, operation = describe(request)
            tenant = request.get(TENANT_KEY)
            tenant_id = tenant.id if tenant is not None else None
            log.info(
                "request",
                method=request.method,
                route=route,
                operation=operation,
                status=status,
                tenant=tenant_id,
                duration_ms=round(elapsed * 1000, 2),
                backend_calls=stats.backend_calls,
                backend_retries=stats.retries,
            )
            metrics.in_flight -= 1
            metrics.observe_request(tenant_id or NO_TENANT, operation, status, elapsed)
            if status in (429, 503):
                metrics.observe_throttle(tenant_id or NO_TENANT, status, stats.throttle_reason or "other")
            telemetry.CURRENT.reset(stats_token)
            REQUEST_ID.reset(request_id_token)

    return middleware


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(SCIM_PREFIX):
        return await handler(request)
    edge = request.app[EDGE_KEY]
    client = client_ip(request)
    if not edge.admits(client):
        raise ScimError(403, f"Requests from {client} are not accepted by this gateway.")
    wait = edge.lockout(client)
    if wait is not None:
        telemetry.note_throttle("auth_failures")
        raise ScimError(429, "Too many failed authentications from this address; retry later.", retry_after=wait)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    tenant = request.app[REGISTRY_KEY].authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        edge.failed(client)
        if scheme.lower() != "bearer" or not token.strip():
            raise ScimError(401, "Missing bearer token: send 'Authorization: Bearer <Secret Token>'.")
        raise ScimError(401, "The bearer token is not valid for this gateway.")
    if tenant.settings.allowed_networks and not allows(tenant.settings.allowed_networks, client):
        raise ScimError(403, f"Requests from {client} are not accepted for this tenant.")
    request[TENANT_KEY] = tenant
    stats = telemetry.current()
    if stats is not None:
        stats.budget = tenant.settings.backend_call_budget
    # Text that may not reach the store, the backend or the logs: checked once, for every parameter.
    for key, value in request.query.items():
        check_unicode(key, "a query parameter name")
        check_unicode(value, f"the query parameter {key}")
    for key, value in request.match_info.items():
        check_unicode(value, f"the {key} in the path")
    if tenant.rate_limiter is not None:
        wait = tenant.rate_limiter.take()
        if wait is not None:
            telemetry.note_throttle("rate_limit")
            raise ScimError(429, f"This tenant's request rate limit ({tenant.rate_limiter.rate:g}/s) is exceeded; "
                                 "retry later.", retry_after=wait)
    return await handler(request)


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Replay the stored response of a POST/PATCH retried with the same Idempotency-Key."""
    key = request.headers.get("Idempotency-Key")
    if key is None or request.method not in ("POST", "PATCH") or TENANT_KEY not in request:
        return await handler(request)
    body = await read_body(request)

    async def execute() -> StoredReply:
        try:
            response = await handler(request)
        except (ScimError, BackendError) as exc:
            response = error_response(as_scim_error(exc))
        raw = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
        headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
        headers.update({h: v for h, v in response.headers.items() if h == "Retry-After"})
        return StoredReply(response.status, headers, raw)

    tenant = request[TENANT_KEY]
    reply = await request.app[IDEMPOTENCY_KEY].run(
        tenant.id, key.strip(), fingerprint(request.method, request.path_qs, body), execute
    )
    headers = dict(reply.headers)
    if reply.replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.Response(status=reply.status, headers=headers, body=reply.body or None)
