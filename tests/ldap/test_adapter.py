"""The ldap adapter against real slapd servers, without and with the refint overlay.

What the directory holds is checked with OpenLDAP's own tools (``Slapd.read`` / ``bind_ok``),
never with the library the adapter is built on.
"""

from __future__ import annotations

import pytest

from adapters.base import AlreadyExists, AttrPath, Compare, NotFound, Or, Rejected
from adapters.ldap.adapter import LdapAdapter
from adapters.ldap.mapping import UserState
from tests.ldap.conftest import AdapterFactory
from tests.realservers.slapd import PERMANENTLY_LOCKED, Slapd


def _address(server: Slapd, prefix: str = "user") -> str:
    return f"{server.fresh_name(prefix)}@example.org"


def _dn(record_state: object) -> str:
    assert isinstance(record_state, UserState)
    return record_state.dn


async def test_create_writes_the_mapped_attributes(server: Slapd, adapter: LdapAdapter) -> None:
    address = _address(server).replace("user", "User")
    record = await adapter.create_user({
        "userName": address, "active": True, "displayName": "Ann Example",
        "name": {"givenName": "Ann", "familyName": "Example"},
    })

    entry = server.read(_dn(record.state))
    assert entry is not None
    assert entry.get("objectClass") == ["inetOrgPerson"]
    assert entry.first("mail") == address and entry.first("uid") == address
    assert (entry.first("givenName"), entry.first("sn"), entry.first("cn")) == ("Ann", "Example", "Ann Example")
    assert entry.first("displayName") == "Ann Example"
    assert entry.get("userPassword") == [] and entry.get("pwdAccountLockedTime") == []
    assert record.attributes == {"userName": address, "active": True, "displayName": "Ann Example",
                                 "name": {"givenName": "Ann", "familyName": "Example"}}
    assert (await adapter.get_user(record.key)).attributes == record.attributes


async def test_a_missing_family_name_is_stored_as_the_address_and_read_back_as_missing(
    server: Slapd, adapter: LdapAdapter
) -> None:
    address = _address(server)
    record = await adapter.create_user({"userName": address, "name": {"givenName": "Solo"}})

    entry = server.read(_dn(record.state))
    assert entry is not None and entry.first("sn") == address and entry.first("cn") == "Solo"
    read = await adapter.get_user(record.key)
    assert read.attributes == {"userName": address, "active": True, "name": {"givenName": "Solo"}}

    renamed = await adapter.update_user(read, {"userName": "x" + address})
    assert "name" in renamed.attributes and "familyName" not in renamed.attributes["name"]
    assert server.read(_dn(renamed.state), ["sn"]).first("sn") == "x" + address  # type: ignore[union-attr]


async def test_user_name_is_unique_and_found_case_insensitively(server: Slapd, adapter: LdapAdapter) -> None:
    address = _address(server)
    record = await adapter.create_user({"userName": address})

    found = await adapter.find_users(Compare(AttrPath("userName"), "eq", address.upper()), 0, 10)
    assert [r.key for r in found.items] == [record.key] and found.total == 1
    with pytest.raises(AlreadyExists) as clash:
        await adapter.create_user({"userName": address.upper()})
    assert clash.value.existing_key == record.key


async def test_an_address_held_by_another_entry_is_taken(server: Slapd, adapter: LdapAdapter) -> None:
    address = _address(server)
    foreign = f"cn={server.fresh_name('foreign')},{server.users_dn}"
    server.add(foreign, {"objectClass": "inetOrgPerson", "cn": "f", "sn": "f", "mail": address.upper()})

    with pytest.raises(AlreadyExists) as clash:
        await adapter.create_user({"userName": address})

    assert clash.value.existing_key == foreign.lower()
    assert server.read(f"uid={address},{server.users_dn}") is None  # the new entry was taken back
    assert [e.dn for e in server.search(server.users_dn, f"(mail={address})", ["1.1"])] == [foreign]


async def test_password_lock_and_unlock(server: Slapd, adapter: LdapAdapter) -> None:
    record = await adapter.create_user({"userName": _address(server), "password": "First-Pass-1"})
    dn = _dn(record.state)
    entry = server.read(dn, ["userPassword"])
    assert entry is not None and entry.first("userPassword", ).startswith("{SSHA}")  # type: ignore[union-attr]
    assert server.bind_ok(dn, "First-Pass-1")

    disabled = await adapter.update_user(record, {"active": False})
    assert disabled.attributes["active"] is False
    assert server.read(dn, ["pwdAccountLockedTime"]).first("pwdAccountLockedTime") == PERMANENTLY_LOCKED  # type: ignore[union-attr]
    assert not server.bind_ok(dn, "First-Pass-1")

    # A password change would lift ppolicy's lock: the mailbox must stay disabled.
    still_disabled = await adapter.update_user(disabled, {"password": "Second-Pass-2"})
    assert still_disabled.attributes["active"] is False
    assert not server.bind_ok(dn, "Second-Pass-2")

    enabled = await adapter.update_user(await adapter.get_user(record.key), {"active": True})
    assert enabled.attributes["active"] is True
    assert server.bind_ok(dn, "Second-Pass-2")


async def test_created_disabled_with_a_password_stays_locked(server: Slapd, adapter: LdapAdapter) -> None:
    record = await adapter.create_user({"userName": _address(server), "active": False, "password": "Pass-Word-3"})
    assert record.attributes["active"] is False
    assert not server.bind_ok(_dn(record.state), "Pass-Word-3")
    assert (await adapter.get_user(record.key)).attributes["active"] is False


async def test_a_refused_password_leaves_no_entry(server: Slapd, adapter: LdapAdapter) -> None:
    address = _address(server)
    # slapd refuses a password value it cannot take: an empty one is not sent, a NUL is refused.
    with pytest.raises(Rejected):
        await adapter.create_user({"userName": address, "password": "bad\x00password"})
    assert (await adapter.find_users(Compare(AttrPath("userName"), "eq", address), 0, 10)).total == 0


async def test_rename_moves_the_entry_and_its_memberships(server: Slapd, adapter: LdapAdapter) -> None:
    record = await adapter.create_user({"userName": _address(server), "password": "Rename-Me-4"})
    other = await adapter.create_user({"userName": _address(server)})
    group = await adapter.create_group({"displayName": server.fresh_name("list")}, [record.key, other.key])
    new_address = _address(server, "renamed")

    renamed = await adapter.update_user(record, {"userName": new_address})

    assert renamed.key != record.key and renamed.attributes["userName"] == new_address
    assert server.read(_dn(record.state)) is None
    entry = server.read(_dn(renamed.state))
    assert entry is not None and entry.get("mail") == [new_address] and entry.get("uid") == [new_address]
    assert server.bind_ok(_dn(renamed.state), "Rename-Me-4")
    members = (await adapter.get_group(group.key)).member_keys
    assert sorted(members) == sorted([renamed.key, other.key])
    with pytest.raises(NotFound):
        await adapter.get_user(record.key)


async def test_rename_onto_a_taken_address_or_dn_is_refused(server: Slapd, adapter: LdapAdapter) -> None:
    first = await adapter.create_user({"userName": _address(server)})
    second = await adapter.create_user({"userName": _address(server), "displayName": "Second"})
    # An entry that has the DN the new address would give, under another address.
    squatter = _address(server)
    server.add(f"uid={squatter},{server.users_dn}", {"objectClass": "inetOrgPerson", "cn": "s", "sn": "s",
                                                     "mail": _address(server)})

    with pytest.raises(Rejected) as refused:
        await adapter.update_user(second, {"userName": squatter, "displayName": "Changed"})
    assert refused.value.status == 409
    unchanged = await adapter.get_user(second.key)
    assert unchanged.attributes["displayName"] == "Second"
    assert first.key != second.key


async def test_delete_removes_the_entry_from_every_group(server: Slapd, adapter: LdapAdapter) -> None:
    leaving = await adapter.create_user({"userName": _address(server)})
    staying = await adapter.create_user({"userName": _address(server)})
    shared = await adapter.create_group({"displayName": server.fresh_name("shared")}, [leaving.key, staying.key])
    alone = await adapter.create_group({"displayName": server.fresh_name("alone")}, [leaving.key])

    await adapter.delete_user(leaving)

    assert server.read(_dn(leaving.state)) is None
    assert (await adapter.get_group(shared.key)).member_keys == [staying.key]
    assert (await adapter.get_group(alone.key)).member_keys == []
    assert server.search(server.groups_dn, f"(member={_dn(leaving.state)})", ["1.1"]) == []
    with pytest.raises(NotFound):
        await adapter.delete_user(leaving)


async def test_group_lifecycle_with_the_placeholder(server: Slapd, adapter: LdapAdapter) -> None:
    user = await adapter.create_user({"userName": _address(server)})
    name = server.fresh_name("Team")
    group = await adapter.create_group({"displayName": name}, [])
    group_dn = f"cn={name},{server.groups_dn}"
    assert group.member_keys == [] and group.attributes == {"displayName": name}
    assert server.read(group_dn, ["member"]).get("member") == [f"cn=placeholder,{server.base_dn}"]  # type: ignore[union-attr]

    await adapter.add_members(group, [user.key])
    await adapter.add_members(group, [user.key])  # idempotent, even from a stale record
    current = await adapter.get_group(group.key)
    assert current.member_keys == [user.key]
    assert len(server.read(group_dn, ["member"]).get("member")) == 1  # type: ignore[union-attr]

    await adapter.remove_members(current, [user.key])
    await adapter.remove_members(current, [user.key])
    emptied = await adapter.get_group(group.key)
    assert emptied.member_keys == []
    assert server.read(group_dn, ["member"]).get("member") == [f"cn=placeholder,{server.base_dn}"]  # type: ignore[union-attr]

    renamed = await adapter.update_group(emptied, {"displayName": name + " renamed"})
    assert renamed.attributes == {"displayName": name + " renamed"} and renamed.key != group.key
    with pytest.raises(AlreadyExists):
        await adapter.create_group({"displayName": (name + " RENAMED")}, [])

    await adapter.delete_group(renamed)
    with pytest.raises(NotFound):
        await adapter.get_group(renamed.key)


async def test_listing_pages_in_a_stable_order(server: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(server)
    prefix = server.fresh_name("page")
    made = [await adapter.create_user({"userName": f"{prefix}-{i}@example.org", "name": {"givenName": prefix}})
            for i in range(5)]
    flt = Compare(AttrPath("name", "givenName"), "eq", prefix)

    first, rest = await adapter.find_users(flt, 0, 2), await adapter.find_users(flt, 2, 10)

    assert first.total == rest.total == 5
    assert [r.key for r in first.items + rest.items] == sorted(r.key for r in made)
    everyone = await adapter.find_users(None, 0, 1000)
    assert {r.key for r in made} <= {r.key for r in everyone.items}
    either = Or(Compare(AttrPath("userName"), "eq", made[0].attributes["userName"]),
                Compare(AttrPath("userName"), "eq", made[1].attributes["userName"]))
    assert (await adapter.find_users(either, 0, 10)).total == 2


async def test_members_outside_the_mailboxes_are_not_shown(server: Slapd, adapter: LdapAdapter) -> None:
    user = await adapter.create_user({"userName": _address(server)})
    name = server.fresh_name("mixed")
    server.add(f"cn={name},{server.groups_dn}", {"objectClass": "groupOfNames", "cn": name,
                                                 "member": [server.service_dn, _dn(user.state)]})
    found = await adapter.find_groups(Compare(AttrPath("displayName"), "eq", name.upper()), 0, 10)
    assert [g.member_keys for g in found.items] == [[user.key]]
    await adapter.remove_members(found.items[0], [user.key])
    # The value the gateway does not manage stays, and no placeholder is needed.
    assert server.read(f"cn={name},{server.groups_dn}", ["member"]).get("member") == [server.service_dn]  # type: ignore[union-attr]
