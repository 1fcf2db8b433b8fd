"""Fixtures for the Cleanmail mock, client and adapter (independent of the gateway app)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import MOCK_KEY, MockServer, create_mock_app
from adapters.cleanmail.mock_state import MockQuirks

API_KEY = "test-api-key"
KEY_HEADER = {"X-API-Key": API_KEY}
DOMAIN = "example.ch"

MockClient = TestClient[web.Request, web.Application]


def make_app(
    quirks: MockQuirks | None = None, data_file: Path | None = None, *, control: bool = True, flush_delay: float = 0.2
) -> web.Application:
    return create_mock_app(API_KEY, data_file, control, quirks, domains=[DOMAIN], flush_delay=flush_delay)


def server_of(client: MockClient) -> MockServer:
    app = client.app
    assert app is not None
    return app[MOCK_KEY]


@pytest.fixture
def mock_factory(
    aiohttp_client: Callable[..., Awaitable[MockClient]],
) -> Callable[..., Awaitable[MockClient]]:
    """Start a mock (control endpoints on) whose client sends the API key by default."""

    async def start(quirks: MockQuirks | None = None, data_file: Path | None = None, **options: Any) -> MockClient:
        return await aiohttp_client(make_app(quirks, data_file, **options), headers=KEY_HEADER)

    return start


@pytest.fixture
async def mock(mock_factory: Callable[..., Awaitable[MockClient]]) -> MockClient:
    return await mock_factory()


AdapterFactory = Callable[..., Awaitable[tuple[CleanmailAdapter, MockServer]]]


@pytest.fixture
async def adapter_factory(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[AdapterFactory]:
    """A CleanmailAdapter on a real mock server, with timeouts short enough for tests."""
    adapters: list[CleanmailAdapter] = []

    async def start(quirks: MockQuirks | None = None, **options: Any) -> tuple[CleanmailAdapter, MockServer]:
        app = make_app(quirks)
        server = await aiohttp_server(app)
        settings: dict[str, Any] = {
            "attempt_timeout": 0.5,
            "deadline": 2.0,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
            "default_domain": DOMAIN,
        }
        settings.update(options)
        adapter = CleanmailAdapter(str(server.make_url("/")), API_KEY, **settings)
        await adapter.start()
        adapters.append(adapter)
        return adapter, app[MOCK_KEY]

    yield start
    for adapter in adapters:
        await adapter.close()


@pytest.fixture
async def adapter(adapter_factory: AdapterFactory) -> CleanmailAdapter:
    return (await adapter_factory())[0]
