"""The backend contract kit against the ldap backend on real slapd servers (without and with refint),
through a TCP proxy that can refuse connections and lose answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.contract import CHECKS, Check, KitSkip, KitTarget, TcpFaultProxy
from tests.ldap.conftest import AdapterFactory
from tests.realservers.slapd import Slapd


@pytest.fixture
async def target(server: Slapd, make_adapter: AdapterFactory) -> AsyncIterator[KitTarget]:
    async with TcpFaultProxy("127.0.0.1", server.port) as proxy:
        adapter = await make_adapter(server, url=f"ldap://{proxy.host}:{proxy.port}", timeout=0.5,
                                     connect_timeout=0.5, deadline=2.0)
        yield KitTarget(adapter, "kit.example.org", faults=proxy)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
async def test_contract(check: Check, target: KitTarget) -> None:
    try:
        await check.run(target)
    except KitSkip as skip:
        pytest.skip(str(skip))
