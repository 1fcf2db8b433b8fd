"""The aiohttp application: routes, middlewares, start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.base import Adapter, HealthCheck
from gateway.config import DEFAULT_TENANT, Settings
from gateway.http.deadlines import Deadlines
from gateway.http.edge import EdgeGuard
from gateway.http.handlers import ScimHandlers
from gateway.http.middleware import (
    DEADLINES_KEY,
    EDGE_KEY,
    IDEMPOTENCY_KEY,
    REGISTRY_KEY,
    bearer_auth,
    idempotency,
    request_context,
)
from gateway.http.observe import METRICS_KEY, metrics_endpoint
from gateway.http.proxy import TrustedProxies, forwarded
from gateway.metrics import Metrics
from gateway.provisioning.breaker import CircuitBreaker
from gateway.provisioning.idempotency import IdempotencyKeys
from gateway.scim.errors import ScimError
from gateway.store.base import StateStore
from gateway.tenants import TenantRegistry, build_tenant
from gateway.wiring import dry_run, make_adapter, make_store

STORE_KEY: web.AppKey[StateStore] = web.AppKey("store", StateStore)
ADAPTERS_KEY: web.AppKey[list[Adapter]] = web.AppKey("adapters", list)
SWEEPER_KEY: web.AppKey[asyncio.Task[None]] = web.AppKey("journal_sweeper", asyncio.Task)
log = structlog.get_logger("gateway.app")
READY_TIMEOUT_S = 5.0

# Entra appends "/Users" to whatever the admin typed, so "…/scim/v2/" arrives as "…/scim/v2//Users".
SCIM = r"/scim/v2{sep:/+}"
KIND = r"{kind:Users|Groups}"


def _only_get(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
              ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise ScimError(405, f"{request.method} is not allowed here: discovery endpoints are read-only.",
                            headers={"Allow": "GET, HEAD"})
        return await handler(request)
    return guarded


def add_routes(app: web.Application, handlers: ScimHandlers) -> None:
    r = app.router
    # The router tries these patterns in order: Entra's traffic (list, create, then by id) first.
    # "/Users/.search" matches "{id}" too, but only POST reaches it and "{id}" takes no POST.
    r.add_get(f"{SCIM}{KIND}", handlers.list)
    r.add_post(f"{SCIM}{KIND}", handlers.create)
    r.add_get(f"{SCIM}{KIND}/{{id}}", handlers.get)
    r.add_put(f"{SCIM}{KIND}/{{id}}", handlers.replace)
    r.add_patch(f"{SCIM}{KIND}/{{id}}", handlers.patch)
    r.add_delete(f"{SCIM}{KIND}/{{id}}", handlers.delete)
    r.add_post(f"{SCIM}{KIND}/.search", handlers.search)
    r.add_post(f"{SCIM}.search", handlers.root_search)
    r.add_route("*", f"{SCIM}ServiceProviderConfig", _only_get(handlers.service_provider_config))
    r.add_route("*", f"{SCIM}ResourceTypes", _only_get(handlers.resource_types))
    r.add_route("*", f"{SCIM}ResourceTypes/{{id}}", _only_get(handlers.resource_type))
    r.add_route("*", f"{SCIM}Schemas", _only_get(handlers.schemas))
    r.add_route("*", f"{SCIM}Schemas/{{id}}", _only_get(handlers.schema))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the store and every tenant's backend answer; else 503 naming each one that does not."""
    checks: dict[str, Awaitable[None]] = {"store": request.app[STORE_KEY].check()}
    for tenant in request.app[REGISTRY_KEY].tenants.values():
        if isinstance(tenant.adapter, HealthCheck):
            checks[f"backend:{tenant.id}:{tenant.adapter.name}"] = tenant.adapter.check()
    # Concurrently and bounded: a probe that hangs on one dead backend would itself time out.
    results = await asyncio.gather(*(asyncio.wait_for(c, READY_TIMEOUT_S) for c in checks.values()),
                                   return_exceptions=True)
    problems = {
        name: f"{type(result).__name__}: {result}" if str(result) else type(result).__name__
        for name, result in zip(checks, results, strict=True) if isinstance(result, BaseException)
    }
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready", "checked": list(checks)})


async def not_found(request: web.Request) -> web.Response:
    raise ScimError(404, "No such endpoint. The SCIM base URL is /scim/v2 (e.g. /scim/v2/Users).")


async def sweep_journal(registry: TenantRegistry, store: StateStore, interval: float) -> None:
    """Settle writes interrupted by a crash (or a lost backend answer) that nobody touched since.

    Only entries older than ``interval`` are settled, so a write still in flight in this or
    another replica is left alone.
    """
    while True:
        for tenant in list(registry.tenants.values()):
            for service in (tenant.users, tenant.groups):
                try:
                    settled = await service.recover(older_than_s=interval)
                except Exception as exc:  # the backend may be down: try again next round
                    log.warning("journal sweep failed", tenant=tenant.id, error=str(exc))
                    continue
                if settled:
                    log.info("journal sweep settled writes", tenant=tenant.id, count=settled)
        try:
            await store.idempotency_purge(time.time())
        except Exception as exc:
            log.warning("idempotency purge failed", error=str(exc))
        await asyncio.sleep(interval)


def create_app(settings: Settings, *, adapter: Adapter | None = None, store: StateStore | None = None
               ) -> web.Application:
    """The gateway for every tenant in ``settings``.

    ``adapter`` replaces the backend of the only tenant (or of the quick-start tenant): for tests.
    """
    tenants = settings.effective_tenants()
    deadlines = Deadlines(settings.request_timeout)
    metrics = Metrics()
    middlewares: list[Middleware] = [request_context(metrics, deadlines), bearer_auth, idempotency]
    if settings.trusted_proxies:
        # Outermost, so the log line, auth and handlers all see the client's address, scheme and host.
        # Without proxies to trust there is nothing to rewrite: the peer is the client (one layer less).
        middlewares.insert(0, forwarded(TrustedProxies(settings.trusted_proxies)))
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[DEADLINES_KEY] = deadlines
    app[EDGE_KEY] = EdgeGuard((t.allowed_networks for t in tenants.values()), settings.auth_failures_per_minute)
    store = metrics.timed_store(store or make_store(settings.state))
    registry = TenantRegistry()
    adapters: list[Adapter] = []
    for name, tenant_settings in tenants.items():
        injected = adapter is not None and (len(tenants) == 1 or name == DEFAULT_TENANT)
        if injected and adapter is not None:
            tenant_adapter = adapter
        else:
            from_env = name == DEFAULT_TENANT and settings.token is not None
            tenant_adapter = make_adapter(name, tenant_settings, from_env=from_env)
        if tenant_settings.dry_run:
            tenant_adapter = dry_run(tenant_adapter, name)
        adapters.append(tenant_adapter)
        registry.add(
            build_tenant(name, tenant_settings, tenant_adapter, store, max_page_size=settings.max_page_size,
                         landing_window_s=settings.write_landing_window,
                         max_patch_operations=settings.max_patch_operations),
            tenant_settings.token_hashes,
        )
    for tenant in registry.tenants.values():
        tenant.guard.observer = metrics.backend_observer(tenant.id, tenant.adapter.name)
        tenant.users.members.on_skipped = metrics.skipped_members_observer(tenant.id)
        if settings.circuit_failure_threshold:
            tenant.guard.breaker = CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_open_seconds)
    metrics.watch_tenants(lambda: registry.tenants.values())
    app[METRICS_KEY] = metrics
    app[REGISTRY_KEY] = registry
    app[IDEMPOTENCY_KEY] = IdempotencyKeys(store, settings.idempotency_ttl)
    app[STORE_KEY] = store
    app[ADAPTERS_KEY] = adapters
    handlers = ScimHandlers(max_page_size=settings.max_page_size, max_operations=settings.max_patch_operations,
                            max_body_bytes=settings.max_body_bytes)
    add_routes(app, handlers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_route("*", "/scim/{tail:.*}", not_found)

    async def start(app: web.Application) -> None:
        await app[STORE_KEY].open()
        for item in app[ADAPTERS_KEY]:
            await item.start()
        app[SWEEPER_KEY] = asyncio.create_task(sweep_journal(registry, app[STORE_KEY], settings.journal_sweep_interval))
        app[DEADLINES_KEY].start()

    async def stop(app: web.Application) -> None:
        await app[DEADLINES_KEY].stop()
        sweeper = app.get(SWEEPER_KEY)
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        for item in app[ADAPTERS_KEY]:
            await item.close()
        await app[STORE_KEY].close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
