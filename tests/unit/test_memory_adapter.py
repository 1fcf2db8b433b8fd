"""The in-memory backend: its records, indexes and errors, and that callers only ever get copies."""

from __future__ import annotations

import pytest

from adapters.base import AlreadyExists, GroupRecord, NotFound, Rejected, UserRecord
from adapters.memory import MemoryAdapter
from gateway.scim.filter import parse_filter
from tests.memory_support import bytes_per_call


def _attrs(name: str, given: str = "Ann") -> dict[str, object]:
    return {"userName": name, "name": {"givenName": given, "familyName": "Lee"}, "displayName": f"{given} Lee"}


async def test_create_and_read_back() -> None:
    adapter = MemoryAdapter()
    created = await adapter.create_user({**_attrs("Ann@X.ch"), "displayName": None})
    expected = {"userName": "Ann@X.ch", "name": {"givenName": "Ann", "familyName": "Lee"}, "active": True}
    assert created == UserRecord("ann@x.ch", expected)
    assert list(created.attributes) == ["userName", "name", "active"]  # attribute order kept
    assert await adapter.get_user("ann@x.ch") == created
    page = await adapter.find_users(parse_filter('userName eq "ANN@x.CH"'), 0, 10)
    assert page.items == [created] and page.total == 1


async def test_errors() -> None:
    adapter = MemoryAdapter()
    await adapter.create_user(_attrs("a@x.ch"))
    with pytest.raises(AlreadyExists) as taken:
        await adapter.create_user(_attrs("A@X.CH"))
    assert taken.value.existing_key == "a@x.ch"
    with pytest.raises(Rejected):
        await adapter.create_user({"active": True})
    with pytest.raises(NotFound):
        await adapter.get_user("b@x.ch")
    with pytest.raises(NotFound):
        await adapter.update_user(UserRecord("b@x.ch", {}), {"active": False})
    with pytest.raises(NotFound):
        await adapter.delete_user(UserRecord("b@x.ch", {}))
    await adapter.create_user(_attrs("b@x.ch"))
    with pytest.raises(AlreadyExists):
        await adapter.update_user(UserRecord("b@x.ch", {}), {"userName": "A@x.ch"})
    with pytest.raises(Rejected):
        await adapter.create_group({"displayName": "Sales"}, ["nobody@x.ch"])


async def test_listing_order_filters_and_paging() -> None:
    adapter = MemoryAdapter()
    for name, given in [("c@x.ch", "Cy"), ("a@x.ch", "Ann"), ("b@x.ch", "Ann")]:
        await adapter.create_user(_attrs(name, given))
    everyone = await adapter.find_users(None, 0, 10)
    assert [u.key for u in everyone.items] == ["c@x.ch", "a@x.ch", "b@x.ch"] and everyone.total == 3
    second = await adapter.find_users(None, 1, 1)
    assert [u.key for u in second.items] == ["a@x.ch"] and second.total == 3
    anns = await adapter.find_users(parse_filter('name.givenName eq "ann"'), 0, 10)
    assert [u.key for u in anns.items] == ["a@x.ch", "b@x.ch"] and anns.total == 2
    # A rename moves the mailbox to the end, as a delete + create would.
    await adapter.update_user(UserRecord("c@x.ch", {}), {"userName": "D@x.ch"})
    assert [u.key for u in (await adapter.find_users(None, 0, 10)).items] == ["a@x.ch", "b@x.ch", "d@x.ch"]
    assert (await adapter.find_users(parse_filter('userName eq "a@x.ch"'), 1, 10)).items == []


async def test_update_changes_clears_and_renames_members() -> None:
    adapter = MemoryAdapter()
    await adapter.create_user(_attrs("a@x.ch"))
    group = await adapter.create_group({"displayName": "Sales"}, ["a@x.ch"])
    changes = {"userName": "B@x.ch", "name.givenName": "Bo", "displayName": None, "active": False}
    updated = await adapter.update_user(UserRecord("a@x.ch", {}), changes)
    assert updated == UserRecord("b@x.ch", {"userName": "B@x.ch", "name": {"givenName": "Bo", "familyName": "Lee"},
                                            "active": False})
    assert await adapter.get_user("b@x.ch") == updated
    with pytest.raises(NotFound):
        await adapter.get_user("a@x.ch")
    assert (await adapter.get_group(group.key)).member_keys == ["b@x.ch"]
    await adapter.delete_user(UserRecord("b@x.ch", {}))
    assert (await adapter.get_group(group.key)).member_keys == []


async def test_a_value_orjson_refuses_leaves_the_mailbox_as_it_was() -> None:
    adapter = MemoryAdapter()
    await adapter.create_user(_attrs("a@x.ch"))
    group = await adapter.create_group({"displayName": "Sales"}, ["a@x.ch"])
    with pytest.raises(TypeError):
        await adapter.update_user(UserRecord("a@x.ch", {}), {"userName": "b@x.ch", "displayName": object()})
    with pytest.raises(TypeError):
        await adapter.create_user({"userName": "c@x.ch", "displayName": object()})
    assert (await adapter.get_user("a@x.ch")).attributes == {**_attrs("a@x.ch"), "active": True}
    assert (await adapter.find_users(None, 0, 10)).total == 1
    assert (await adapter.get_group(group.key)).member_keys == ["a@x.ch"]


async def test_no_mutation_by_a_caller_reaches_the_backend() -> None:
    adapter = MemoryAdapter()
    sent = _attrs("a@x.ch")
    await adapter.create_user(sent)
    sent["name"]["givenName"] = "changed after create"  # type: ignore[index]
    changes: dict[str, object] = {"name.familyName": "Lo", "emails": [{"value": "a@x.ch"}]}
    await adapter.update_user(UserRecord("a@x.ch", {}), changes)
    changes["emails"][0]["value"] = "changed after update"  # type: ignore[index]
    expected = {"userName": "a@x.ch", "name": {"givenName": "Ann", "familyName": "Lo"}, "displayName": "Ann Lee",
                "active": True, "emails": [{"value": "a@x.ch"}]}

    def spoil(user: UserRecord) -> None:
        user.attributes["name"]["givenName"] = "spoilt"
        user.attributes["emails"][0]["value"] = "spoilt"
        user.attributes["active"] = False

    for _ in range(2):
        reads = [
            await adapter.get_user("a@x.ch"),
            *(await adapter.find_users(parse_filter('userName eq "a@x.ch"'), 0, 1)).items,
            *(await adapter.find_users(None, 0, 10)).items,
            *(await adapter.find_users(parse_filter('name.givenName eq "Ann"'), 0, 10)).items,
        ]
        assert len(reads) == 4
        for user in reads:
            assert user.attributes == expected
            spoil(user)
    spoil(await adapter.update_user(UserRecord("a@x.ch", {}), {}))
    assert (await adapter.get_user("a@x.ch")).attributes == expected

    group_attrs: dict[str, object] = {"displayName": "Sales", "tags": ["x"]}
    members = ["a@x.ch"]
    group = await adapter.create_group(group_attrs, members)
    group_attrs["tags"][0] = "changed after create"  # type: ignore[index]
    members.append("changed after create")

    def spoil_group(got: GroupRecord) -> None:
        got.attributes["tags"][0] = "spoilt"
        got.member_keys.append("spoilt")

    spoil_group(group)
    spoil_group(await adapter.get_group(group.key))
    spoil_group((await adapter.find_groups(parse_filter('displayName eq "sales"'), 0, 1)).items[0])
    spoil_group((await adapter.find_groups(None, 0, 10)).items[0])
    spoil_group(await adapter.update_group(group, {"description": "d"}))
    assert await adapter.get_group(group.key) == GroupRecord(
        group.key, {"displayName": "Sales", "tags": ["x"], "description": "d"}, ["a@x.ch"])


async def test_mailboxes_are_kept_compactly() -> None:
    # orjson.dumps returns its whole (4 KiB+) write buffer: keeping that per mailbox was
    # several times the size of everything else.
    adapter = MemoryAdapter()
    per_user = await bytes_per_call(500, lambda i: adapter.create_user(_attrs(f"user{i}@x.ch", f"Given{i}")))
    assert per_user < 800
