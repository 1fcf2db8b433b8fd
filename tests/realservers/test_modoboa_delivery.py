"""What Postfix would make of Modoboa's aliases after the gateway disabled and enabled an account.

Modoboa disables an account's internal self-alias (``address → address``) along with the
account and never enables it again, and no API call reaches it. Modoboa's own Postfix map
(``sql-aliases.cf``, made by ``manage.py generate_postfix_maps``) only returns enabled
aliases, so after a disable and an enable the address no longer maps to itself. Postfix
looks up ``user@domain`` first and ``@domain`` after it (virtual(5)): without a catch-all
the address falls through to the mailbox as before, but a domain with a catch-all alias
hands the re-enabled account's mail to the catch-all. These tests query that very map with
``postmap``, and show that the repair statement of the README fixes it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adapters.modoboa.adapter import SELF_ALIAS_REPAIR_SQL, ModoboaAdapter
from tests.realservers.matrix_modoboa import modoboa_adapter
from tests.realservers.modoboa import ModoboaInstance, ModoboaServer
from tests.realservers.support import apt_install, unavailable

WHAT = "Postfix's map lookups (postmap with PostgreSQL maps)"
Lookup = Callable[[str], str | None]


@pytest.fixture(scope="module")
def postfix_maps(modoboa_instance: ModoboaInstance, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Modoboa's own Postfix maps for this session's database, and a config directory for postmap."""
    apt_install(WHAT, ["postfix", "postfix-pgsql"],
                debconf={"postfix postfix/main_mailer_type": "select No configuration"})
    if shutil.which("postmap") is None:
        unavailable(WHAT, "postmap is not on the PATH")
    maps = tmp_path_factory.mktemp("postfix-maps")
    modoboa_instance.manage("generate_postfix_maps", "--destdir", str(maps))
    (maps / "main.cf").write_text("compatibility_level = 3.6\n")
    return maps


@pytest.fixture
def alias_map(postfix_maps: Path) -> Lookup:
    """What Postfix's virtual_alias_maps lookup of one key returns (None: no entry)."""

    def lookup(key: str) -> str | None:
        result = subprocess.run(["postmap", "-c", str(postfix_maps), "-q", key,
                                 f"pgsql:{postfix_maps / 'sql-aliases.cf'}"], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode in (0, 1), result.stderr
        return result.stdout.strip() or None

    return lookup


@pytest.fixture
async def adapter(modoboa: ModoboaServer) -> AsyncIterator[ModoboaAdapter]:
    modoboa.create_domain("example.com")
    adapter = modoboa_adapter(modoboa, list_domain="example.com")
    yield adapter
    await adapter.close()


def postfix_resolves(alias_map: Lookup, address: str) -> str:
    """Where Postfix sends ``address`` on Modoboa: its alias, else the domain's catch-all, else the mailbox."""
    return alias_map(address) or alias_map("@" + address.partition("@")[2]) or address


async def test_a_reenabled_account_loses_its_self_alias(modoboa: ModoboaServer, modoboa_instance: ModoboaInstance,
                                                        adapter: ModoboaAdapter, alias_map: Lookup) -> None:
    ann = await adapter.create_user({"userName": "ann@example.com", "active": True})
    await adapter.create_user({"userName": "bob@example.com", "active": True})
    assert alias_map("ann@example.com") == "ann@example.com"

    await adapter.update_user(await adapter.get_user(ann.key), {"active": False})
    assert alias_map("ann@example.com") is None  # disabled with the account, as it should

    await adapter.update_user(await adapter.get_user(ann.key), {"active": True})
    assert (await adapter.get_user(ann.key)).attributes["active"] is True
    # Modoboa's bug: the account is active, its self-alias is not (and no API reaches it).
    assert alias_map("ann@example.com") is None
    assert alias_map("bob@example.com") == "bob@example.com"

    # Without a catch-all the mail still reaches the mailbox; with one, the catch-all takes it.
    assert postfix_resolves(alias_map, "ann@example.com") == "ann@example.com"
    modoboa.expect(201, "POST", "/api/v2/aliases/", {"address": "@example.com",
                                                     "recipients": ["postmaster@elsewhere.example"]})
    assert postfix_resolves(alias_map, "ann@example.com") == "postmaster@elsewhere.example"
    assert postfix_resolves(alias_map, "bob@example.com") == "bob@example.com"

    # The README's repair statement puts it right, and leaves a deliberate forward alone.
    forward = await adapter.create_user({"userName": "carl@example.com", "active": True})
    carl = modoboa.list_all("/api/v2/accounts/?search=carl@example.com")[0]
    modoboa.expect(200, "PATCH", f"/api/v2/accounts/{carl['pk']}/", {"is_active": False})
    modoboa.expect(201, "POST", "/api/v2/aliases/", {"address": forward.key, "recipients": ["bob@example.com"]})
    modoboa.expect(200, "PATCH", f"/api/v2/accounts/{carl['pk']}/", {"is_active": True})
    modoboa_instance.postgres.run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", modoboa_instance.database,
                                  "-c", SELF_ALIAS_REPAIR_SQL)
    assert postfix_resolves(alias_map, "ann@example.com") == "ann@example.com"
    assert alias_map("carl@example.com") == "bob@example.com"  # the forward, not the self-alias
