"""Concurrent requests as a provisioning job sends them (reference §3.1: expect parallel calls per job).

Entra retries and overlapping cycles can race a create against a create, or two membership
PATCHes against each other; the gateway must neither duplicate a mailbox nor lose an update.
"""

from __future__ import annotations

import asyncio

from tests.conftest import BASE
from tests.entra.helpers import (
    Client,
    assert_error,
    call,
    create_group,
    create_user,
    ent,
    get,
    get_group,
    get_user,
    member_ids,
    minimal_group,
    minimal_user,
    patch_body,
    search,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_concurrent_duplicate_creates_yield_one_user(scim: Client) -> None:
    names = ["race@contoso.com", "RACE@contoso.com", "Race@Contoso.com"] * 6
    replies = await asyncio.gather(*(call(scim, "POST", f"{BASE}/Users", minimal_user(n)) for n in names))
    statuses = sorted(r.status for r in replies)
    assert statuses.count(201) == 1, statuses
    for reply in replies:
        if reply.status != 201:
            assert_error(reply, 409, "uniqueness")
    assert (await search(scim, "Users", 'userName eq "race@contoso.com"'))["totalResults"] == 1


async def test_concurrent_duplicate_group_creates_yield_one_group(scim: Client) -> None:
    replies = await asyncio.gather(*(
        call(scim, "POST", f"{BASE}/Groups", minimal_group("Race Team")) for _ in range(12)
    ))
    assert sorted(r.status for r in replies).count(201) == 1
    assert (await get(scim, f"{BASE}/Groups"))["totalResults"] == 1


async def test_concurrent_member_adds_are_all_kept(scim: Client) -> None:
    users = [await create_user(scim, minimal_user(f"crowd{i}@contoso.com")) for i in range(20)]
    group = await create_group(scim, minimal_group("Crowd"))
    replies = await asyncio.gather(*(
        call(scim, "PATCH", f"{BASE}/Groups/{group['id']}",
             patch_body({"op": "Add", "path": "members", "value": [{"$ref": None, "value": u["id"]}]}))
        for u in users
    ))
    assert all(r.status == 200 for r in replies), [r.status for r in replies]
    assert member_ids(await get_group(scim, group["id"])) == sorted(u["id"] for u in users)


async def test_concurrent_patches_of_different_attributes_are_all_kept(scim: Client) -> None:
    user = await create_user(scim, minimal_user("busy@contoso.com"))
    ops = [
        {"op": "Add", "path": "displayName", "value": "Busy Bee"},
        {"op": "Add", "path": "title", "value": "Keeper"},
        {"op": "Add", "path": "nickName", "value": "Bee"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Apiary"},
        {"op": "Add", "path": f"{ENTERPRISE}:employeeNumber", "value": "42"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "busy@contoso.com"},
        {"op": "Replace", "path": "active", "value": "False"},
    ]
    replies = await asyncio.gather(*(
        call(scim, "PATCH", f"{BASE}/Users/{user['id']}", patch_body(op)) for op in ops
    ))
    assert all(r.status == 200 for r in replies), [r.status for r in replies]
    after = await get_user(scim, user["id"])
    assert after["displayName"] == "Busy Bee"
    assert after["title"] == "Keeper"
    assert after["nickName"] == "Bee"
    assert ent(after) == {"department": "Apiary", "employeeNumber": "42"}
    assert [e["value"] for e in after["emails"]] == ["busy@contoso.com"]
    assert after["active"] is False


async def test_concurrent_renames_to_the_same_name_let_one_win(scim: Client) -> None:
    first = await create_user(scim, minimal_user("first@contoso.com"))
    second = await create_user(scim, minimal_user("second@contoso.com"))
    rename = patch_body({"op": "Replace", "path": "userName", "value": "wanted@contoso.com"})
    replies = await asyncio.gather(
        call(scim, "PATCH", f"{BASE}/Users/{first['id']}", rename),
        call(scim, "PATCH", f"{BASE}/Users/{second['id']}", rename),
    )
    statuses = sorted(r.status for r in replies)
    assert statuses[1] == 409 and statuses[0] == 200, statuses
    assert (await search(scim, "Users", 'userName eq "wanted@contoso.com"'))["totalResults"] == 1


async def test_concurrent_delete_and_member_add(scim: Client) -> None:
    user = await create_user(scim, minimal_user("leaving@contoso.com"))
    group = await create_group(scim, minimal_group("Leavers"))
    delete, add = await asyncio.gather(
        call(scim, "DELETE", f"{BASE}/Users/{user['id']}"),
        call(scim, "PATCH", f"{BASE}/Groups/{group['id']}",
             patch_body({"op": "Add", "path": "members", "value": [{"value": user["id"]}]})),
    )
    assert delete.status == 204
    assert add.status in (200, 204, 400, 404), add.text
    # Whatever the interleaving, no group may keep pointing at a deleted mailbox.
    assert member_ids(await get_group(scim, group["id"])) == []
