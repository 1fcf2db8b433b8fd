"""CleanmailAdapter end to end against the mock Cleanmail API."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import Adapter, AlreadyExists, NotFound, Rejected, Unavailable
from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mapping import slugify
from adapters.cleanmail.mock_faults import FaultConfig
from adapters.cleanmail.mock_state import MockQuirks
from gateway.scim.filter_ast import And, AttrPath, Compare, Filter, Or, Present
from tests.cleanmail.conftest import API_KEY, DOMAIN, AdapterFactory

LEGACY = MockQuirks()
MODERN = MockQuirks(
    paging=True,
    full_replace_put=False,
    errors_as_200=False,
    not_found_as_empty=False,
    dedicated_rename=False,
)


def eq(attr: str, value: Any) -> Filter:
    return Compare(AttrPath(attr), "eq", value)


def user(local: str, **extra: Any) -> dict[str, Any]:
    return {"userName": f"{local}@{DOMAIN}", "active": True, **extra}


async def test_satisfies_the_adapter_protocol(adapter: CleanmailAdapter) -> None:
    assert isinstance(adapter, Adapter)
    typed: Adapter = adapter
    caps = typed.capabilities
    assert caps.user_attributes == {"userName", "active", "name.givenName", "name.familyName", "displayName"}
    assert caps.user_filterable >= {"userName"} and caps.groups
    assert caps.group_filterable == {"displayName"}
    await adapter.check()


@pytest.mark.parametrize("quirks", [LEGACY, MODERN], ids=["legacy", "modern"])
async def test_user_lifecycle(adapter_factory: AdapterFactory, quirks: MockQuirks) -> None:
    adapter, _ = await adapter_factory(quirks)
    created = await adapter.create_user(
        user("Anna.Muster", name={"givenName": "Anna", "familyName": "Muster"}, displayName="Anna M")
    )
    key = f"anna.muster@{DOMAIN}"
    assert created.key == key
    assert created.attributes == {
        "userName": key,
        "active": True,
        "name": {"givenName": "Anna", "familyName": "Muster"},
        "displayName": "Anna M",
    }
    assert (await adapter.get_user(key.upper())).attributes == created.attributes

    updated = await adapter.update_user(await adapter.get_user(key), {"name.givenName": "Anne", "displayName": None})
    assert updated.attributes["name"] == {"givenName": "Anne", "familyName": "Muster"}
    assert "displayName" not in updated.attributes

    disabled = await adapter.update_user(await adapter.get_user(key), {"active": False})
    assert disabled.attributes["active"] is False
    assert disabled.attributes["name"]["givenName"] == "Anne"

    rename = {"userName": f"Anne.Muster@{DOMAIN}", "active": True}
    renamed = await adapter.update_user(await adapter.get_user(key), rename)
    assert renamed.key == f"anne.muster@{DOMAIN}" and renamed.attributes["active"] is True
    with pytest.raises(NotFound):
        await adapter.get_user(key)

    await adapter.delete_user(renamed)
    with pytest.raises(NotFound):
        await adapter.get_user(renamed.key)
    with pytest.raises(NotFound):
        await adapter.delete_user(renamed)


async def test_update_keeps_fields_the_gateway_does_not_own(adapter_factory: AdapterFactory) -> None:
    adapter, server = await adapter_factory()
    await adapter.create_user(user("a", active=False))
    mailbox = server.store.get_mailbox(f"a@{DOMAIN}")
    assert mailbox is not None
    mailbox.policy, mailbox.quarantine_report = "no-report", "weekly"
    await adapter.update_user(await adapter.get_user(f"a@{DOMAIN}"), {"name.familyName": "X"})
    # The legacy PUT would have reset these had the adapter not sent them back.
    assert (mailbox.status, mailbox.policy, mailbox.quarantine_report) == ("disabled", "no-report", "weekly")


async def test_noop_update_and_case_only_rename_make_no_write(adapter_factory: AdapterFactory) -> None:
    adapter, server = await adapter_factory()
    await adapter.create_user(user("a", displayName="A"))
    server.stats.reset()
    current = await adapter.get_user(f"a@{DOMAIN}")
    record = await adapter.update_user(current, {"displayName": "A", "userName": f"A@{DOMAIN}"})
    assert record.key == f"a@{DOMAIN}"
    assert set(server.stats.calls) == {"GET /api/v1/mailboxes/{address}"}


async def test_create_conflicts(adapter_factory: AdapterFactory) -> None:
    adapter, _ = await adapter_factory()
    await adapter.create_user(user("a"))
    with pytest.raises(AlreadyExists) as dup:
        await adapter.create_user({"userName": f"A@{DOMAIN.upper()}", "active": True})
    assert dup.value.existing_key == f"a@{DOMAIN}"
    await adapter.create_group({"displayName": "Team"}, [])
    with pytest.raises(Rejected) as clash:
        await adapter.create_user(user("team"))
    assert clash.value.scim_type == "uniqueness" and clash.value.status == 409


async def test_unknown_domain_and_bad_values_are_rejected(adapter: CleanmailAdapter) -> None:
    with pytest.raises(Rejected) as unknown:
        await adapter.create_user({"userName": "x@elsewhere.ch", "active": True})
    assert unknown.value.scim_type == "invalidValue" and "elsewhere.ch" in unknown.value.detail
    with pytest.raises(Rejected):
        await adapter.create_user({"userName": "not-an-address", "active": True})
    with pytest.raises(Rejected):
        await adapter.create_user(user("b", active="yes"))
    await adapter.create_user(user("c"))
    with pytest.raises(Rejected):
        await adapter.update_user(await adapter.get_user(f"c@{DOMAIN}"), {"emails": []})


async def test_rename_conflict_and_membership(adapter_factory: AdapterFactory) -> None:
    adapter, _ = await adapter_factory()
    await adapter.create_user(user("a"))
    await adapter.create_user(user("b"))
    group = await adapter.create_group({"displayName": "Team"}, [f"a@{DOMAIN}"])
    with pytest.raises(AlreadyExists) as taken:
        await adapter.update_user(await adapter.get_user(f"a@{DOMAIN}"), {"userName": f"b@{DOMAIN}"})
    assert taken.value.existing_key == f"b@{DOMAIN}"
    await adapter.update_user(await adapter.get_user(f"a@{DOMAIN}"), {"userName": f"c@{DOMAIN}"})
    assert (await adapter.get_group(group.key)).member_keys == [f"c@{DOMAIN}"]


async def test_rename_applied_despite_an_error_is_recognised(adapter_factory: AdapterFactory) -> None:
    adapter, server = await adapter_factory()
    await adapter.create_user(user("a"))
    server.faults.configure(FaultConfig(error_after_commit_rate=1.0, methods=("POST",)))
    renamed = await adapter.update_user(await adapter.get_user(f"a@{DOMAIN}"), {"userName": f"z@{DOMAIN}"})
    assert renamed.key == f"z@{DOMAIN}"
    server.faults.configure(FaultConfig(error_rate=1.0, methods=("POST",)))
    with pytest.raises(Unavailable) as lost:
        await adapter.update_user(await adapter.get_user(f"z@{DOMAIN}"), {"userName": f"y@{DOMAIN}"})
    assert lost.value.may_apply


async def test_ambiguous_create_then_read_back(adapter_factory: AdapterFactory) -> None:
    adapter, server = await adapter_factory()
    server.faults.configure(FaultConfig(error_after_commit_rate=1.0, methods=("POST",)))
    with pytest.raises(Unavailable) as caught:
        await adapter.create_user(user("a"))
    assert caught.value.may_apply
    found = await adapter.find_users(eq("userName", f"A@{DOMAIN}"), 0, 2)
    assert [r.key for r in found.items] == [f"a@{DOMAIN}"]
    assert server.stats.calls["POST /api/v1/mailboxes"] == 1


async def test_ambiguous_group_create_is_reported_as_such(adapter_factory: AdapterFactory) -> None:
    adapter, server = await adapter_factory()
    server.faults.configure(FaultConfig(error_after_commit_rate=1.0, methods=("POST",)))
    with pytest.raises(Unavailable) as applied:
        await adapter.create_group({"displayName": "Team"}, [])
    assert applied.value.may_apply
    found = await adapter.find_groups(eq("displayName", "team"), 0, 2)
    assert [(g.key, g.attributes) for g in found.items] == [(f"team@{DOMAIN}", {"displayName": "Team"})]
    server.faults.configure(FaultConfig(error_rate=1.0, methods=("POST",)))
    with pytest.raises(Unavailable) as lost:
        await adapter.create_group({"displayName": "Other"}, [])
    assert lost.value.may_apply
    assert server.stats.calls["POST /api/v1/lists"] == 2


@pytest.mark.parametrize("quirks", [LEGACY, MODERN], ids=["legacy", "modern"])
async def test_find_users(adapter_factory: AdapterFactory, quirks: MockQuirks) -> None:
    adapter, server = await adapter_factory(quirks)
    for name in ("c", "a", "b"):
        await adapter.create_user(user(name, active=name != "b"))
    everyone = await adapter.find_users(None, 0, 10)
    assert [r.key for r in everyone.items] == [f"{n}@{DOMAIN}" for n in "abc"] and everyone.total == 3

    server.stats.reset()
    one = await adapter.find_users(eq("USERNAME", f"B@{DOMAIN}"), 0, 10)
    assert [r.key for r in one.items] == [f"b@{DOMAIN}"] and one.total == 1
    assert server.stats.to_json()["calls"] == {"GET /api/v1/mailboxes/{address}": 1}
    assert (await adapter.find_users(eq("userName", f"nobody@{DOMAIN}"), 0, 10)).total == 0

    inactive = await adapter.find_users(eq("active", False), 0, 10)
    assert [r.key for r in inactive.items] == [f"b@{DOMAIN}"]
    both = await adapter.find_users(Or(eq("userName", f"c@{DOMAIN}"), eq("userName", f"a@{DOMAIN}")), 0, 10)
    assert [r.key for r in both.items] == [f"a@{DOMAIN}", f"c@{DOMAIN}"]
    assert (await adapter.find_users(Or(eq("userName", f"c@{DOMAIN}"), eq("active", True)), 1, 10)).total == 2
    active_b = And(eq("userName", f"b@{DOMAIN}"), eq("active", True))
    assert (await adapter.find_users(active_b, 0, 10)).total == 0
    never = And(eq("userName", f"a@{DOMAIN}"), eq("userName", f"b@{DOMAIN}"))
    assert (await adapter.find_users(never, 0, 10)).items == []
    with pytest.raises(Rejected) as bad:
        await adapter.find_users(Present(AttrPath("userName")), 0, 10)
    assert bad.value.scim_type == "invalidFilter"


@pytest.mark.parametrize("paging", [True, False])
async def test_find_users_pages_across_the_server_cap(adapter_factory: AdapterFactory, paging: bool) -> None:
    adapter, _ = await adapter_factory(MockQuirks(max_page_size=3, paging=paging))
    for i in range(8):
        await adapter.create_user(user(f"u{i}"))
    page = await adapter.find_users(None, 1, 5)
    assert [r.key for r in page.items] == [f"u{i}@{DOMAIN}" for i in range(1, 6)]
    assert page.total == 8
    tail = await adapter.find_users(None, 6, 5)
    assert len(tail.items) == 2
    assert (await adapter.find_users(None, 0, 0)).items == []


@pytest.mark.parametrize("quirks", [LEGACY, MODERN], ids=["legacy", "modern"])
async def test_group_lifecycle(adapter_factory: AdapterFactory, quirks: MockQuirks) -> None:
    adapter, _ = await adapter_factory(quirks)
    for name in ("a", "b", "c"):
        await adapter.create_user(user(name))
    group = await adapter.create_group({"displayName": "Zürich Sales"}, [f"A@{DOMAIN}", f"b@{DOMAIN}"])
    assert group.key == f"zurich-sales@{DOMAIN}"
    assert group.attributes == {"displayName": "Zürich Sales"}
    assert group.member_keys == [f"a@{DOMAIN}", f"b@{DOMAIN}"]

    for _ in range(2):
        await adapter.add_members(group, [f"c@{DOMAIN}", f"a@{DOMAIN}"])
    assert (await adapter.get_group(group.key)).member_keys == [f"a@{DOMAIN}", f"b@{DOMAIN}", f"c@{DOMAIN}"]
    for _ in range(2):
        await adapter.remove_members(group, [f"b@{DOMAIN}"])
    assert (await adapter.get_group(group.key)).member_keys == [f"a@{DOMAIN}", f"c@{DOMAIN}"]

    renamed = await adapter.update_group(await adapter.get_group(group.key), {"displayName": "Sales ZH"})
    assert renamed.key == group.key and renamed.attributes["displayName"] == "Sales ZH"
    assert renamed.member_keys == [f"a@{DOMAIN}", f"c@{DOMAIN}"]  # not cleared by the PUT
    replaced = await adapter.update_group(renamed, {"members": [f"b@{DOMAIN}"]})
    assert replaced.member_keys == [f"b@{DOMAIN}"]

    await adapter.delete_user(await adapter.get_user(f"b@{DOMAIN}"))
    assert (await adapter.get_group(group.key)).member_keys == []
    await adapter.delete_group(group)
    with pytest.raises(NotFound):
        await adapter.get_group(group.key)
    with pytest.raises(NotFound):
        await adapter.add_members(group, [f"a@{DOMAIN}"])


async def test_group_conflicts_and_bad_members(adapter_factory: AdapterFactory) -> None:
    adapter, _ = await adapter_factory()
    sales = await adapter.create_group({"displayName": "Sales"}, [])
    with pytest.raises(AlreadyExists) as dup:
        await adapter.create_group({"displayName": "SALES"}, [])
    assert dup.value.existing_key == sales.key
    await adapter.update_group(sales, {"displayName": "Marketing"})
    with pytest.raises(Rejected) as address_taken:
        await adapter.create_group({"displayName": "Sales"}, [])
    assert address_taken.value.scim_type == "uniqueness" and "Marketing" in address_taken.value.detail
    other = await adapter.create_group({"displayName": "Ops"}, [])
    with pytest.raises(AlreadyExists):
        await adapter.update_group(other, {"displayName": "marketing"})
    with pytest.raises(Rejected) as ghost:
        await adapter.add_members(other, [f"ghost@{DOMAIN}"])
    assert f"ghost@{DOMAIN}" in ghost.value.detail
    await adapter.remove_members(other, [f"ghost@{DOMAIN}"])
    with pytest.raises(Rejected):
        await adapter.create_group({"displayName": "  "}, [])


async def test_find_groups(adapter_factory: AdapterFactory) -> None:
    adapter, _ = await adapter_factory(MockQuirks(max_page_size=2))
    for name in ("Ops", "Sales", "HR"):
        await adapter.create_group({"displayName": name}, [])
    listing = await adapter.find_groups(None, 0, 10)
    assert [g.key for g in listing.items] == [f"{n}@{DOMAIN}" for n in ("hr", "ops", "sales")]
    found = await adapter.find_groups(eq("displayName", "sales"), 0, 10)
    assert [g.attributes["displayName"] for g in found.items] == ["Sales"]
    either = await adapter.find_groups(Or(eq("displayName", "HR"), eq("displayName", "Ops")), 0, 1)
    assert [g.key for g in either.items] == [f"hr@{DOMAIN}"] and either.total == 2
    assert (await adapter.find_groups(eq("displayName", "nobody"), 0, 10)).total == 0


async def test_list_address_template_and_domain_discovery(adapter_factory: AdapterFactory) -> None:
    adapter, server = await adapter_factory(list_address_template="dl-{slug}@{domain}", default_domain=None)
    group = await adapter.create_group({"displayName": "Team A"}, [])
    assert group.key == f"dl-team-a@{DOMAIN}"
    server.store.add_domain("second.ch")
    fresh, _ = await adapter_factory(default_domain=None)
    fresh.client.base_url = adapter.client.base_url
    with pytest.raises(Rejected) as ambiguous:
        await fresh.create_group({"displayName": "Team B"}, [])
    assert "default_domain" in ambiguous.value.detail


def test_template_is_validated() -> None:
    for bad in ("{slug}", "{name}@{domain}", "{slug}@{domain}@x"):
        with pytest.raises(ValueError):
            CleanmailAdapter("http://h", API_KEY, list_address_template=bad)


def test_slugify() -> None:
    assert slugify("Zürich Sales & Marketing!") == "zurich-sales-marketing"
    assert slugify("  --x--  ") == "x"
    assert slugify("営業") == slugify("営業") and slugify("営業").startswith("group-")
    assert slugify("営業") != slugify("総務")
    assert len(slugify("a" * 200)) == 64


async def test_check_reports_a_wrong_key(adapter_factory: AdapterFactory) -> None:
    adapter, _ = await adapter_factory()
    wrong = CleanmailAdapter(str(adapter.client.base_url), "wrong-key", deadline=1)
    try:
        with pytest.raises(Unavailable):
            await wrong.check()
    finally:
        await wrong.close()


async def test_stats_count_calls_and_retries(adapter_factory: AdapterFactory) -> None:
    adapter, server = await adapter_factory(max_attempts=10)
    server.faults.configure(FaultConfig(error_rate=0.5, seed=5, methods=("GET",)))
    await adapter.create_user(user("a"))
    for _ in range(6):
        await adapter.get_user(f"a@{DOMAIN}")
    stats = adapter.statistics()
    assert stats["calls"] == 7 and stats["retries"] == server.stats.faults["error"] > 0
    assert stats["attempts"] == stats["calls"] + stats["retries"]
