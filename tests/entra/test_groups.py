"""Group exchanges E15–E21 and the validator's group requests E25–E29."""

from __future__ import annotations

from typing import Any

from tests.conftest import BASE
from tests.entra.helpers import (
    GROUP_URN,
    Client,
    assert_empty_list,
    assert_error,
    call,
    create_group,
    create_user,
    find_one,
    get,
    get_group,
    member_ids,
    minimal_group,
    minimal_user,
    patch_body,
    patch_group,
    search,
)

E15_CREATE = """{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    "displayName": "displayName",
    "meta": {
        "resourceType": "Group"
    }
}"""

E18_RENAME = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "displayName",
        "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    }]
}"""

E19_ADD_MEMBERS = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Add",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}"""

E20_REMOVE_MEMBERS = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Remove",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}"""

E20_REMOVE_MEMBERS_NO_REF = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Remove",
        "path": "members",
        "value": [{"value": "u1091"}]
    }]
}"""

E20_REMOVE_FILTER = r"""{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "remove",
            "path": "members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"
        }
    ]
}"""

E25_CREATE = (
    '{"displayName":"ZGHZBQHCAPZU","externalId":"087af0b9-6a0b-4b8e-9a53-3f0d2c1e7a44",'
    '"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]}'
)


async def _users(scim: Client, count: int) -> list[str]:
    ids = []
    for i in range(count):
        user = await create_user(scim, minimal_user(f"member{i}@contoso.com"))
        ids.append(user["id"])
    return ids


async def _group_with_members(scim: Client, members: list[str]) -> dict[str, Any]:
    group = await create_group(scim, E15_CREATE)
    for uid in members:
        await patch_group(scim, group["id"], E19_ADD_MEMBERS.replace("f648f8d5ea4e4cd38e9c", uid))
    return group


# E15 --------------------------------------------------------------------------------------------


async def test_e15_create_group_with_microsoft_schema_uri(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Groups", raw=E15_CREATE, expect=201)
    group = reply.json
    gid = group["id"]
    assert isinstance(gid, str) and gid
    location = reply.headers.get("Location")
    assert location is not None and location.endswith(f"{BASE}/Groups/{gid}"), location
    assert group["displayName"] == "displayName"
    assert group["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert group["meta"]["resourceType"] == "Group"
    assert group["schemas"] == [GROUP_URN]
    assert group.get("members", []) == []

    read = await get_group(scim, gid)
    assert read["displayName"] == "displayName"
    assert read["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert member_ids(read) == []


# E16 --------------------------------------------------------------------------------------------


async def test_e16_get_group_excluding_members(scim: Client) -> None:
    [uid] = await _users(scim, 1)
    group = await _group_with_members(scim, [uid])
    body = await get(scim, f"{BASE}/Groups/{group['id']}?excludedAttributes=members")
    assert "members" not in body
    assert body["id"] == group["id"]
    assert body["displayName"] == "displayName"
    assert body["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert body["meta"]["resourceType"] == "Group"
    assert member_ids(await get_group(scim, group["id"])) == [uid]


# E17 --------------------------------------------------------------------------------------------


async def test_e17_filter_group_by_display_name_excluding_members(scim: Client) -> None:
    [uid] = await _users(scim, 1)
    group = await _group_with_members(scim, [uid])
    await create_group(scim, minimal_group("another group"))
    reply = await call(
        scim, "GET", f"{BASE}/Groups?excludedAttributes=members&filter=displayName+eq+%22displayName%22",
        expect=200,
    )
    body = reply.json
    assert body["totalResults"] == 1
    assert body["startIndex"] == 1
    [found] = body["Resources"]
    assert found["id"] == group["id"]
    assert found["displayName"] == "displayName"
    assert "members" not in found


async def test_e17_filter_group_by_display_name_different_case(scim: Client) -> None:
    group = await create_group(scim, E15_CREATE)
    found = await find_one(scim, "Groups", 'displayName eq "DISPLAYNAME"', excludedAttributes="members")
    assert found["id"] == group["id"]
    assert found["displayName"] == "displayName"
    assert "members" not in found


async def test_e17_filter_group_by_external_id(scim: Client) -> None:
    # objectId -> externalId is the other matching attribute admins choose for groups (§6.2).
    group = await create_group(scim, E15_CREATE)
    await create_group(scim, minimal_group("another group", externalId="11111111-2222-3333-4444-555555555555"))
    found = await find_one(
        scim, "Groups", 'externalId eq "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"', excludedAttributes="members"
    )
    assert found["id"] == group["id"]


# E18 --------------------------------------------------------------------------------------------


async def test_e18_replace_display_name(scim: Client) -> None:
    group = await create_group(scim, E15_CREATE)
    after = await patch_group(scim, group["id"], E18_RENAME)
    new_name = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    assert after["displayName"] == new_name
    assert (await find_one(scim, "Groups", f'displayName eq "{new_name}"'))["id"] == group["id"]
    assert (await search(scim, "Groups", 'displayName eq "displayName"'))["totalResults"] == 0


# E19 --------------------------------------------------------------------------------------------


async def test_e19_add_member_with_null_ref(scim: Client) -> None:
    [uid] = await _users(scim, 1)
    group = await create_group(scim, E15_CREATE)
    after = await patch_group(scim, group["id"], E19_ADD_MEMBERS.replace("f648f8d5ea4e4cd38e9c", uid))
    assert member_ids(after) == [uid]


async def test_e19_add_several_members_in_one_operation(scim: Client) -> None:
    ids = await _users(scim, 3)
    group = await create_group(scim, E15_CREATE)
    after = await patch_group(scim, group["id"], patch_body({
        "op": "Add", "path": "members", "value": [{"$ref": None, "value": uid} for uid in ids],
    }))
    assert member_ids(after) == sorted(ids)


async def test_e19_adding_an_existing_member_is_idempotent(scim: Client) -> None:
    [uid] = await _users(scim, 1)
    group = await _group_with_members(scim, [uid])
    after = await patch_group(scim, group["id"], E19_ADD_MEMBERS.replace("f648f8d5ea4e4cd38e9c", uid))
    assert member_ids(after) == [uid]


async def test_e19_nested_group_id_as_member_value(scim: Client) -> None:
    # The reference only says such a value can arrive. A distribution list cannot nest: the group id
    # is skipped (logged, counted) while the mailboxes are added, because Entra's flow depends on it.
    [uid] = await _users(scim, 1)
    outer = await create_group(scim, E15_CREATE)
    inner = await create_group(scim, minimal_group("inner list"))
    reply = await call(scim, "PATCH", f"{BASE}/Groups/{outer['id']}", patch_body({
        "op": "Add", "path": "members", "value": [{"$ref": None, "value": inner["id"]}, {"$ref": None, "value": uid}],
    }), expect=200)
    assert member_ids(reply.json) == [uid]
    assert member_ids(await get_group(scim, outer["id"])) == [uid]


# E20 --------------------------------------------------------------------------------------------


async def test_e20_remove_members_by_value_array_removes_only_those(scim: Client) -> None:
    a, b, c = await _users(scim, 3)
    group = await _group_with_members(scim, [a, b, c])
    after = await patch_group(
        scim, group["id"], E20_REMOVE_MEMBERS.replace("f648f8d5ea4e4cd38e9c", b)
    )
    assert member_ids(after) == sorted([a, c])


async def test_e20_remove_members_without_ref(scim: Client) -> None:
    a, b = await _users(scim, 2)
    group = await _group_with_members(scim, [a, b])
    after = await patch_group(scim, group["id"], E20_REMOVE_MEMBERS_NO_REF.replace("u1091", a))
    assert member_ids(after) == [b]


async def test_e20_remove_member_by_value_filter(scim: Client) -> None:
    a, b = await _users(scim, 2)
    group = await _group_with_members(scim, [a, b])
    after = await patch_group(
        scim, group["id"], E20_REMOVE_FILTER.replace("7f4bc1a3-285e-48ae-8202-5accb43efb0e", a)
    )
    assert member_ids(after) == [b]


# E21 --------------------------------------------------------------------------------------------


async def test_e21_delete_group(scim: Client) -> None:
    [uid] = await _users(scim, 1)
    group = await _group_with_members(scim, [uid])
    await call(scim, "DELETE", f"{BASE}/Groups/{group['id']}", expect=204)
    assert_error(await call(scim, "GET", f"{BASE}/Groups/{group['id']}"), 404)
    assert (await search(scim, "Groups", 'displayName eq "displayName"'))["totalResults"] == 0
    # Deleting the list must leave its members' mailboxes alone.
    assert (await get(scim, f"{BASE}/Users/{uid}"))["id"] == uid


# E25 --------------------------------------------------------------------------------------------


async def test_e25_validator_group_create(scim: Client) -> None:
    group = await create_group(scim, E25_CREATE)
    assert group["displayName"] == "ZGHZBQHCAPZU"
    assert group["externalId"] == "087af0b9-6a0b-4b8e-9a53-3f0d2c1e7a44"
    found = await find_one(scim, "Groups", 'displayName eq "ZGHZBQHCAPZU"')
    assert found["id"] == group["id"]


async def test_e25_duplicate_group_is_409_uniqueness(scim: Client) -> None:
    await create_group(scim, E25_CREATE)
    assert_error(await call(scim, "POST", f"{BASE}/Groups", raw=E25_CREATE), 409, "uniqueness")
    variant = E25_CREATE.replace("ZGHZBQHCAPZU", "zghzbqhcapzu")
    assert_error(await call(scim, "POST", f"{BASE}/Groups", raw=variant), 409, "uniqueness")
    assert (await get(scim, f"{BASE}/Groups"))["totalResults"] == 1


# E26 --------------------------------------------------------------------------------------------


async def test_e26_pathless_replace_external_id(scim: Client) -> None:
    group = await create_group(scim, E25_CREATE)
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "value": {"externalId": "663fa3a8-02d4-4a4b-9c1e-7b5f0e2d9a31"}}
    ))
    assert after["externalId"] == "663fa3a8-02d4-4a4b-9c1e-7b5f0e2d9a31"
    assert after["displayName"] == "ZGHZBQHCAPZU"


async def test_e26_pathless_replace_display_name(scim: Client) -> None:
    group = await create_group(scim, E25_CREATE)
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "value": {"displayName": "WUZPWMBDDCGI"}}
    ))
    assert after["displayName"] == "WUZPWMBDDCGI"
    assert after["externalId"] == "087af0b9-6a0b-4b8e-9a53-3f0d2c1e7a44"
    assert (await find_one(scim, "Groups", 'displayName eq "WUZPWMBDDCGI"'))["id"] == group["id"]


# E27 --------------------------------------------------------------------------------------------


async def test_e27_replace_members_sets_exact_membership(scim: Client) -> None:
    a, b, c = await _users(scim, 3)
    group = await create_group(scim, E25_CREATE)
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "path": "members", "value": [{"value": a}]}
    ))
    assert member_ids(after) == [a]
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "path": "members", "value": [{"value": b}, {"value": c}]}
    ))
    assert member_ids(after) == sorted([b, c])


# E28 --------------------------------------------------------------------------------------------


async def test_e28_remove_member_by_filter_path(scim: Client) -> None:
    a, b = await _users(scim, 2)
    group = await create_group(scim, E25_CREATE)
    await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "path": "members", "value": [{"value": a}, {"value": b}]}
    ))
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "remove", "path": f'members[value eq "{a}"]'}
    ))
    assert member_ids(after) == [b]


# E29 --------------------------------------------------------------------------------------------


async def test_e29_add_then_remove_same_member_in_one_request(scim: Client) -> None:
    a, b = await _users(scim, 2)
    group = await create_group(scim, E25_CREATE)
    await patch_group(scim, group["id"], patch_body({"op": "add", "path": "members", "value": [{"value": b}]}))
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "add", "path": "members", "value": [{"value": a}]},
        {"op": "remove", "path": f'members[value eq "{a}"]'},
    ))
    assert member_ids(after) == [b]


async def test_e29_remove_then_add_same_member_in_one_request(scim: Client) -> None:
    # The mirror case proves the operations run in order rather than being netted out.
    a, b = await _users(scim, 2)
    group = await _group_with_members(scim, [a, b])
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "remove", "path": f'members[value eq "{a}"]'},
        {"op": "add", "path": "members", "value": [{"value": a}]},
    ))
    assert member_ids(after) == sorted([a, b])


async def test_e01_e17_empty_group_probe_after_groups_exist(scim: Client) -> None:
    await create_group(scim, E15_CREATE)
    reply = await call(
        scim, "GET",
        f"{BASE}/Groups?excludedAttributes=members&filter=displayName+eq+%2261d7a4f2-8b3e-4c59-a0e1-2f6b9d8c7e5a%22",
        expect=200,
    )
    assert_empty_list(reply.json)
