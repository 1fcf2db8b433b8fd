"""A mock Cleanmail API on a real port, served from its own thread.

The operator commands run their own event loop (``asyncio.run``), exactly as from a
shell, so the backend they talk to must live outside the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from adapters.cleanmail.mock import create_mock_app

API_KEY = "ops-test-api-key"
DOMAIN = "example.ch"


class LiveMock:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-mock", daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        self.runner = web.AppRunner(create_mock_app(API_KEY, None, True, domains=[DOMAIN]))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request to the mock, as an administrator working on the platform directly would send it."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None


@pytest.fixture
def live_mock() -> Iterator[LiveMock]:
    mock = LiveMock()
    mock.start()
    yield mock
    mock.stop()


def dead_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def acme_tenant_toml(token_hash: str, backend_url: str) -> str:
    """The ``acme`` tenant on the live mock, with short timeouts, as a TOML fragment."""
    return f"""
[tenants.acme]
token_hashes = ["{token_hash}"]

[tenants.acme.backend]
adapter = "cleanmail"
url = "{backend_url}"
api_key = "{API_KEY}"
list_domain = "{DOMAIN}"
deadline = 1.0
attempt_timeout = 0.5
"""
