"""The ldap backend against real, throwaway slapd servers (see tests/realservers/slapd.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from adapters.ldap.adapter import LdapAdapter
from adapters.ldap.plugin import PLUGIN, LdapSettings
from adapters.plugins import BackendContext
from tests.realservers.slapd import Slapd

AdapterFactory = Callable[..., Awaitable[LdapAdapter]]


def ldap_options(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """The backend settings that connect to ``server`` as its least-privilege service account."""
    options: dict[str, Any] = {
        "url": server.url, "bind_dn": server.service_dn, "bind_password": server.service_password,
        "users_dn": server.users_dn, "groups_dn": server.groups_dn, "timeout": 2.0, "deadline": 6.0,
        "pool_size": 4,
    }
    options.update(overrides)
    return options


@pytest.fixture(params=["slapd", "slapd_refint"])
def server(request: pytest.FixtureRequest) -> Slapd:
    """Each test runs against a slapd without and with the refint overlay."""
    found: Slapd = request.getfixturevalue(request.param)
    return found


@pytest.fixture
async def make_adapter() -> AsyncIterator[AdapterFactory]:
    made: list[LdapAdapter] = []

    async def make(server: Slapd, context: BackendContext | None = None, **overrides: Any) -> LdapAdapter:
        settings = LdapSettings.model_validate(ldap_options(server, **overrides))
        adapter = PLUGIN.create(settings, context or BackendContext(tenant="test"))
        assert isinstance(adapter, LdapAdapter)
        await adapter.start()
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
async def adapter(server: Slapd, make_adapter: AdapterFactory) -> LdapAdapter:
    return await make_adapter(server)
