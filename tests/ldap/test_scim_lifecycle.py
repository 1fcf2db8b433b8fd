"""The proof through SCIM requests only: the gateway on the ldap backend, against real slapd servers.

Requests are what Entra (and Okta, for passwords) send; what the directory holds afterwards is
checked with OpenLDAP's own tools, and binds are made as the provisioned users.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.http.app import STORE_KEY, create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings
from tests.entra.helpers import (
    ENTERPRISE,
    GROUP_URN,
    PATCH_URN,
    USER_URN,
    Client,
    call,
    create_group,
    create_user,
    find_one,
    get_group,
    get_user,
    patch_group,
    patch_user,
)
from tests.ldap.conftest import ldap_options
from tests.realservers.slapd import REFINT_PLACEHOLDER, Slapd


@pytest.fixture
async def scim(server: Slapd, aiohttp_client: ClientFactory) -> Client:
    app = create_app(make_settings(backend="ldap", backend_options=ldap_options(server)))
    return await aiohttp_client(app, headers=AUTH)


def _entra_user(address: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [USER_URN, ENTERPRISE],
        "externalId": address.split("@")[0],
        "userName": address,
        "active": True,
        "displayName": "Grace Hopper",
        "emails": [{"primary": True, "type": "work", "value": address}],
        "name": {"formatted": "Grace Hopper", "familyName": "Hopper", "givenName": "Grace"},
        ENTERPRISE: {"department": "Navy"},
    }
    body.update(extra)
    return body


def _patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_URN], "Operations": list(operations)}


def _user_dn(server: Slapd, address: str) -> str:
    return f"uid={address},{server.users_dn}"


def _members(server: Slapd, name: str) -> list[str]:
    entry = server.read(f"cn={name},{server.groups_dn}", ["member"])
    assert entry is not None, f"no group {name}"
    return sorted(entry.get("member"))


async def test_user_lifecycle(server: Slapd, scim: Client) -> None:
    address = f"{server.fresh_name('grace')}@example.org"
    dn = _user_dn(server, address)

    user = await create_user(scim, _entra_user(address))
    entry = server.read(dn)
    assert entry is not None, "no entry for the new user"
    assert (entry.first("mail"), entry.first("givenName"), entry.first("sn")) == (address, "Grace", "Hopper")
    assert (entry.first("cn"), entry.first("displayName")) == ("Grace Hopper", "Grace Hopper")
    assert entry.get("userPassword") == []  # Entra's create carries no password
    # What the directory has no place for is kept by the gateway and comes back as sent.
    assert user["externalId"] == address.split("@")[0] and user[ENTERPRISE] == {"department": "Navy"}
    assert user["emails"][0]["value"] == address and user["name"]["formatted"] == "Grace Hopper"

    # Okta sets passwords with PATCH replace; the directory hashes them.
    await patch_user(scim, user["id"], _patch({"op": "replace", "path": "password", "value": "Okta-Set-1"}))
    assert server.bind_ok(dn, "Okta-Set-1")
    stored = server.read(dn, ["userPassword"])
    assert stored is not None and stored.first("userPassword").startswith("{SSHA}")  # type: ignore[union-attr]

    disabled = await patch_user(scim, user["id"], _patch({"op": "Replace", "path": "active", "value": "False"}))
    assert disabled["active"] is False and not server.bind_ok(dn, "Okta-Set-1")
    enabled = await patch_user(scim, user["id"], _patch({"op": "Replace", "path": "active", "value": "True"}))
    assert enabled["active"] is True and server.bind_ok(dn, "Okta-Set-1")

    # A PUT with a password (as Okta's "push password" sends) while the user is disabled.
    put = {**_entra_user(address, active=False), "password": "Put-Pass-2"}
    replaced = (await call(scim, "PUT", f"{BASE}/Users/{user['id']}", put, expect=200)).json
    assert replaced["active"] is False and "password" not in replaced
    assert not server.bind_ok(dn, "Put-Pass-2")
    await patch_user(scim, user["id"], _patch({"op": "replace", "path": "active", "value": True}))
    assert server.bind_ok(dn, "Put-Pass-2")

    assert "password" not in json.dumps(await get_user(scim, user["id"])).lower()
    await call(scim, "DELETE", f"{BASE}/Users/{user['id']}", expect=204)
    assert server.read(dn) is None
    await call(scim, "GET", f"{BASE}/Users/{user['id']}", expect=404)


async def test_user_without_family_name_reads_back_as_sent(server: Slapd, scim: Client) -> None:
    address = f"{server.fresh_name('mononym')}@example.org"
    body = _entra_user(address, name={"givenName": "Plato"}, displayName="Plato")

    user = await create_user(scim, body)

    assert user["name"] == {"givenName": "Plato"}
    assert (await get_user(scim, user["id"]))["name"] == {"givenName": "Plato"}
    entry = server.read(_user_dn(server, address))
    assert entry is not None and entry.first("sn") == address  # inetOrgPerson requires an sn
    found = await find_one(scim, "Users", f'userName eq "{address.upper()}"')
    assert found["id"] == user["id"]


async def test_rename_and_group_lifecycle(server: Slapd, scim: Client) -> None:
    first_address = f"{server.fresh_name('ada')}@example.org"
    second_address = f"{server.fresh_name('alan')}@example.org"
    first = await create_user(scim, _entra_user(first_address))
    second = await create_user(scim, _entra_user(second_address))
    await patch_user(scim, first["id"], _patch({"op": "replace", "path": "password", "value": "Ada-Pass-1"}))
    name = server.fresh_name("Engineering")

    # Entra creates groups empty and adds members afterwards.
    group = await create_group(scim, {"schemas": [GROUP_URN], "externalId": "eng", "displayName": name,
                                      "members": []})
    assert _members(server, name) == [REFINT_PLACEHOLDER] and group.get("members", []) == []
    added = await patch_group(scim, group["id"], _patch(
        {"op": "Add", "path": "members", "value": [{"value": first["id"]}, {"value": second["id"]}]}))
    assert sorted(m["value"] for m in added["members"]) == sorted([first["id"], second["id"]])
    assert _members(server, name) == sorted([_user_dn(server, first_address), _user_dn(server, second_address)])
    again = await patch_group(scim, group["id"], _patch({"op": "Add", "path": "members",
                                                         "value": [{"value": first["id"]}]}))
    assert len(again["members"]) == 2

    renamed_address = f"{server.fresh_name('lovelace')}@example.org"
    renamed = await patch_user(scim, first["id"], _patch({"op": "Replace", "path": "userName",
                                                          "value": renamed_address}))
    assert renamed["userName"] == renamed_address
    assert server.read(_user_dn(server, first_address)) is None
    moved = server.read(_user_dn(server, renamed_address))
    assert moved is not None and moved.get("mail") == [renamed_address]
    assert server.bind_ok(_user_dn(server, renamed_address), "Ada-Pass-1")
    assert _user_dn(server, renamed_address).lower() in [m.lower() for m in _members(server, name)]
    members = (await get_group(scim, group["id"]))["members"]
    assert sorted(m["value"] for m in members) == sorted([first["id"], second["id"]])

    await patch_group(scim, group["id"], _patch(
        {"op": "Remove", "path": f'members[value eq "{first["id"]}"]'}))
    await call(scim, "DELETE", f"{BASE}/Users/{second['id']}", expect=204)
    # The last member is gone: the group stays, holding the placeholder that no SCIM client sees.
    emptied = await get_group(scim, group["id"])
    assert emptied.get("members", []) == []
    assert _members(server, name) == [REFINT_PLACEHOLDER]
    assert server.search(server.groups_dn, f"(member={_user_dn(server, second_address)})", ["1.1"]) == []

    retitled = await patch_group(scim, group["id"], _patch({"op": "Replace", "path": "displayName",
                                                            "value": name + " Team"}))
    assert retitled["displayName"] == name + " Team"
    assert server.read(f"cn={name} Team,{server.groups_dn}") is not None
    await call(scim, "DELETE", f"{BASE}/Groups/{group['id']}", expect=204)
    assert server.read(f"cn={name} Team,{server.groups_dn}") is None


async def test_a_deleted_user_leaves_every_group(server: Slapd, scim: Client) -> None:
    address = f"{server.fresh_name('leaver')}@example.org"
    user = await create_user(scim, _entra_user(address))
    names = [server.fresh_name("list") for _ in range(2)]
    for name in names:
        await create_group(scim, {"schemas": [GROUP_URN], "displayName": name,
                                  "members": [{"value": user["id"]}]})

    await call(scim, "DELETE", f"{BASE}/Users/{user['id']}", expect=204)

    assert server.read(_user_dn(server, address)) is None
    assert server.search(server.groups_dn, f"(member={_user_dn(server, address)})", ["1.1"]) == []
    for name in names:
        found = await find_one(scim, "Groups", f'displayName eq "{name}"')
        assert found.get("members", []) == []


async def test_the_gateway_reconnects_after_a_restart(server: Slapd, scim: Client) -> None:
    address = f"{server.fresh_name('restart')}@example.org"
    user = await create_user(scim, _entra_user(address))

    server.restart()

    assert (await find_one(scim, "Users", f'userName eq "{address}"'))["id"] == user["id"]
    later = await create_user(scim, _entra_user(f"{server.fresh_name('after')}@example.org"))
    await patch_user(scim, later["id"], _patch({"op": "Replace", "path": "displayName", "value": "After"}))


async def test_no_password_reaches_the_gateway_state(server: Slapd, scim: Client) -> None:
    address = f"{server.fresh_name('secret')}@example.org"
    user = await create_user(scim, _entra_user(address, password="Never-Stored-1"))
    await patch_user(scim, user["id"], _patch({"op": "replace", "path": "password", "value": "Never-Stored-2"}))
    assert server.bind_ok(_user_dn(server, address), "Never-Stored-2")
    app = scim.app
    assert app is not None
    stored = await app[STORE_KEY].get("default", "User", user["id"])
    assert stored is not None
    assert "Never-Stored" not in repr(stored)


async def test_a_delete_the_call_budget_cannot_finish_is_refused_before_any_write(
    server: Slapd, aiohttp_client: ClientFactory
) -> None:
    # Get (1), the search for its lists (1), delete (1), the search again (1), one edit per list (3): 7.
    for budget, status in ((6, 400), (7, 204)):
        app = create_app(make_settings(backend="ldap", backend_options=ldap_options(server),
                                       backend_call_budget=budget))
        client = await aiohttp_client(app, headers=AUTH)
        address = f"{server.fresh_name('budget')}@example.org"
        user = await create_user(client, _entra_user(address))
        names = [server.fresh_name("list") for _ in range(3)]
        for name in names:
            await create_group(client, {"schemas": [GROUP_URN], "displayName": name,
                                        "members": [{"value": user["id"]}]})

        reply = await call(client, "DELETE", f"{BASE}/Users/{user['id']}", expect=status)

        if status == 400:
            assert "budget" in reply.json["detail"]
            assert server.read(_user_dn(server, address)) is not None
            assert all(_user_dn(server, address).lower() in [m.lower() for m in _members(server, n)] for n in names)
        else:
            assert server.read(_user_dn(server, address)) is None
            assert server.search(server.groups_dn, f"(member={_user_dn(server, address)})", ["1.1"]) == []
