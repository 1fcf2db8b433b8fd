"""A stand-in for a Cleanmail-like legacy mail-admin API, served by aiohttp.

Cleanmail publishes no admin API, so this one is modelled on the habits of real
mail-admin APIs (see ``MockQuirks``) rather than on any wire protocol. It is what the
default backend talks to in development, in the test suite and in benchmarks.

Routes (all JSON, ``X-API-Key`` header required under ``/api``)::

    GET    /api/v1/domains                        POST /api/v1/domains
    GET    /api/v1/mailboxes?offset&limit&address&domain&status
    POST   /api/v1/mailboxes
    GET|PUT|DELETE /api/v1/mailboxes/{address}
    POST   /api/v1/mailboxes/{address}/rename     {"new_address": ...}
    GET    /api/v1/aliases?offset&limit&target    POST /api/v1/aliases
    DELETE /api/v1/aliases/{id}
    GET    /api/v1/lists?offset&limit&address&display_name
    POST   /api/v1/lists
    GET|PUT|DELETE /api/v1/lists/{address}
    POST   /api/v1/lists/{address}/members        {"add": [...], "remove": [...]}
    GET    /healthz                               (no key)

With ``control=True`` also ``/__mock__/faults``, ``/__mock__/quirks`` (GET and POST),
``POST /__mock__/reset``, ``GET /__mock__/stats`` and ``GET /__mock__/state``; they
need no key and are never subject to faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.cleanmail.mock_faults import FaultConfig, FaultInjector, MockStats
from adapters.cleanmail.mock_persist import Persistence, read_snapshot
from adapters.cleanmail.mock_state import MockError, MockQuirks, MockStore

__all__ = ["MockQuirks", "MockServer", "create_mock_app", "run_mock"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_KEY_HEADER = "X-API-Key"
DEFAULT_PAGE = 50


def _error(code: str, message: str, status: int) -> web.Response:
    return web.json_response({"status": "error", "code": code, "message": message}, status=status)


class MockServer:
    """The mock's state, fault injector and handlers, bound to one aiohttp app."""

    def __init__(
        self,
        api_key: str,
        data_file: Path | None,
        quirks: MockQuirks,
        domains: Iterable[str] = (),
        flush_delay: float = 0.2,
    ) -> None:
        if not api_key:
            raise ValueError("the mock needs a non-empty API key")
        self._api_key = api_key.encode()
        self.seed_domains = list(domains)
        self.persistence = Persistence(data_file, self._snapshot, flush_delay) if data_file else None
        self.store = MockStore(quirks, self._changed)
        self.faults = FaultInjector()
        self.stats = MockStats()
        self._release = asyncio.Event()
        if data_file is not None:
            snapshot = read_snapshot(data_file)
            if snapshot is not None:
                self.store.restore(snapshot)
        self._seed()

    def _snapshot(self) -> dict[str, Any]:
        return self.store.snapshot()

    def _changed(self) -> None:
        if self.persistence is not None:
            self.persistence.mark_dirty()

    def _seed(self) -> None:
        for name in self.seed_domains:
            if name.strip().lower() not in self.store.domains:
                self.store.add_domain(name)

    @property
    def quirks(self) -> MockQuirks:
        return self.store.quirks

    # --- middlewares ------------------------------------------------------------------

    @web.middleware
    async def count_calls(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            resource = request.match_info.route.resource
            template = resource.canonical if resource is not None else "(unmatched)"
            self.stats.calls[f"{request.method} {template}"] += 1
        return await handler(request)

    @web.middleware
    async def inject_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/") or not self.faults.config.applies_to(request.method):
            return await handler(request)
        wait = self.faults.throttle()
        if wait:
            self.stats.faults["rate_limited"] += 1
            return self._too_many(wait)
        decision = self.faults.decide()
        if decision.delay_s:
            # Received in full before the platform "works" on it: a client that goes away
            # meanwhile does not undo its write, as on a real server.
            await request.read()
            await asyncio.sleep(decision.delay_s)
        if decision.fail_before:
            self.stats.faults["error"] += 1
            return _error("unavailable", "service temporarily unavailable", 503)
        if decision.hang:
            self.stats.faults["timeout"] += 1
            response = await handler(request) if decision.commit_before_hang else None
            await self._hang()
            if response is None:
                return _error("gateway_timeout", "upstream timed out", 504)
            return response
        response = await handler(request)
        if decision.fail_after:
            self.stats.faults["error_after_commit"] += 1
            return _error("unavailable", "service temporarily unavailable", 503)
        return response

    def _too_many(self, wait: float) -> web.Response:
        seconds = max(1, math.ceil(wait))
        if self.faults.config.retry_after_http_date:
            # An HTTP date has whole-second resolution: add one so it is never early.
            retry_after = email.utils.formatdate(time.time() + seconds + 1, usegmt=True)
        else:
            retry_after = str(seconds)
        response = _error("rate_limited", "too many requests", 429)
        response.headers["Retry-After"] = retry_after
        return response

    async def _hang(self) -> None:
        release = self._release
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), self.faults.config.timeout_hang_s)

    def release_hung(self) -> None:
        """Let hanging requests finish (on reset and shutdown)."""
        self._release.set()
        self._release = asyncio.Event()

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            given = request.headers.get(API_KEY_HEADER, "").encode()
            if not hmac.compare_digest(given, self._api_key):
                return _error("unauthorized", "missing or invalid API key", 401)
        return await handler(request)

    # --- helpers ----------------------------------------------------------------------

    def _failed(self, err: MockError, *, write: bool) -> web.Response:
        status = 200 if write and self.quirks.errors_as_200 else err.status
        return web.json_response(err.body(), status=status)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not await request.read():  # kept by aiohttp, so it may have been read before
            return {}
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MockError("invalid_json", "the request body is not valid JSON", 400) from None
        if not isinstance(data, dict):
            raise MockError("invalid_json", "the request body must be a JSON object", 400)
        return data

    def _window(self, request: web.Request) -> tuple[int, int | None]:
        if not self.quirks.paging:
            return 0, None
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query.get("limit", str(DEFAULT_PAGE)))
        except ValueError:
            raise MockError("invalid_value", "offset and limit must be integers", 400) from None
        if offset < 0 or limit < 0:
            raise MockError("invalid_value", "offset and limit must not be negative", 400)
        return offset, min(limit, self.quirks.max_page_size)

    @staticmethod
    def _page(items: Sequence[dict[str, Any]], total: int, offset: int, limit: int | None) -> web.Response:
        shown = total if limit is None else limit
        return web.json_response({"items": list(items), "total": total, "offset": offset, "limit": shown})

    async def _read(self, request: web.Request, action: Callable[[], web.Response]) -> web.Response:
        try:
            return action()
        except MockError as err:
            return self._failed(err, write=False)

    async def _write(self, request: web.Request, action: Callable[[dict[str, Any]], tuple[Any, int]]) -> web.Response:
        try:
            body = await self._body(request)
            result, status = action(body)
        except MockError as err:
            if err.code == "invalid_json":
                return web.json_response(err.body(), status=400)
            return self._failed(err, write=True)
        return web.json_response(result, status=status)

    # --- /api/v1 handlers -------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def list_domains(self, request: web.Request) -> web.Response:
        def action() -> web.Response:
            offset, limit = self._window(request)
            rows = sorted(self.store.domains.values(), key=lambda d: d.name)
            end = len(rows) if limit is None else offset + limit
            items = [{"name": d.name, "policy": d.policy} for d in rows[offset:end]]
            return self._page(items, len(rows), offset, limit)

        return await self._read(request, action)

    async def create_domain(self, request: web.Request) -> web.Response:
        def action(body: dict[str, Any]) -> tuple[Any, int]:
            domain = self.store.add_domain(body.get("name"), body.get("policy"))
            return {"name": domain.name, "policy": domain.policy}, 201

        return await self._write(request, action)

    async def list_mailboxes(self, request: web.Request) -> web.Response:
        def action() -> web.Response:
            offset, limit = self._window(request)
            q = request.query
            rows, total = self.store.list_mailboxes(
                offset, limit, address=q.get("address"), domain=q.get("domain"), status=q.get("status")
            )
            return self._page([m.to_json() for m in rows], total, offset, limit)

        return await self._read(request, action)

    async def get_mailbox(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        mailbox = self.store.get_mailbox(address)
        if mailbox is not None:
            return web.json_response(mailbox.to_json())
        if self.quirks.not_found_as_empty:
            return web.json_response({})
        return _error("not_found", f"mailbox {address.lower()} does not exist", 404)

    async def create_mailbox(self, request: web.Request) -> web.Response:
        return await self._write(request, lambda body: (self.store.create_mailbox(body).to_json(), 201))

    async def replace_mailbox(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        return await self._write(request, lambda body: (self.store.replace_mailbox(address, body).to_json(), 200))

    async def rename_mailbox(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        return await self._write(
            request,
            lambda body: (self.store.rename_mailbox(address, body.get("new_address")).to_json(), 200),
        )

    async def delete_mailbox(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]

        def action(body: dict[str, Any]) -> tuple[Any, int]:
            return {"status": "ok", "deleted": self.store.delete_mailbox(address).address}, 200

        return await self._write(request, action)

    async def list_aliases(self, request: web.Request) -> web.Response:
        def action() -> web.Response:
            offset, limit = self._window(request)
            rows, total = self.store.list_aliases(offset, limit, request.query.get("target"))
            items = [{"id": a.id, "address": a.address, "target": a.target} for a in rows]
            return self._page(items, total, offset, limit)

        return await self._read(request, action)

    async def create_alias(self, request: web.Request) -> web.Response:
        def action(body: dict[str, Any]) -> tuple[Any, int]:
            alias = self.store.create_alias(body)
            return {"id": alias.id, "address": alias.address, "target": alias.target}, 201

        return await self._write(request, action)

    async def delete_alias(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]

        def action(body: dict[str, Any]) -> tuple[Any, int]:
            if not raw.isdigit():
                raise MockError("not_found", f"alias {raw} does not exist", 404)
            return {"status": "ok", "deleted": self.store.delete_alias(int(raw)).id}, 200

        return await self._write(request, action)

    async def list_lists(self, request: web.Request) -> web.Response:
        def action() -> web.Response:
            offset, limit = self._window(request)
            q = request.query
            rows, total = self.store.list_lists(
                offset, limit, address=q.get("address"), display_name=q.get("display_name")
            )
            return self._page([d.to_json() for d in rows], total, offset, limit)

        return await self._read(request, action)

    async def get_list(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        return await self._read(request, lambda: web.json_response(self.store.get_list(address).to_json()))

    async def create_list(self, request: web.Request) -> web.Response:
        return await self._write(request, lambda body: (self.store.create_list(body).to_json(), 201))

    async def replace_list(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        return await self._write(request, lambda body: (self.store.replace_list(address, body).to_json(), 200))

    async def edit_members(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]

        def action(body: dict[str, Any]) -> tuple[Any, int]:
            dist = self.store.edit_members(address, body.get("add"), body.get("remove"))
            return dist.to_json(), 200

        return await self._write(request, action)

    async def delete_list(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]

        def action(body: dict[str, Any]) -> tuple[Any, int]:
            return {"status": "ok", "deleted": self.store.delete_list(address).address}, 200

        return await self._write(request, action)

    # --- /__mock__ control ------------------------------------------------------------

    async def _control_body(self, request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.config.to_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        """Replace the whole fault configuration (omitted settings fall back to off)."""
        try:
            config = FaultConfig.from_json(await self._control_body(request))
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=400)
        self.faults.configure(config)
        return web.json_response(config.to_json())

    async def get_quirks(self, request: web.Request) -> web.Response:
        return web.json_response(self.quirks.to_dict())

    async def set_quirks(self, request: web.Request) -> web.Response:
        """Change only the quirks named in the body."""
        try:
            self.store.quirks = self.quirks.merged(await self._control_body(request))
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response(self.quirks.to_dict())

    async def reset(self, request: web.Request) -> web.Response:
        """Forget all data, faults and statistics; domains given at start-up come back."""
        self.store.clear()
        self._seed()
        self._changed()
        self.faults.configure(FaultConfig())
        self.stats.reset()
        self.release_hung()
        return web.json_response({"status": "ok"})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_json())

    async def get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.snapshot())


MOCK_KEY = web.AppKey("cleanmail_mock", MockServer)


def create_mock_app(
    api_key: str,
    data_file: Path | None,
    control: bool,
    quirks: MockQuirks | None = None,
    *,
    domains: Iterable[str] = (),
    flush_delay: float = 0.2,
) -> web.Application:
    """Build the mock app. ``domains`` are created at start (and again after a reset);
    changes reach ``data_file`` at most ``flush_delay`` seconds after they are made."""
    server = MockServer(api_key, data_file, quirks or MockQuirks(), domains, flush_delay)
    app = web.Application(middlewares=[server.count_calls, server.inject_faults, server.authenticate])
    app[MOCK_KEY] = server
    v1 = "/api/v1"
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get(f"{v1}/domains", server.list_domains)
    app.router.add_post(f"{v1}/domains", server.create_domain)
    app.router.add_get(f"{v1}/mailboxes", server.list_mailboxes)
    app.router.add_post(f"{v1}/mailboxes", server.create_mailbox)
    app.router.add_get(f"{v1}/mailboxes/{{address}}", server.get_mailbox)
    app.router.add_put(f"{v1}/mailboxes/{{address}}", server.replace_mailbox)
    app.router.add_delete(f"{v1}/mailboxes/{{address}}", server.delete_mailbox)
    app.router.add_post(f"{v1}/mailboxes/{{address}}/rename", server.rename_mailbox)
    app.router.add_get(f"{v1}/aliases", server.list_aliases)
    app.router.add_post(f"{v1}/aliases", server.create_alias)
    app.router.add_delete(f"{v1}/aliases/{{id}}", server.delete_alias)
    app.router.add_get(f"{v1}/lists", server.list_lists)
    app.router.add_post(f"{v1}/lists", server.create_list)
    app.router.add_get(f"{v1}/lists/{{address}}", server.get_list)
    app.router.add_put(f"{v1}/lists/{{address}}", server.replace_list)
    app.router.add_delete(f"{v1}/lists/{{address}}", server.delete_list)
    app.router.add_post(f"{v1}/lists/{{address}}/members", server.edit_members)
    if control:
        app.router.add_get("/__mock__/faults", server.get_faults)
        app.router.add_post("/__mock__/faults", server.set_faults)
        app.router.add_get("/__mock__/quirks", server.get_quirks)
        app.router.add_post("/__mock__/quirks", server.set_quirks)
        app.router.add_post("/__mock__/reset", server.reset)
        app.router.add_get("/__mock__/stats", server.get_stats)
        app.router.add_get("/__mock__/state", server.get_state)

    async def on_shutdown(app: web.Application) -> None:
        server.release_hung()

    async def on_cleanup(app: web.Application) -> None:
        if server.persistence is not None:
            await server.persistence.close()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def run_mock(
    host: str = "127.0.0.1",
    port: int = 8081,
    api_key: str = "",
    data_file: Path | None = None,
    control: bool = False,
    *,
    domains: Sequence[str] = (),
    quirks: MockQuirks | None = None,
) -> None:
    """Serve the mock until SIGINT/SIGTERM; the data file is flushed on the way out."""
    app = create_mock_app(api_key, data_file, control, quirks, domains=domains)
    where = f"http://{host}:{port}"
    extra = " with /__mock__ control endpoints" if control else ""
    web.run_app(app, host=host, port=port, print=lambda _: print(f"mock Cleanmail API on {where}{extra}"))
