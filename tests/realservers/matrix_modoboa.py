"""The Modoboa backend in the Entra suite's matrix: a real Modoboa 2.12, emptied before each test.

The suite provisions into many mail domains (contoso.com, testuser.com, …); the adapter
creates each one on first use (``create_domains``). Domains stay between tests: emptying
the platform of accounts and aliases is enough for the suite (no user, no group), and
deleting and re-creating the domains for every test would cost about a third of its time.
The server runs with its throttle raised out of reach, so the adapter does not pace.
"""

from __future__ import annotations

import pytest

from adapters.modoboa.adapter import ModoboaAdapter
from adapters.modoboa.pacing import Rates
from tests.matrix import LIST_DOMAIN, BackendUnderTest
from tests.realservers.modoboa import ADMIN_USERNAME, ModoboaServer

UNPACED = Rates(requests_per_minute=0, writes_per_second=0, reads_per_minute=0)


def modoboa_adapter(server: ModoboaServer, *, token: str | None = None, list_domain: str | None = LIST_DOMAIN,
                    domains: frozenset[str] = frozenset(), create_domains: bool = True) -> ModoboaAdapter:
    """An adapter on ``server`` that does not pace (the server's throttle is raised)."""
    return ModoboaAdapter(server.url, token or server.token, list_domain=list_domain, domains=domains,
                          create_domains=create_domains, rates=UNPACED)


def empty_platform(server: ModoboaServer) -> None:
    """No account but the superuser and no alias left; the domains stay."""
    accounts = [a["pk"] for a in server.list_all("/api/v2/accounts/") if a["username"] != ADMIN_USERNAME]
    if accounts:
        server.expect(204, "POST", "/api/v2/accounts/bulk_delete/", {"ids": accounts})
    for alias in server.list_all("/api/v2/aliases/"):
        server.expect(204, "DELETE", f"/api/v2/aliases/{alias['pk']}/")


@pytest.fixture
def matrix_modoboa(modoboa_server: ModoboaServer) -> BackendUnderTest:
    empty_platform(modoboa_server)
    return BackendUnderTest("modoboa", modoboa_adapter(modoboa_server), addresses_only=True)
