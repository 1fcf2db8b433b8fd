"""Profiles and attribute maps chosen by settings alone, against a real slapd."""

from __future__ import annotations

from adapters.base import AttrPath, Compare
from adapters.ldap.mapping import GroupState, UserState
from adapters.plugins import BackendContext
from tests.ldap.conftest import AdapterFactory
from tests.realservers.slapd import Slapd


async def test_the_status_attribute_profile(slapd: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(slapd, profile="mailuser")
    local = slapd.fresh_name("status")
    record = await adapter.create_user({"userName": f"{local}@example.org", "password": "Status-Pass-1"})
    assert isinstance(record.state, UserState)
    dn = record.state.dn
    assert dn == f"mail={local}@example.org,{slapd.users_dn}"
    entry = slapd.read(dn)
    assert entry is not None
    assert sorted(entry.get("objectClass")) == ["inetOrgPerson", "mailUser"]
    assert entry.first("uid") == local and entry.first("accountStatus") == "active"

    disabled = await adapter.update_user(record, {"active": False})
    assert disabled.attributes["active"] is False
    assert slapd.read(dn, ["accountStatus"]).first("accountStatus") == "disabled"  # type: ignore[union-attr]
    # The platform reads the status itself; the directory still lets the mailbox bind.
    assert slapd.bind_ok(dn, "Status-Pass-1")

    renamed = await adapter.update_user(disabled, {"userName": f"{local}-new@example.org", "active": True})
    assert isinstance(renamed.state, UserState)
    assert renamed.state.dn == f"mail={local}-new@example.org,{slapd.users_dn}"
    moved = slapd.read(renamed.state.dn)
    assert moved is not None and moved.get("mail") == [f"{local}-new@example.org"]
    assert moved.first("uid") == f"{local}-new" and moved.first("accountStatus") == "active"
    assert renamed.attributes == {"userName": f"{local}-new@example.org", "active": True}


async def test_status_values_and_attribute_map_from_settings(slapd: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(
        slapd, profile="mailuser", status_active_value="enabled", status_disabled_value="locked",
        attribute_map={"title": "title", "displayName": ""}, user_dn_template="uid={local_part}",
        derived_attributes={"uid": ""},
    )
    assert "title" in adapter.capabilities.user_attributes
    assert "displayName" not in adapter.capabilities.user_attributes  # the gateway keeps it now
    local = slapd.fresh_name("mapped")
    record = await adapter.create_user({"userName": f"{local}@example.org", "title": "Engineer", "active": False})
    assert isinstance(record.state, UserState)
    entry = slapd.read(record.state.dn)
    assert record.state.dn == f"uid={local},{slapd.users_dn}"
    assert entry is not None and entry.first("title") == "Engineer" and entry.first("accountStatus") == "locked"
    found = await adapter.find_users(Compare(AttrPath("title"), "eq", "engineer"), 0, 100)
    assert record.key in [r.key for r in found.items]
    assert (await adapter.get_user(record.key)).attributes == {
        "userName": f"{local}@example.org", "active": False, "title": "Engineer"}


async def test_lists_get_an_address_when_the_profile_has_a_place_for_it(
    slapd: Slapd, make_adapter: AdapterFactory
) -> None:
    context = BackendContext(tenant="test", list_domain="lists.example.org")
    adapter = await make_adapter(slapd, context, group_mail_attribute="mailLocalAddress",
                                 group_mail_object_classes=["inetLocalMailRecipient"])
    name = slapd.fresh_name("Sales Zürich")
    group = await adapter.create_group({"displayName": name}, [])
    assert isinstance(group.state, GroupState)
    entry = slapd.read(group.state.dn)
    assert entry is not None
    assert entry.first("mailLocalAddress") == f"{name.lower().replace(' ', '-').replace('ü', 'u')}@lists.example.org"
    assert "inetLocalMailRecipient" in entry.get("objectClass")
    assert group.attributes == {"displayName": name}
