"""The Microsoft SCIM Validator's test sequences (reference §4.1) and the gallery checks (§4.2)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BASE
from tests.entra.helpers import (
    ENTERPRISE,
    GROUP_URN,
    LIST_URN,
    VALIDATOR_USER,
    VALIDATOR_USER_NAME,
    Client,
    assert_empty_list,
    assert_error,
    assert_validator_user,
    assert_verbose_applied,
    call,
    create_group,
    create_user,
    ent,
    find_one,
    get,
    get_group,
    get_user,
    manager_of,
    member_ids,
    minimal_user,
    patch_body,
    patch_group,
    patch_user,
    search,
    typed,
    verbose_replace,
)

GROUP_BODY = (
    '{"displayName":"ZGHZBQHCAPZU","externalId":"087af0b9-6a0b-4b8e-9a53-3f0d2c1e7a44",'
    '"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]}'
)


async def _validator_user(scim: Client) -> dict[str, Any]:
    return await create_user(scim, VALIDATOR_USER)


async def _manager(scim: Client, name: str = "kaley.schmitt@kuhn.co.uk") -> str:
    return str((await create_user(scim, minimal_user(name)))["id"])


async def _group_with_members(scim: Client, count: int) -> tuple[dict[str, Any], list[str]]:
    ids = [(await create_user(scim, minimal_user(f"v.member{i}@ondricka.us")))["id"] for i in range(count)]
    group = await create_group(scim, GROUP_BODY)
    if ids:
        await patch_group(scim, group["id"], patch_body(
            {"op": "replace", "path": "members", "value": [{"value": i} for i in ids]}
        ))
    return group, ids


# Users 1–12 -------------------------------------------------------------------------------------


async def test_v01_create_user_verified_by_filter(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", raw=VALIDATOR_USER, expect=201)
    found = await find_one(scim, "Users", f'userName eq "{VALIDATOR_USER_NAME}"')
    assert found["id"] == reply.json["id"]
    assert_validator_user(found)


async def test_v02_create_duplicate_user(scim: Client) -> None:
    await _validator_user(scim)
    assert_error(await call(scim, "POST", f"{BASE}/Users", raw=VALIDATOR_USER), 409, "uniqueness")


async def test_v03_filter_existing_user(scim: Client) -> None:
    user = await _validator_user(scim)
    body = await search(scim, "Users", f'userName eq "{VALIDATOR_USER_NAME}"')
    assert body["totalResults"] == 1
    assert body["Resources"][0]["id"] == user["id"]


async def test_v04_filter_non_existing_user(scim: Client) -> None:
    await _validator_user(scim)
    assert_empty_list(await search(scim, "Users", 'userName eq "trudie.lemke@hermann.name"'))


async def test_v05_filter_existing_user_different_case(scim: Client) -> None:
    user = await _validator_user(scim)
    found = await find_one(scim, "Users", 'userName eq "JULIEN.VONRUEDEN@ONDRICKA.US"')
    assert found["id"] == user["id"]
    assert found["userName"] == VALIDATOR_USER_NAME


async def test_v06_patch_user_replace_attributes_verbose(scim: Client) -> None:
    manager_id = await _manager(scim)
    user = await _validator_user(scim)
    body, _ = verbose_replace(manager_id)
    assert_verbose_applied(await patch_user(scim, user["id"], body), manager_id)


async def test_v07_update_user_username(scim: Client) -> None:
    user = await _validator_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "replace", "path": "userName", "value": "ward.kling@gleason.ca"}
    ))
    assert after["userName"] == "ward.kling@gleason.ca"
    assert (await find_one(scim, "Users", 'userName eq "ward.kling@gleason.ca"'))["id"] == user["id"]


async def test_v08_patch_user_disable(scim: Client) -> None:
    user = await _validator_user(scim)
    after = await patch_user(scim, user["id"], patch_body({"op": "replace", "path": "active", "value": False}))
    assert after["active"] is False
    found = await find_one(scim, "Users", f'userName eq "{VALIDATOR_USER_NAME}"')
    assert found["active"] is False


async def test_v09_patch_user_add_manager(scim: Client) -> None:
    user = await create_user(scim, minimal_user("no.manager@ondricka.us"))
    manager_id = await _manager(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": manager_id}
    ))
    assert manager_of(after)["value"] == manager_id


async def test_v10_patch_user_replace_manager(scim: Client) -> None:
    user = await _validator_user(scim)
    manager_id = await _manager(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": manager_id}
    ))
    assert manager_of(after)["value"] == manager_id


async def test_v11_patch_user_remove_manager(scim: Client) -> None:
    user = await _validator_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": ""}}
    ))
    assert manager_of(after) is None
    assert ent(after)["department"] == "ZYWTBPDFHIIP"


async def test_v12_delete_user(scim: Client) -> None:
    user = await _validator_user(scim)
    await call(scim, "DELETE", f"{BASE}/Users/{user['id']}", expect=204)
    assert_error(await call(scim, "GET", f"{BASE}/Users/{user['id']}"), 404)


async def test_v_patch_user_add_attributes(scim: Client) -> None:
    user = await create_user(scim, minimal_user("sparse@ondricka.us"))
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "sparse.work@ondricka.us"},
        {"op": "add", "path": "displayName", "value": "Sparse"},
        {"op": "add", "path": "nickName", "value": "Sp"},
        {"op": "add", "path": f"{ENTERPRISE}:department", "value": "QA"},
        {"op": "add", "path": 'addresses[type eq "work"].locality', "value": "Leeds"},
    ))
    assert [e["value"] for e in typed(after, "emails", "work")] == ["sparse.work@ondricka.us"]
    assert after["displayName"] == "Sparse"
    assert after["nickName"] == "Sp"
    assert ent(after)["department"] == "QA"
    assert [a["locality"] for a in typed(after, "addresses", "work")] == ["Leeds"]


async def test_v_patch_user_remove_attributes(scim: Client) -> None:
    user = await _validator_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "remove", "path": "nickName"},
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "name.middleName"},
        {"op": "remove", "path": f"{ENTERPRISE}:costCenter"},
        {"op": "remove", "path": 'phoneNumbers[type eq "fax"]'},
    ))
    assert "nickName" not in after
    assert "title" not in after
    assert "middleName" not in after["name"]
    assert after["name"]["givenName"] == "Elfrieda"
    assert "costCenter" not in ent(after)
    assert ent(after)["department"] == "ZYWTBPDFHIIP"
    assert typed(after, "phoneNumbers", "fax") == []
    assert len(typed(after, "phoneNumbers", "mobile")) == 1


# Groups 13–24 -----------------------------------------------------------------------------------


async def test_v13_get_group_by_id_excluding_members(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 2)
    body = await get(scim, f"{BASE}/Groups/{group['id']}?excludedAttributes=members")
    assert body["id"] == group["id"]
    assert body["displayName"] == "ZGHZBQHCAPZU"
    assert "members" not in body


async def test_v14_filter_existing_group_excluding_members(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 2)
    found = await find_one(scim, "Groups", 'displayName eq "ZGHZBQHCAPZU"', excludedAttributes="members")
    assert found["id"] == group["id"]
    assert "members" not in found


async def test_v15_filter_existing_group(scim: Client) -> None:
    group, ids = await _group_with_members(scim, 2)
    found = await find_one(scim, "Groups", 'displayName eq "ZGHZBQHCAPZU"')
    assert found["id"] == group["id"]
    assert member_ids(found) == sorted(ids)


async def test_v16_filter_non_existing_group(scim: Client) -> None:
    await _group_with_members(scim, 0)
    assert_empty_list(await search(scim, "Groups", 'displayName eq "KSWDNPQLTRGA"'))


async def test_v17_filter_existing_group_different_case(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 0)
    found = await find_one(scim, "Groups", 'displayName eq "zghzbqhcapzu"')
    assert found["id"] == group["id"]


async def test_v18_create_group(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Groups", raw=GROUP_BODY, expect=201)
    assert reply.json["displayName"] == "ZGHZBQHCAPZU"
    assert reply.json["schemas"] == [GROUP_URN]
    assert (await get_group(scim, reply.json["id"]))["externalId"] == "087af0b9-6a0b-4b8e-9a53-3f0d2c1e7a44"


async def test_v19_create_duplicate_group(scim: Client) -> None:
    await create_group(scim, GROUP_BODY)
    assert_error(await call(scim, "POST", f"{BASE}/Groups", raw=GROUP_BODY), 409, "uniqueness")


async def test_v20_patch_group_replace_attributes(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 0)
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "value": {"externalId": "663fa3a8-02d4-4a4b-9c1e-7b5f0e2d9a31"}}
    ))
    assert after["externalId"] == "663fa3a8-02d4-4a4b-9c1e-7b5f0e2d9a31"


async def test_v21_update_group_display_name(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 0)
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "value": {"displayName": "WUZPWMBDDCGI"}}
    ))
    assert after["displayName"] == "WUZPWMBDDCGI"


async def test_v22_patch_group_add_member_with_replace(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 0)
    a = (await create_user(scim, minimal_user("joined@ondricka.us")))["id"]
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "path": "members", "value": [{"value": a}]}
    ))
    assert member_ids(after) == [a]


async def test_v23_patch_group_remove_member(scim: Client) -> None:
    group, (a, b) = await _group_with_members(scim, 2)
    after = await patch_group(scim, group["id"], patch_body({"op": "remove", "path": f'members[value eq "{a}"]'}))
    assert member_ids(after) == [b]


async def test_v24_delete_group(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 1)
    await call(scim, "DELETE", f"{BASE}/Groups/{group['id']}", expect=204)
    assert_error(await call(scim, "GET", f"{BASE}/Groups/{group['id']}"), 404)


# Preview P1–P7 ----------------------------------------------------------------------------------


async def test_p1_multiple_ops_on_different_attributes(scim: Client) -> None:
    user = await _validator_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "replace", "path": "displayName", "value": "UBMVHTQWZKAF"},
        {"op": "replace", "path": "title", "value": "OKJSXCQDEVNA"},
        {"op": "replace", "path": "name.givenName", "value": "Hollie"},
        {"op": "add", "path": f"{ENTERPRISE}:division", "value": "CPXWTZUAHBLE"},
    ))
    assert after["displayName"] == "UBMVHTQWZKAF"
    assert after["title"] == "OKJSXCQDEVNA"
    assert after["name"]["givenName"] == "Hollie"
    assert ent(after)["division"] == "CPXWTZUAHBLE"


async def test_p2_multiple_ops_on_same_attribute(scim: Client) -> None:
    user = await _validator_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "remove", "path": "nickName"},
        {"op": "add", "path": "nickName", "value": "ZQBRMYXWPLSE"},
        {"op": "replace", "path": "nickName", "value": "HNTKEGAWSQOV"},
    ))
    assert after["nickName"] == "HNTKEGAWSQOV"


async def test_p3_delete_non_existent_user(scim: Client) -> None:
    assert_error(await call(scim, "DELETE", f"{BASE}/Users/7b1e4a0c-5f3d-4e2a-9c8b-1d6f0a2e3b4c"), 404)


async def test_p4_delete_same_user_twice(scim: Client) -> None:
    user = await _validator_user(scim)
    await call(scim, "DELETE", f"{BASE}/Users/{user['id']}", expect=204)
    assert_error(await call(scim, "DELETE", f"{BASE}/Users/{user['id']}"), 404)


async def test_p5_group_multiple_ops_on_same_member(scim: Client) -> None:
    group, _ = await _group_with_members(scim, 0)
    a = (await create_user(scim, minimal_user("flicker@ondricka.us")))["id"]
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "add", "path": "members", "value": [{"value": a}]},
        {"op": "remove", "path": f'members[value eq "{a}"]'},
    ))
    assert member_ids(after) == []


async def test_p6_delete_non_existent_group(scim: Client) -> None:
    assert_error(await call(scim, "DELETE", f"{BASE}/Groups/7b1e4a0c-5f3d-4e2a-9c8b-1d6f0a2e3b4c"), 404)


async def test_p7_delete_same_group_twice(scim: Client) -> None:
    group = await create_group(scim, GROUP_BODY)
    await call(scim, "DELETE", f"{BASE}/Groups/{group['id']}", expect=204)
    assert_error(await call(scim, "DELETE", f"{BASE}/Groups/{group['id']}"), 404)


# Gallery §4.2 -----------------------------------------------------------------------------------


NULLABLE = {
    "displayName": "Ann Other",
    "title": "Clerk",
    "nickName": "Annie",
    "preferredLanguage": "en-GB",
    "name.givenName": "Ann",
    f"{ENTERPRISE}:department": "Records",
    f"{ENTERPRISE}:employeeNumber": "E-77",
}


def _nullable_absent(user: dict[str, Any]) -> None:
    for attr in ("displayName", "title", "nickName", "preferredLanguage"):
        assert attr not in user, f"{attr} still present: {user[attr]!r}"
    assert "givenName" not in (user.get("name") or {})
    assert user["name"]["familyName"] == "Other"
    assert "department" not in ent(user)
    assert "employeeNumber" not in ent(user)


async def test_gallery_null_update_empty_string_then_null(scim: Client) -> None:
    created = await create_user(scim, minimal_user("ann.other@contoso.com", name={"familyName": "Other"}))
    uid = created["id"]
    fill = patch_body(*({"op": "add", "path": p, "value": v} for p, v in NULLABLE.items()))
    filled = await patch_user(scim, uid, fill)
    assert filled["title"] == "Clerk"

    _nullable_absent(await patch_user(scim, uid, patch_body(
        *({"op": "replace", "path": p, "value": ""} for p in NULLABLE)
    )))
    await patch_user(scim, uid, fill)
    _nullable_absent(await patch_user(scim, uid, patch_body(
        *({"op": "replace", "path": p, "value": None} for p in NULLABLE)
    )))
    assert (await get_user(scim, uid))["userName"] == "ann.other@contoso.com"


async def test_gallery_pagination(scim: Client) -> None:
    ids = set()
    for i in range(12):
        ids.add((await create_user(scim, minimal_user(f"page.user{i:02d}@contoso.com")))["id"])
    seen: list[str] = []
    for page, expected_count in enumerate((5, 5, 2)):
        start = page * 5 + 1
        body = await get(scim, f"{BASE}/Users?startIndex={start}&count=5")
        assert body["schemas"] == [LIST_URN]
        assert body["totalResults"] == 12
        assert body["startIndex"] == start
        assert body["itemsPerPage"] == expected_count
        assert len(body["Resources"]) == expected_count
        seen.extend(r["id"] for r in body["Resources"])
    assert len(seen) == 12
    assert set(seen) == ids


async def test_gallery_pagination_count_zero(scim: Client) -> None:
    for i in range(3):
        await create_user(scim, minimal_user(f"zero{i}@contoso.com"))
    body = await get(scim, f"{BASE}/Users?count=0")
    assert body["totalResults"] == 3
    assert body.get("Resources", []) == []


@pytest.mark.parametrize(("query", "start", "count"), [
    ("startIndex=0&count=2", 1, 2),
    ("startIndex=-5&count=2", 1, 2),
    ("startIndex=1&count=-1", 1, 0),
    ("startIndex=4&count=5", 4, 0),
    ("startIndex=99&count=5", 99, 0),
])
async def test_pagination_edges_follow_rfc(scim: Client, query: str, start: int, count: int) -> None:
    # RFC 7644 §3.4.2.4: startIndex below 1 means 1, a negative count means 0.
    for i in range(3):
        await create_user(scim, minimal_user(f"edge{i}@contoso.com"))
    body = await get(scim, f"{BASE}/Users?{query}")
    assert body["totalResults"] == 3
    assert body["startIndex"] == start
    assert len(body.get("Resources", [])) == count


async def test_gallery_group_pagination(scim: Client) -> None:
    for i in range(7):
        await create_group(scim, {"schemas": [GROUP_URN], "displayName": f"List {i}"})
    first = await get(scim, f"{BASE}/Groups?startIndex=1&count=5&excludedAttributes=members")
    second = await get(scim, f"{BASE}/Groups?startIndex=6&count=5&excludedAttributes=members")
    assert first["totalResults"] == second["totalResults"] == 7
    assert (len(first["Resources"]), len(second["Resources"])) == (5, 2)
    assert second["startIndex"] == 6
    names = {g["displayName"] for g in first["Resources"] + second["Resources"]}
    assert names == {f"List {i}" for i in range(7)}


async def test_postman_attributes_projection(scim: Client) -> None:
    user = await _validator_user(scim)
    body = await get(scim, f"{BASE}/Users/{user['id']}?attributes=userName,emails")
    assert body["id"] == user["id"]
    assert body["userName"] == VALIDATOR_USER_NAME
    assert body["emails"] == [{"type": "work", "value": "thaddeus@hammes.info", "primary": True}]
    assert set(body) <= {"schemas", "id", "userName", "emails"}, sorted(body)
    listed = await get(scim, f"{BASE}/Users?attributes=userName,emails")
    assert set(listed["Resources"][0]) <= {"schemas", "id", "userName", "emails"}


@pytest.mark.parametrize(("order", "expected"), [
    ("", ["alpha@x.test", "Bravo@x.test", "charlie@x.test", "Delta@x.test"]),
    ("&sortOrder=ascending", ["alpha@x.test", "Bravo@x.test", "charlie@x.test", "Delta@x.test"]),
    ("&sortOrder=descending", ["Delta@x.test", "charlie@x.test", "Bravo@x.test", "alpha@x.test"]),
])
async def test_sort_by_username(scim: Client, order: str, expected: list[str]) -> None:
    for name in ("charlie@x.test", "Delta@x.test", "alpha@x.test", "Bravo@x.test"):
        await create_user(scim, minimal_user(name))
    body = await get(scim, f"{BASE}/Users?sortBy=userName{order}")
    assert [r["userName"] for r in body["Resources"]] == expected
