"""The contract kit against the postfixadmin backend on PostgreSQL and MariaDB, through a TCP fault proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.contract import CHECKS, Check, KitSkip, KitTarget, TcpFaultProxy
from tests.realservers.matrix_postfixadmin import make_adapter
from tests.realservers.postfixadmin_db import PostfixAdminDatabase


@pytest.fixture
async def target(postfixadmin_db: PostfixAdminDatabase) -> AsyncIterator[KitTarget]:
    login = postfixadmin_db.gateway
    async with TcpFaultProxy(login.host, login.port) as proxy:
        adapter = make_adapter(postfixadmin_db.dsn(host=proxy.host, port=proxy.port))
        await adapter.start()
        try:
            yield KitTarget(adapter, postfixadmin_db.domains[0], faults=proxy)
        finally:
            await adapter.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
async def test_contract(check: Check, target: KitTarget) -> None:
    try:
        await check.run(target)
    except KitSkip as skip:
        pytest.fail(f"no check may be skipped against PostfixAdmin: {skip}")
