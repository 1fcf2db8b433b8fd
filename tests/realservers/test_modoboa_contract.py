"""The backend contract kit against a real Modoboa, through a TCP proxy that injects transport faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from adapters.contract import CHECKS, Check, KitSkip, KitTarget, TcpFaultProxy
from adapters.modoboa.adapter import ModoboaAdapter
from adapters.retry import RetryPolicy
from tests.realservers.matrix_modoboa import UNPACED
from tests.realservers.modoboa import ModoboaServer

DOMAIN = "kit.example"
# Short enough that the fault checks end quickly, long enough for Modoboa's slowest call
# (an account create hashes its password) on a busy machine.
POLICY = RetryPolicy(attempt_timeout=3.0, connect_timeout=0.5, deadline=6.0, backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture
async def target(modoboa: ModoboaServer) -> AsyncIterator[KitTarget]:
    modoboa.create_domain(DOMAIN)
    upstream = urlsplit(modoboa.url)
    async with TcpFaultProxy(str(upstream.hostname), int(upstream.port or 80)) as proxy:
        adapter = ModoboaAdapter(f"http://{proxy.host}:{proxy.port}", modoboa.token, list_domain=DOMAIN,
                                 rates=UNPACED, policy=POLICY)
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
        pytest.fail(f"the check must apply to Modoboa: {skip}")
