"""The mock platform and a gateway in front of it, on real ports, served from a thread of their own.

The fuzz tests are synchronous (hypothesis drives them) and speak raw HTTP with http.client,
so that any bytes, methods and headers can be sent exactly as generated.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import create_mock_app
from gateway.http.app import create_app
from tests.conftest import TOKEN, make_settings

DOMAIN = "fuzz.example"
MOCK_KEY = "fuzz-key"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Servers:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-servers", daemon=True)
        self.runners: list[web.AppRunner] = []
        self.mock_port = self.gateway_port = 0

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.runners.append(runner)
        return int(runner.addresses[0][1])

    async def _start(self) -> None:
        self.mock_port = await self._serve(create_mock_app(MOCK_KEY, None, True, domains=[DOMAIN]))
        adapter = CleanmailAdapter(f"http://127.0.0.1:{self.mock_port}", MOCK_KEY, default_domain=DOMAIN,
                                   attempt_timeout=2.0, deadline=5.0)
        settings = make_settings(request_timeout=10.0, auth_failures_per_minute=0)
        self.gateway_port = await self._serve(create_app(settings, adapter=adapter))

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in self.runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def send(self, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None,
             port: int | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.gateway_port, timeout=30)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def scim(self, method: str, path: str, body: Any = None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
        return self.send(method, f"/scim/v2{path}", data, headers)

    def platform_calls(self) -> int:
        reply = self.send("GET", "/__mock__/stats", port=self.mock_port)
        return sum(reply.json()["calls"].values())
