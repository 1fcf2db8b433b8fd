"""Fixtures for the operability tests: captured logs, a real mock Cleanmail on a port, a gateway in front."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import MOCK_KEY, MockServer, create_mock_app
from adapters.cleanmail.mock_state import MockQuirks
from gateway import logs
from gateway.http.app import create_app
from tests.conftest import AUTH, make_settings

API_KEY = "ops-cleanmail-key-7Qz3xV9w"
DOMAIN = "example.ch"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

Client = TestClient[Any, Any]
LogConfig = Callable[..., io.StringIO]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def user(name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER_URN], "userName": name, "active": True, **extra}


@pytest.fixture
def capture_logs() -> Iterator[LogConfig]:
    """Configure logging into a buffer (as ``serve`` does); restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("adapters").level)

    def configure(fmt: str = "json", level: str = "debug", **options: Any) -> io.StringIO:
        buffer = options.pop("stream", None) or io.StringIO()
        logs.configure_logging(fmt, level, stream=buffer, cache_loggers=False, **options)
        return buffer

    yield configure
    structlog.reset_defaults()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("adapters").setLevel(saved[2])
    logs._secret_values.clear()


@dataclass
class MockBackend:
    """The mock Cleanmail API served on a fixed port, so it can be stopped and started again."""

    port: int
    app: web.Application
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server(self) -> MockServer:
        return self.app[MOCK_KEY]

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
            # A stopped app cannot be set up again: the next start serves the same state afresh.
            state = self.server.store.snapshot()
            self.app = create_mock_app(API_KEY, None, True, self.server.quirks, domains=[DOMAIN])
            self.server.store.restore(state)


@pytest.fixture
async def mock_backend() -> AsyncIterator[MockBackend]:
    backend = MockBackend(free_port(), create_mock_app(API_KEY, None, True, MockQuirks(), domains=[DOMAIN]))
    await backend.start()
    yield backend
    await backend.stop()


def fast_adapter(url: str) -> CleanmailAdapter:
    """Timeouts and backoff short enough that a dead backend is noticed in a fraction of a second."""
    return CleanmailAdapter(url, API_KEY, default_domain=DOMAIN, attempt_timeout=0.5, connect_timeout=0.2,
                            deadline=1.5, backoff_initial=0.01, backoff_max=0.05)


GatewayFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_gateway(aiohttp_client: Callable[..., Awaitable[Client]]) -> GatewayFactory:
    """A gateway client (bearer token sent) over the memory backend, or over ``backend`` when given."""

    async def start(backend: MockBackend | None = None, **settings: Any) -> Client:
        adapter = fast_adapter(backend.url) if backend is not None else None
        if backend is not None:
            settings.setdefault("backend", "cleanmail")
            settings.setdefault("backend_options", {}).setdefault("url", backend.url)
        app = create_app(make_settings(**settings), adapter=adapter)
        return await aiohttp_client(app, headers=AUTH)

    return start
