"""The backends the Entra exchange suite runs against, as pytest fixtures ``matrix_<name>``.

Each fixture yields a ``BackendUnderTest``: an adapter on an empty platform. The built-ins
run in-process; real servers come from their own fixtures (tests/realservers) and skip, or
fail in CI, where they cannot run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.base import Adapter
from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import create_mock_app
from adapters.cleanmail.mock_state import MockQuirks
from adapters.dryrun import DryRunAdapter
from adapters.memory import MemoryAdapter
from tests.realservers.conftest_modoboa import (
    modoboa,
    modoboa_default_throttle,
    modoboa_default_throttle_server,
    modoboa_instance,
    modoboa_server,
)
from tests.realservers.conftest_slapd import slapd, slapd_refint, slapd_tls
from tests.realservers.slapd import Slapd, ldif_record

LIST_DOMAIN = "lists.example.org"
MOCK_KEY = "matrix-api-key"

ENTRA_BACKENDS = ["memory", "cleanmail", "dryrun", "jsonfile", "ldap", "postfixadmin_pg", "postfixadmin_mariadb",
                  "modoboa"]
"""Every backend in the Entra suite's matrix; ``matrix_<name>`` fixtures of real servers live with them."""

# Real servers' session fixtures, registered once for the whole suite (one server each per session).
__all__ = ["modoboa", "modoboa_default_throttle", "modoboa_default_throttle_server", "modoboa_instance",
           "modoboa_server", "slapd", "slapd_refint", "slapd_tls"]


@dataclass
class BackendUnderTest:
    name: str
    adapter: Adapter
    addresses_only: bool = False
    """The platform's mailboxes are mail addresses: a userName that is not one is refused (400)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Gateway settings this backend needs (``make_settings`` keywords)."""


ServerFactory = Callable[..., Any]


@pytest.fixture
async def matrix_memory() -> BackendUnderTest:
    return BackendUnderTest("memory", MemoryAdapter())


@pytest.fixture
async def matrix_dryrun() -> BackendUnderTest:
    return BackendUnderTest("dryrun", DryRunAdapter(MemoryAdapter(), tenant="default"))


@pytest.fixture
async def matrix_cleanmail(aiohttp_server: ServerFactory) -> AsyncIterator[BackendUnderTest]:
    quirks = MockQuirks(auto_create_domains=True)
    mock: TestServer = await aiohttp_server(create_mock_app(MOCK_KEY, None, False, quirks, domains=[LIST_DOMAIN]))
    adapter = CleanmailAdapter(str(mock.make_url("/")), MOCK_KEY, default_domain=LIST_DOMAIN)
    yield BackendUnderTest("cleanmail", adapter, addresses_only=True)


@pytest.fixture
async def matrix_jsonfile(tmp_path: Path) -> BackendUnderTest:
    from scim_jsonfile import JsonFileAdapter  # the example plugin (examples/backend-plugin), installed by make

    adapter = JsonFileAdapter(tmp_path / "mail.json", "{slug}@{domain}", LIST_DOMAIN)
    await adapter.start()
    return BackendUnderTest("jsonfile", adapter, addresses_only=True)


@pytest.fixture
async def matrix_ldap(slapd: Slapd) -> AsyncIterator[BackendUnderTest]:
    """The ldap backend on the session's slapd, in containers of its own (an empty directory for each test)."""
    from adapters.ldap.plugin import PLUGIN, LdapSettings
    from adapters.plugins import BackendContext

    run = slapd.fresh_name("run")
    users_dn, groups_dn = f"ou={run},{slapd.users_dn}", f"ou={run},{slapd.groups_dn}"
    unit = {"changetype": "add", "objectClass": "organizationalUnit", "ou": run}
    slapd.modify(ldif_record(users_dn, unit) + "\n" + ldif_record(groups_dn, unit))  # one tool run for both
    settings = LdapSettings.model_validate({
        "url": slapd.url, "bind_dn": slapd.service_dn, "bind_password": slapd.service_password,
        "users_dn": users_dn, "groups_dn": groups_dn, "pool_size": 2, "timeout": 5.0, "deadline": 10.0,
    })
    adapter = PLUGIN.create(settings, BackendContext(tenant="default", list_domain=LIST_DOMAIN))
    yield BackendUnderTest("ldap", adapter)
    await adapter.close()

