"""The contract kit against the built-in backends: memory, cleanmail on its mock (with transport faults), dryrun."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import create_mock_app
from adapters.contract import CHECKS, Check, KitSkip, KitTarget, TcpFaultProxy
from adapters.dryrun import DryRunAdapter
from adapters.memory import MemoryAdapter

DOMAIN = "kit.example"
KEY = "kit-api-key"

ServerFactory = Callable[..., Any]


@pytest.fixture(params=["memory", "cleanmail", "dryrun"])
async def target(request: pytest.FixtureRequest, aiohttp_server: ServerFactory) -> AsyncIterator[KitTarget]:
    if request.param == "memory":
        yield KitTarget(MemoryAdapter(), DOMAIN)
        return
    if request.param == "dryrun":
        yield KitTarget(DryRunAdapter(MemoryAdapter(), tenant="kit"), DOMAIN)
        return
    mock: TestServer = await aiohttp_server(create_mock_app(KEY, None, True, domains=[DOMAIN]))
    async with TcpFaultProxy(str(mock.host), int(mock.port or 0)) as proxy:
        url = URL.build(scheme="http", host=proxy.host, port=proxy.port)
        adapter = CleanmailAdapter(str(url), KEY, default_domain=DOMAIN, attempt_timeout=0.5, connect_timeout=0.2,
                                   deadline=2.0, backoff_initial=0.01, backoff_max=0.05)
        await adapter.start()
        try:
            yield KitTarget(adapter, DOMAIN, faults=proxy)
        finally:
            await adapter.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
async def test_contract(check: Check, target: KitTarget) -> None:
    try:
        await check.run(target)
    except KitSkip as skip:
        pytest.skip(str(skip))
