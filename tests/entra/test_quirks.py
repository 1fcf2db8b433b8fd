"""One test per quirk Q1–Q27 of the Entra reference (§2), each against the tolerance it prescribes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BASE
from tests.entra.helpers import (
    ENTERPRISE,
    Client,
    assert_empty_list,
    assert_error,
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
    minimal_group,
    minimal_user,
    patch_body,
    patch_group,
    patch_user,
    search,
    strip_meta,
    typed,
    work_email,
)


async def _full_user(scim: Client, user_name: str = "megan.bowen@contoso.com") -> dict[str, Any]:
    return await create_user(scim, {
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE,
        ],
        "userName": user_name,
        "externalId": "MeganB",
        "active": True,
        "displayName": "Megan Bowen",
        "title": "Auditor",
        "preferredLanguage": "en-US",
        "emails": [{"type": "work", "value": user_name, "primary": True}],
        "name": {"formatted": "Megan Bowen", "givenName": "Megan", "familyName": "Bowen"},
        "phoneNumbers": [{"type": "work", "value": "+1 412 555 0109", "primary": True}],
        "addresses": [{"type": "work", "formatted": "12/1110", "locality": "Pittsburgh", "primary": True}],
        ENTERPRISE: {"employeeNumber": "1001", "department": "Finance"},
    })


async def _users(scim: Client, count: int) -> list[str]:
    return [
        (await create_user(scim, minimal_user(f"q.member{i}@contoso.com")))["id"] for i in range(count)
    ]


# Q1 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Add", "Replace", "add", "replace", "ADD", "REPLACE"])
async def test_q01_op_is_case_insensitive_for_add_and_replace(scim: Client, op: str) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body({"op": op, "path": "nickName", "value": "Meg"}))
    assert after["nickName"] == "Meg"


@pytest.mark.parametrize("op", ["Remove", "remove", "REMOVE"])
async def test_q01_op_is_case_insensitive_for_remove(scim: Client, op: str) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body({"op": op, "path": "title"}))
    assert "title" not in after
    assert after["displayName"] == "Megan Bowen"


async def test_q01_attribute_names_in_paths_are_case_insensitive(scim: Client) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Replace", "path": "DisplayName", "value": "M. Bowen"},
        {"op": "Replace", "path": "NAME.GIVENNAME", "value": "Meg"},
        {"op": "Replace", "path": f"{ENTERPRISE}:Department", "value": "Audit"},
    ))
    assert after["displayName"] == "M. Bowen"
    assert after["name"]["givenName"] == "Meg"
    assert ent(after)["department"] == "Audit"
    for stray in ("DisplayName", "NAME"):
        assert stray not in after


async def test_q01_top_level_message_keys_are_case_insensitive(scim: Client) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], {
        "Schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "operations": [{"Op": "Replace", "Path": "title", "Value": "Senior Auditor"}],
    })
    assert after["title"] == "Senior Auditor"


async def test_q01_capitalised_sub_attribute_in_filtered_path(scim: Client) -> None:
    # S1's correspondence table writes proxy-Addresses -> emails[type eq "other"].Value.
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Add", "path": 'emails[type eq "other"].Value', "value": "smtp.alias@contoso.com"}
    ))
    others = typed(after, "emails", "other")
    assert others == [{"type": "other", "value": "smtp.alias@contoso.com"}]
    assert work_email(after) == "megan.bowen@contoso.com"


# Q2 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("False", False), ("false", False), ("FALSE", False), (False, False),
    ("True", True), ("true", True), (True, True),
])
async def test_q02_string_booleans_in_patch(scim: Client, value: Any, expected: bool) -> None:
    user = await _full_user(scim)
    if expected:
        await patch_user(scim, user["id"], patch_body({"op": "Replace", "path": "active", "value": False}))
    after = await patch_user(scim, user["id"], patch_body({"op": "Replace", "path": "active", "value": value}))
    assert after["active"] is expected


@pytest.mark.parametrize(("value", "expected"), [("True", True), ("False", False), ("true", True)])
async def test_q02_string_boolean_active_in_post(scim: Client, value: str, expected: bool) -> None:
    created = await create_user(scim, minimal_user("emp1@contoso.com", active=value))
    assert created["active"] is expected
    assert (await get_user(scim, created["id"]))["active"] is expected


async def test_q02_string_boolean_primary_in_post(scim: Client) -> None:
    created = await create_user(scim, minimal_user(
        "primary.string@contoso.com",
        emails=[{"type": "work", "value": "primary.string@contoso.com", "primary": "True"}],
    ))
    user = await get_user(scim, created["id"])
    assert user["emails"] == [{"type": "work", "value": "primary.string@contoso.com", "primary": True}]


async def test_q02_non_boolean_string_is_invalid_value(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", minimal_user("maybe@contoso.com", active="maybe"))
    assert_error(reply, 400, "invalidValue")
    user = await _full_user(scim)
    reply = await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", patch_body(
        {"op": "Replace", "path": "active", "value": "Yes"}
    ))
    assert_error(reply, 400, "invalidValue")
    assert (await get_user(scim, user["id"]))["active"] is True


# Q3 ---------------------------------------------------------------------------------------------


async def test_q03_pathless_replace_dotted_and_urn_keys(scim: Client) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body({"op": "replace", "value": {
        "displayName": "Bjfe",
        "name.givenName": "Kkom",
        "name.familyName": "Unua",
        f"{ENTERPRISE}:employeeNumber": "Aklq",
    }}))
    assert after["displayName"] == "Bjfe"
    assert after["name"] == {"formatted": "Megan Bowen", "givenName": "Kkom", "familyName": "Unua"}
    assert ent(after) == {"employeeNumber": "Aklq", "department": "Finance"}
    assert "name.givenName" not in after
    assert f"{ENTERPRISE}:employeeNumber" not in after


async def test_q03_pathless_replace_nested_object_keeps_other_sub_attributes(scim: Client) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body({"op": "replace", "value": {
        "name": {"givenName": "Meg"},
        ENTERPRISE: {"department": "Audit"},
    }}))
    assert after["name"] == {"formatted": "Megan Bowen", "givenName": "Meg", "familyName": "Bowen"}
    assert ent(after) == {"employeeNumber": "1001", "department": "Audit"}


@pytest.mark.parametrize("active", [False, "False"])
async def test_q03_pathless_replace_boolean_and_filtered_key(scim: Client, active: Any) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body({"op": "Replace", "value": {
        "active": active,
        'emails[type eq "work"].value': "megan.b@contoso.com",
    }}))
    assert after["active"] is False
    assert work_email(after) == "megan.b@contoso.com"


# Q4 ---------------------------------------------------------------------------------------------


async def test_q04_remove_members_value_array_vs_filter_vs_all(scim: Client) -> None:
    a, b, c, d = await _users(scim, 4)
    group = await create_group(scim, minimal_group("Q4 list"))
    await patch_group(scim, group["id"], patch_body(
        {"op": "Add", "path": "members", "value": [{"value": x} for x in (a, b, c, d)]}
    ))
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "Remove", "path": "members", "value": [{"value": a}, {"value": b}]}
    ))
    assert member_ids(after) == sorted([c, d])
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "remove", "path": f'members[value eq "{c}"]'}
    ))
    assert member_ids(after) == [d]
    after = await patch_group(scim, group["id"], patch_body({"op": "Remove", "path": "members"}))
    assert member_ids(after) == []


# Q5 ---------------------------------------------------------------------------------------------


MANAGER_SHAPES = {
    "urn-path-string": (f"{ENTERPRISE}:manager", lambda mid: mid),
    "urn-path-object": (f"{ENTERPRISE}:manager", lambda mid: {"value": mid}),
    "urn-path-array": (f"{ENTERPRISE}:manager", lambda mid: [{"value": mid}]),
    "short-path-string": ("manager", lambda mid: mid),
    "short-path-ref-array": ("manager", lambda mid: [{"$ref": f"http://.../scim/Users/{mid}", "value": mid}]),
}


@pytest.mark.parametrize("shape", MANAGER_SHAPES, ids=MANAGER_SHAPES.keys())
@pytest.mark.parametrize("op", ["Add", "Replace"])
async def test_q05_manager_value_shapes(scim: Client, shape: str, op: str) -> None:
    manager = await create_user(scim, minimal_user("q5.manager@contoso.com"))
    user = await _full_user(scim)
    path, make = MANAGER_SHAPES[shape]
    after = await patch_user(scim, user["id"], patch_body({"op": op, "path": path, "value": make(manager["id"])}))
    assert manager_of(after)["value"] == manager["id"]
    assert ent(after)["department"] == "Finance"


# Q6 ---------------------------------------------------------------------------------------------


CREATE_ON_ABSENT = [
    ("Add", 'emails[type eq "work"].value', "emails", "work", "value", "new.work@contoso.com"),
    ("Replace", 'emails[type eq "work"].value', "emails", "work", "value", "new.work@contoso.com"),
    ("Replace", 'phoneNumbers[type eq "mobile"].value', "phoneNumbers", "mobile", "value", "+1 412 555 0110"),
    ("Add", 'phoneNumbers[type eq "fax"].value', "phoneNumbers", "fax", "value", "+1 412 555 0111"),
    ("Add", 'addresses[type eq "work"].streetAddress', "addresses", "work", "streetAddress", "1 Main St"),
    ("Replace", 'addresses[type eq "work"].postalCode', "addresses", "work", "postalCode", "15213"),
]


@pytest.mark.parametrize(("op", "path", "attr", "type_", "sub", "value"), CREATE_ON_ABSENT)
async def test_q06_filtered_path_creates_missing_element(
    scim: Client, op: str, path: str, attr: str, type_: str, sub: str, value: str
) -> None:
    user = await create_user(scim, minimal_user("q6@contoso.com"))
    after = await patch_user(scim, user["id"], patch_body({"op": op, "path": path, "value": value}))
    elements = typed(after, attr, type_)
    assert len(elements) == 1, after.get(attr)
    assert elements[0][sub] == value


async def test_q06_filtered_path_updates_only_matching_element(scim: Client) -> None:
    user = await _full_user(scim)
    await patch_user(scim, user["id"], patch_body(
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 412 555 0110"}
    ))
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 412 555 0199"}
    ))
    assert [p["value"] for p in typed(after, "phoneNumbers", "mobile")] == ["+1 412 555 0199"]
    assert [p["value"] for p in typed(after, "phoneNumbers", "work")] == ["+1 412 555 0109"]


@pytest.mark.parametrize("op", ["Add", "Replace"])
async def test_q06_roles_primary_filter_path_is_tolerated(scim: Client, op: str) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": op, "path": 'roles[primary eq "True"].value', "value": "Admin"}
    ))
    assert after["userName"] == "megan.bowen@contoso.com"
    for role in after.get("roles") or []:
        assert role.get("primary") in (True, None), role


# Q7 ---------------------------------------------------------------------------------------------


async def test_q07_remove_filtered_path_ignores_value(scim: Client) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Remove", "path": 'emails[type eq "work"].value', "value": "x@contoso.com"}
    ))
    assert work_email(after) is None
    assert "x@contoso.com" not in [e.get("value") for e in after.get("emails") or []]
    assert after["userName"] == "megan.bowen@contoso.com"


# Q8 ---------------------------------------------------------------------------------------------


async def test_q08_unknown_and_malformed_schema_uris_are_accepted(scim: Client) -> None:
    group = await create_group(scim, {
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:Group",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group",
        ],
        "displayName": "Q8 list",
    })
    assert (await get_group(scim, group["id"]))["displayName"] == "Q8 list"
    user = await create_user(scim, {
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0User",
        ],
        "userName": "q8@contoso.com",
    })
    assert (await get_user(scim, user["id"]))["userName"] == "q8@contoso.com"


# Q9 ---------------------------------------------------------------------------------------------


async def test_q09_meta_roles_and_nulls_in_post(scim: Client) -> None:
    created = await create_user(scim, {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "q9@contoso.com",
        "active": True,
        "id": "client-chosen-id",
        "meta": {"resourceType": "User"},
        "roles": [],
        "title": None,
        "phoneNumbers": None,
        "name": {"givenName": "Quinn", "familyName": None},
    })
    # id is minted by the gateway (readOnly): a client-sent one is ignored, not adopted.
    assert created["id"] != "client-chosen-id"
    user = await get_user(scim, created["id"])
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["created"]
    assert "title" not in user
    assert "phoneNumbers" not in user
    assert user["name"] == {"givenName": "Quinn"}


# Q10 --------------------------------------------------------------------------------------------


async def test_q10_null_ref_in_member_values(scim: Client) -> None:
    a, b = await _users(scim, 2)
    group = await create_group(scim, minimal_group("Q10 list"))
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": a}]}
    ))
    assert member_ids(after) == [a]
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "replace", "path": "members", "value": [{"$ref": None, "value": b}]}
    ))
    assert member_ids(after) == [b]


# Q11 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "expr"), [
    ("Users", 'userName eq "9d1e1c44-5a8b-4f3e-a2c7-6b0d4e8f1a23"'),
    ("Users", 'externalId eq "9d1e1c44-5a8b-4f3e-a2c7-6b0d4e8f1a23"'),
    ("Users", 'emails[type eq "work"].value eq "9d1e1c44-5a8b-4f3e-a2c7-6b0d4e8f1a23"'),
    ("Groups", 'displayName eq "9d1e1c44-5a8b-4f3e-a2c7-6b0d4e8f1a23"'),
])
async def test_q11_random_guid_probes_return_empty_list(scim: Client, resource: str, expr: str) -> None:
    await _full_user(scim)
    await create_group(scim, minimal_group("Q11 list"))
    body = await search(scim, resource, expr)
    assert_empty_list(body)


# Q12 --------------------------------------------------------------------------------------------


async def test_q12_excluded_members_everywhere(scim: Client) -> None:
    [a] = await _users(scim, 1)
    group = await create_group(scim, minimal_group("Q12 list", members=[{"value": a}]))
    assert member_ids(await get_group(scim, group["id"])) == [a]
    by_id = await get(scim, f"{BASE}/Groups/{group['id']}?excludedAttributes=members")
    assert "members" not in by_id
    listed = await get(scim, f"{BASE}/Groups?excludedAttributes=members")
    assert listed["totalResults"] == 1
    assert all("members" not in g for g in listed["Resources"])
    found = await find_one(scim, "Groups", 'displayName eq "Q12 list"', excludedAttributes="members")
    assert "members" not in found
    users = await get(scim, f"{BASE}/Users?excludedAttributes=members")
    assert users["totalResults"] == 1


# Q13 --------------------------------------------------------------------------------------------


async def test_q13_add_on_single_valued_attribute_replaces(scim: Client) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Add", "path": "displayName", "value": "Megan B."},
        {"op": "Add", "path": "active", "value": "False"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Retail"},
        {"op": "Add", "path": "externalId", "value": "MeganB2"},
        {"op": "Add", "path": "name.givenName", "value": "Meg"},
    ))
    assert after["displayName"] == "Megan B."
    assert after["active"] is False
    assert ent(after)["department"] == "Retail"
    assert after["externalId"] == "MeganB2"
    assert after["name"]["givenName"] == "Meg"


# Q14 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["externalId+eq+MeganB", "userName+eq+megan.bowen%40contoso.com"])
async def test_q14_unquoted_literal_is_matched(scim: Client, query: str) -> None:
    # The gateway reads an unquoted literal as a string, as Entra means it.
    user = await _full_user(scim)
    reply = await call(scim, "GET", f"{BASE}/Users?filter={query}", expect=200)
    assert reply.json["totalResults"] == 1
    assert reply.json["Resources"][0]["id"] == user["id"]


# Q15 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expr", [
    'DisplayName eq "BobIsAmazing"',
    'USERNAME eq "bob@contoso.com"',
    'name.FamilyName eq "Amazing"',
    'emails.Value eq "bob@contoso.com"',
    'Emails[Type eq "work"].Value eq "bob@contoso.com"',
    'ExternalId eq "bob"',
    'userName EQ "bob@contoso.com"',
])
async def test_q15_filter_attribute_names_are_case_insensitive(scim: Client, expr: str) -> None:
    bob = await create_user(scim, minimal_user(
        "bob@contoso.com", externalId="bob", displayName="BobIsAmazing",
        name={"givenName": "Bob", "familyName": "Amazing"},
        emails=[{"type": "work", "value": "bob@contoso.com", "primary": True}],
    ))
    await _full_user(scim)
    assert (await find_one(scim, "Users", expr))["id"] == bob["id"]


async def test_q15_attribute_names_in_post_bodies_are_case_insensitive(scim: Client) -> None:
    # Microsoft's Postman "Post EnterpriseUser" capitalises Primary, Department, Manager and Value.
    manager = await create_user(scim, minimal_user("postman.manager@contoso.com"))
    created = await create_user(scim, {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "UserName": "postman.user@contoso.com",
        "Active": True,
        "Emails": [{"Primary": True, "Type": "work", "Value": "postman.user@contoso.com"}],
        ENTERPRISE: {"Department": "Tour Operations", "Manager": {"Value": manager["id"]}},
    })
    user = await get_user(scim, created["id"])
    assert user["userName"] == "postman.user@contoso.com"
    assert user["active"] is True
    assert user["emails"] == [{"primary": True, "type": "work", "value": "postman.user@contoso.com"}]
    assert ent(user)["department"] == "Tour Operations"
    assert manager_of(user)["value"] == manager["id"]
    for stray in ("UserName", "Active", "Emails"):
        assert stray not in user


# Q16 --------------------------------------------------------------------------------------------


async def test_q16_username_and_display_name_match_case_insensitively_and_keep_case(scim: Client) -> None:
    user = await create_user(scim, minimal_user("Patti.Fernandez@Contoso.com"))
    group = await create_group(scim, minimal_group("Sales Team"))
    found = await find_one(scim, "Users", 'userName eq "patti.fernandez@contoso.COM"')
    assert found["id"] == user["id"]
    assert found["userName"] == "Patti.Fernandez@Contoso.com"
    found_group = await find_one(scim, "Groups", 'displayName eq "sales team"')
    assert found_group["id"] == group["id"]
    assert found_group["displayName"] == "Sales Team"


# Q17 --------------------------------------------------------------------------------------------


MANAGER = f"{ENTERPRISE}:manager"
REMOVE_MANAGER_FORMS = {
    "replace-empty-value-object": lambda mid: {"op": "replace", "path": MANAGER, "value": {"value": ""}},
    "replace-null-value-object": lambda mid: {"op": "replace", "path": MANAGER, "value": {"value": None}},
    "replace-empty-string": lambda mid: {"op": "Replace", "path": MANAGER, "value": ""},
    "remove-filter": lambda mid: {"op": "remove", "path": f'manager[value eq "{mid}"]'},
    "remove-urn-path": lambda mid: {"op": "Remove", "path": MANAGER},
}


@pytest.mark.parametrize("form", REMOVE_MANAGER_FORMS, ids=REMOVE_MANAGER_FORMS.keys())
async def test_q17_manager_removal_forms(scim: Client, form: str) -> None:
    manager = await create_user(scim, minimal_user("q17.manager@contoso.com"))
    user = await _full_user(scim)
    await patch_user(scim, user["id"], patch_body(
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": manager["id"]}
    ))
    after = await patch_user(scim, user["id"], patch_body(REMOVE_MANAGER_FORMS[form](manager["id"])))
    assert manager_of(after) is None
    assert ent(after) == {"employeeNumber": "1001", "department": "Finance"}


# Q18 --------------------------------------------------------------------------------------------


async def test_q18_operations_apply_in_order(scim: Client) -> None:
    user = await _full_user(scim)
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Replace", "path": "displayName", "value": "first"},
        {"op": "Replace", "path": "displayName", "value": "second"},
        {"op": "Remove", "path": "title"},
        {"op": "Add", "path": "title", "value": "Lead Auditor"},
    ))
    assert after["displayName"] == "second"
    assert after["title"] == "Lead Auditor"


async def test_q18_patch_is_all_or_nothing(scim: Client) -> None:
    user = await _full_user(scim)
    before = await get_user(scim, user["id"])
    reply = await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", patch_body(
        {"op": "Replace", "path": "displayName", "value": "half-applied"},
        {"op": "Replace", "path": "active", "value": "sometimes"},
    ))
    assert_error(reply, 400, "invalidValue")
    assert strip_meta(await get_user(scim, user["id"])) == strip_meta(before)


async def test_q18_group_patch_is_all_or_nothing(scim: Client) -> None:
    a, b = await _users(scim, 2)
    group = await create_group(scim, minimal_group("Q18 list", members=[{"value": a}]))
    reply = await call(scim, "PATCH", f"{BASE}/Groups/{group['id']}", patch_body(
        {"op": "Add", "path": "members", "value": [{"value": b}]},
        {"op": "Replace", "path": 'members[value eq "unterminated', "value": "x"},
    ))
    assert_error(reply, 400, "invalidPath")
    assert member_ids(await get_group(scim, group["id"])) == [a]


# Q19 --------------------------------------------------------------------------------------------


async def test_q19_replace_members_means_exact_set(scim: Client) -> None:
    a, b, c, d = await _users(scim, 4)
    group = await create_group(scim, minimal_group("Q19 list", members=[{"value": a}, {"value": b}, {"value": c}]))
    after = await patch_group(scim, group["id"], patch_body(
        {"op": "Replace", "path": "members", "value": [{"value": c}, {"value": d}]}
    ))
    assert member_ids(after) == sorted([c, d])
    after = await patch_group(scim, group["id"], patch_body({"op": "replace", "path": "members", "value": []}))
    assert member_ids(after) == []


# Q20 --------------------------------------------------------------------------------------------


async def test_q20_repost_of_existing_username_is_409(scim: Client) -> None:
    user = await _full_user(scim)
    reply = await call(scim, "POST", f"{BASE}/Users", minimal_user(
        "megan.bowen@contoso.com", externalId="another", displayName="Someone Else"
    ))
    assert_error(reply, 409, "uniqueness")
    kept = await get_user(scim, user["id"])
    assert kept["displayName"] == "Megan Bowen"
    assert kept["externalId"] == "MeganB"


# Q21 --------------------------------------------------------------------------------------------


async def test_q21_values_are_stored_exactly_as_sent(scim: Client) -> None:
    created = await create_user(scim, minimal_user(
        "Lynne.Robbins@Contoso.ONMICROSOFT.com",
        displayName="Lynne  Robbins",
        emails=[{"type": "work", "value": "Lynne.Robbins@Contoso.COM", "primary": True}],
        phoneNumbers=[{"type": "work", "value": "55555555555"}, {"type": "mobile", "value": "+1 (555) 555-5555"}],
        preferredLanguage="en-us",
        nickName="Zoë Ångström-Łukasz 李",
    ))
    user = await get_user(scim, created["id"])
    assert user["userName"] == "Lynne.Robbins@Contoso.ONMICROSOFT.com"
    assert user["displayName"] == "Lynne  Robbins"
    assert user["emails"] == [{"type": "work", "value": "Lynne.Robbins@Contoso.COM", "primary": True}]
    assert user["phoneNumbers"] == [
        {"type": "work", "value": "55555555555"}, {"type": "mobile", "value": "+1 (555) 555-5555"},
    ]
    assert user["preferredLanguage"] == "en-us"
    assert user["nickName"] == "Zoë Ångström-Łukasz 李"
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "LYNNE.R@Contoso.COM"}
    ))
    assert work_email(after) == "LYNNE.R@Contoso.COM"


# Q22 --------------------------------------------------------------------------------------------


async def test_q22_primary_is_optional(scim: Client) -> None:
    created = await create_user(scim, minimal_user(
        "q22@contoso.com", emails=[{"type": "work", "value": "q22@contoso.com"}]
    ))
    assert [e["value"] for e in typed(created, "emails", "work")] == ["q22@contoso.com"]
    after = await patch_user(scim, created["id"], patch_body(
        {"op": "Add", "path": "phoneNumbers", "value": [{"type": "mobile", "value": "0800 123"}]}
    ))
    assert [p["value"] for p in typed(after, "phoneNumbers", "mobile")] == ["0800 123"]


# Q23 --------------------------------------------------------------------------------------------


async def test_q23_error_status_is_a_string_with_scim_media_type(scim: Client) -> None:
    user = await _full_user(scim)
    assert_error(await call(scim, "GET", f"{BASE}/Users/does-not-exist"), 404)
    assert_error(await call(scim, "POST", f"{BASE}/Users", minimal_user(user["userName"])), 409, "uniqueness")
    assert_error(await call(scim, "GET", f"{BASE}/Users?filter=userName+eq"), 400, "invalidFilter")
    assert_error(await call(scim, "POST", f"{BASE}/Users", raw="{not json"), 400, "invalidSyntax")


# Q24 --------------------------------------------------------------------------------------------


async def test_q24_user_patch_returns_200_with_resource(scim: Client) -> None:
    user = await _full_user(scim)
    reply = await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", patch_body(
        {"op": "Replace", "path": "displayName", "value": "Megan B."}
    ), expect=200)
    assert reply.json["id"] == user["id"]
    assert reply.json["displayName"] == "Megan B."
    assert reply.json["userName"] == "megan.bowen@contoso.com"


async def test_q24_group_patch_answers_200_with_the_group(scim: Client) -> None:
    # Entra accepts 200 or 204; strict RFC clients expect the resource, so the gateway sends it.
    [a] = await _users(scim, 1)
    group = await create_group(scim, minimal_group("Q24 list"))
    reply = await call(scim, "PATCH", f"{BASE}/Groups/{group['id']}", patch_body(
        {"op": "Add", "path": "members", "value": [{"value": a}]}
    ), expect=200)
    assert reply.json["id"] == group["id"]
    assert [m["value"] for m in reply.json["members"]] == [a]


# Q25 --------------------------------------------------------------------------------------------


async def test_q25_user_external_id_is_not_unique(scim: Client) -> None:
    first = await create_user(scim, minimal_user("alex.w@contoso.com", externalId="AlexW"))
    second = await create_user(scim, minimal_user("alex.w@fabrikam.com", externalId="AlexW"))
    body = await search(scim, "Users", 'externalId eq "AlexW"')
    assert body["totalResults"] == 2
    assert sorted(r["id"] for r in body["Resources"]) == sorted([first["id"], second["id"]])


# Q26 --------------------------------------------------------------------------------------------


async def test_q26_guest_username_from_external_domain_is_accepted(scim: Client) -> None:
    created = await create_user(scim, minimal_user(
        "guest.user@fabrikam.example",
        emails=[{"type": "work", "value": "guest.user@fabrikam.example", "primary": True}],
    ))
    assert created["userName"] == "guest.user@fabrikam.example"
    found = await find_one(scim, "Users", 'userName eq "guest.user@fabrikam.example"')
    assert found["id"] == created["id"]


# Q27 --------------------------------------------------------------------------------------------


async def test_q27_attributes_omitted_from_patch_keep_their_values(scim: Client) -> None:
    user = await _full_user(scim)
    before = await get_user(scim, user["id"])
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "Replace", "path": "displayName", "value": "Megan B."}
    ))
    expected = strip_meta(before)
    expected["displayName"] = "Megan B."
    assert strip_meta(after) == expected
