"""User exchanges E1–E14, E24 and E30 of the Entra reference, replayed byte for byte.

Fixed ids in the reference's bodies and URLs are replaced by ids the gateway minted, because
Entra only ever sends ids it got back from us.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import BASE
from tests.entra.helpers import (
    ENTERPRISE,
    ERROR_URN,
    USER_URN,
    VALIDATOR_USER,
    VALIDATOR_USER_NAME,
    Client,
    assert_empty_list,
    assert_error,
    assert_list_response,
    assert_validator_user,
    assert_verbose_applied,
    call,
    create_user,
    ent,
    find_one,
    get,
    get_user,
    manager_of,
    minimal_user,
    patch_body,
    patch_user,
    search,
    typed,
    verbose_replace,
    work_email,
)
from tests.matrix import BackendUnderTest

PROBE_GUID = "cf4d78e8-cc4f-4d5d-b8b9-183561c0104a"

E2_CREATE = """{
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "active": true,
    "emails": [{
        "primary": true,
        "type": "work",
        "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"
    }],
    "meta": {
        "resourceType": "User"
    },
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName"
    },
    "roles": []
}"""
E2_USER_NAME = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
E2_ADDRESS = f"{E2_USER_NAME}@testuser.com"
E2_EMAIL = "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"

E3_CREATE = """{
   "schemas":
   [
     "urn:ietf:params:scim:schemas:core:2.0:User",
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
   "externalId":"jyoung",
   "userName":"jyoung@testuser.com",
   "active":true,
   "addresses":null,
   "displayName":"Joy Young",
   "emails": [
     {
       "type":"work",
       "value":"jyoung@Contoso.com",
       "primary":true}],
   "meta": {
     "resourceType":"User"},
    "name":{
     "familyName":"Young",
     "givenName":"Joy"},
   "phoneNumbers":null,
   "preferredLanguage":null,
   "title":null,
   "department":null,
   "manager":null}"""

E8_PATCH = r"""{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [
            {
            "op": "Replace",
            "path": "emails[type eq \"work\"].value",
            "value": "updatedEmail@microsoft.com"
            },
            {
            "op": "Replace",
            "path": "name.familyName",
            "value": "updatedFamilyName"
            }
    ]
}"""

E9_PATCH = """{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "userName",
        "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    }]
}"""

E10_DOC = """{
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": false
        }
    ],
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ]
}"""

E10_NO_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": "False"
        }
    ]
}"""

E10_FLAG = """{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "replace",
            "path": "active",
            "value": false
        }
    ]
}"""

DISABLE_FORMS = {
    "doc-bool": E10_DOC,
    "no-flag-string-False": E10_NO_FLAG,
    "flag-lowercase-op-bool": E10_FLAG,
    "string-lowercase-false": E10_NO_FLAG.replace('"False"', '"false"'),
    "Add-bool": E10_DOC.replace('"Replace"', '"Add"'),
    "Add-string-False": E10_NO_FLAG.replace('"Replace"', '"Add"'),
}

ENABLE_FORMS = {
    "no-flag-string-True": E10_NO_FLAG.replace('"False"', '"True"'),
    "string-lowercase-true": E10_NO_FLAG.replace('"False"', '"true"'),
    "flag-bool": E10_FLAG.replace("false", "true"),
    "Add-string-True": E10_NO_FLAG.replace('"Replace"', '"Add"').replace('"False"', '"True"'),
}

E12_LEGACY_MANAGER = """{
    "schemas":
    [
      "urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations":
    [
      {
        "op":"Add",
        "path":"manager",
        "value":
          [
            {
              "$ref":"http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
              "value":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}]}]}"""

E12_MODERN_MANAGER = """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"add",
   "path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
   "value":"2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}]}"""

E12_REMOVE_EMPTY_VALUE = """{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"replace",
   "path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
   "value":{"value":""}}]}"""

E12_REMOVE_FILTER = r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
 "Operations":[{"op":"remove","path":"manager[value eq \"manager-id\"]"}]}"""

E13_NO_FLAG = r"""{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "Replace",
            "path": "displayName",
            "value": "Pvlo"
        },
        {
            "op": "Replace",
            "path": "emails[type eq \"work\"].value",
            "value": "TestBcwqnm@test.microsoft.com"
        },
        {
            "op": "Replace",
            "path": "name.givenName",
            "value": "Gtfd"
        },
        {
            "op": "Replace",
            "path": "name.familyName",
            "value": "Pkqf"
        },
        {
            "op": "Replace",
            "path": "externalId",
            "value": "Eqpj"
        },
        {
            "op": "Replace",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "value": "Eqpj"
        }
    ]
}"""

E13_FLAG = r"""{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "replace",
            "path": "emails[type eq \"work\"].value",
            "value": "TestMhvaes@test.microsoft.com"
        },
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
            }
        }
    ]
}"""

E13_LARAVEL = r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
 {"op":"Replace","path":"emails[type eq \"work\"].value","value":"AdeleV2@REDACTED.onmicrosoft.com"},
 {"op":"Replace","path":"addresses[type eq \"work\"].formatted","value":"18/2111"},
 {"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Retail"}]}"""

E13_ADD_WORK_EMAIL = r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
 {"op":"Add","path":"emails[type eq \"work\"].value","value":"something@outlook.com"}]}"""


@dataclass(frozen=True)
class E2:
    """Entra's E2 create as this backend can take it: verbatim where any userName goes; where mailboxes are
    mail addresses, the same body with the userName as an address (Entra's default mapping sends one)."""

    body: str
    user_name: str


@pytest.fixture
def e2(entra_backend: BackendUnderTest) -> E2:
    if not entra_backend.addresses_only:
        return E2(E2_CREATE, E2_USER_NAME)
    return E2(E2_CREATE.replace(f'"{E2_USER_NAME}"', f'"{E2_ADDRESS}"'), E2_ADDRESS)


async def _e2_user(scim: Client, e2: E2) -> dict[str, Any]:
    return await create_user(scim, e2.body)


async def _entra_user(scim: Client, user_name: str = "adele.vance@contoso.com") -> dict[str, Any]:
    """A user shaped like Entra's default mapping creates it (work email, name parts)."""
    return await create_user(scim, minimal_user(
        user_name,
        externalId="AdeleV",
        displayName="Adele Vance",
        emails=[{"primary": True, "type": "work", "value": user_name}],
        name={"formatted": "Adele Vance", "familyName": "Vance", "givenName": "Adele"},
    ))


# E1 ---------------------------------------------------------------------------------------------


async def test_e01_probe_random_guid_username_plus_encoded(scim: Client, e2: E2) -> None:
    await _e2_user(scim, e2)
    reply = await call(scim, "GET", f"{BASE}/Users?filter=userName+eq+%22{PROBE_GUID}%22", expect=200)
    assert_empty_list(reply.json)


async def test_e01_probe_with_feature_flag_in_tenant_url(scim: Client, e2: E2) -> None:
    await _e2_user(scim, e2)
    reply = await call(
        scim, "GET", f"{BASE}/Users?aadOptscim062020&filter=userName+eq+%22{PROBE_GUID}%22", expect=200
    )
    assert_empty_list(reply.json)


async def test_e01_flagged_tenant_url_still_finds_existing_user(scim: Client, e2: E2) -> None:
    user = await _e2_user(scim, e2)
    reply = await call(
        scim, "GET", f"{BASE}/Users?aadOptscim062020&filter=userName+eq+%22{e2.user_name}%22", expect=200
    )
    assert reply.json["totalResults"] == 1
    assert reply.json["Resources"][0]["id"] == user["id"]


async def test_e01_validator_probe_with_literal_quotes_and_encoded_at(scim: Client) -> None:
    user = await create_user(scim, minimal_user("dale.mohr@romaguera.uk"))
    reply = await call(scim, "GET", f'{BASE}/Users?filter=userName+eq+"dale.mohr%40romaguera.uk"', expect=200)
    assert reply.json["totalResults"] == 1
    assert reply.json["Resources"][0]["id"] == user["id"]


async def test_e01_group_probe_excluding_members(scim: Client) -> None:
    reply = await call(
        scim, "GET",
        f"{BASE}/Groups?excludedAttributes=members&filter=displayName+eq+%22{PROBE_GUID}%22",
        expect=200,
    )
    assert_empty_list(reply.json)


async def test_e01_doubled_slash_after_tenant_url(scim: Client) -> None:
    # Admins paste the Tenant URL with a trailing slash and Entra appends "/Users" to it.
    reply = await call(scim, "GET", f"{BASE}//Users?filter=userName+eq+%22{PROBE_GUID}%22", expect=200)
    assert_empty_list(reply.json)


# E2 ---------------------------------------------------------------------------------------------


async def test_e02_create_user(scim: Client, e2: E2) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", raw=e2.body, expect=201)
    user = reply.json
    uid = user["id"]
    assert isinstance(uid, str) and uid
    location = reply.headers.get("Location")
    assert location is not None and location.endswith(f"{BASE}/Users/{uid}"), location
    assert user["meta"]["location"] == location
    assert user["meta"]["resourceType"] == "User"
    assert user["meta"]["created"] and user["meta"]["lastModified"]
    assert USER_URN in user["schemas"]
    assert user["userName"] == e2.user_name
    assert user["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    assert user["active"] is True
    assert user["emails"] == [{"primary": True, "type": "work", "value": E2_EMAIL}]
    assert user["name"] == {
        "formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName",
    }

    by_id = await get_user(scim, uid)
    by_filter = await find_one(scim, "Users", f'userName eq "{e2.user_name}"')
    for read in (by_id, by_filter):
        assert read["id"] == uid
        assert read["userName"] == e2.user_name
        assert read["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
        assert read["active"] is True
        assert read["emails"] == user["emails"]
        assert read["name"] == user["name"]
        assert read["meta"]["created"] == user["meta"]["created"]


# E3 ---------------------------------------------------------------------------------------------


async def test_e03_legacy_verbose_create_with_nulls_and_bad_urn(scim: Client) -> None:
    created = await create_user(scim, E3_CREATE)
    user = await get_user(scim, created["id"])
    assert user["userName"] == "jyoung@testuser.com"
    assert user["externalId"] == "jyoung"
    assert user["displayName"] == "Joy Young"
    assert user["active"] is True
    assert user["emails"] == [{"type": "work", "value": "jyoung@Contoso.com", "primary": True}]
    assert user["name"]["familyName"] == "Young"
    assert user["name"]["givenName"] == "Joy"
    for absent in ("addresses", "phoneNumbers", "preferredLanguage", "title", "department", "manager"):
        assert absent not in user, f"null {absent} must read back absent: {user}"
    assert manager_of(user) is None
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0User" not in user["schemas"]
    assert USER_URN in user["schemas"]


# E4 ---------------------------------------------------------------------------------------------


async def test_e04_filter_by_username_hit(scim: Client, e2: E2) -> None:
    user = await _e2_user(scim, e2)
    await create_user(scim, minimal_user("someone.else@contoso.com"))
    body = await search(scim, "Users", f'userName eq "{e2.user_name}"')
    assert body["totalResults"] == 1
    assert body["startIndex"] == 1
    assert isinstance(body["itemsPerPage"], int)
    assert [r["id"] for r in body["Resources"]] == [user["id"]]
    found = body["Resources"][0]
    assert found["userName"] == e2.user_name
    assert found["emails"] == [{"primary": True, "type": "work", "value": E2_EMAIL}]
    assert found["meta"]["resourceType"] == "User"


async def test_e04_filter_by_username_different_case(scim: Client, e2: E2) -> None:
    user = await _e2_user(scim, e2)
    found = await find_one(scim, "Users", f'userName eq "{e2.user_name.upper()}"')
    assert found["id"] == user["id"]
    assert found["userName"] == e2.user_name


async def test_e04_filter_value_with_plus_and_apostrophe(scim: Client) -> None:
    # quote_plus sends "+" as %2B: the gateway must not turn it into a space.
    tagged = await create_user(scim, minimal_user("first+tag@contoso.com"))
    irish = await create_user(scim, minimal_user("o'brien@contoso.com"))
    assert (await find_one(scim, "Users", 'userName eq "first+tag@contoso.com"'))["id"] == tagged["id"]
    assert (await find_one(scim, "Users", "userName eq \"o'brien@contoso.com\""))["id"] == irish["id"]
    assert (await search(scim, "Users", 'userName eq "first tag@contoso.com"'))["totalResults"] == 0


# E5 ---------------------------------------------------------------------------------------------


async def test_e05_filter_miss_is_empty_list_response(scim: Client, e2: E2) -> None:
    await _e2_user(scim, e2)
    reply = await call(scim, "GET", f"{BASE}/Users?filter=userName+eq+%22non-existent+user%22", expect=200)
    assert_empty_list(reply.json)


# E6 ---------------------------------------------------------------------------------------------


async def test_e06_filter_by_external_id_quoted(scim: Client) -> None:
    created = await create_user(scim, E3_CREATE)
    reply = await call(scim, "GET", f"{BASE}/Users?filter=externalId+eq+%22jyoung%22", expect=200)
    assert reply.json["totalResults"] == 1
    assert reply.json["Resources"][0]["id"] == created["id"]


async def test_e06_filter_by_external_id_unquoted_literal(scim: Client) -> None:
    created = await create_user(scim, E3_CREATE)
    reply = await call(scim, "GET", f"{BASE}/Users?filter=externalId+eq+jyoung", expect=200)
    assert reply.json["totalResults"] == 1
    assert reply.json["Resources"][0]["id"] == created["id"]


MATCHING_FILTERS = [
    'userName eq "megan.bowen@contoso.com"',
    'externalId eq "MeganB"',
    'emails[type eq "work"].value eq "Megan.Bowen@contoso.com"',
    'emails[type eq "work"].value eq "MEGAN.BOWEN@CONTOSO.COM"',
    f'{ENTERPRISE}:employeeNumber eq "1001"',
    'displayName eq "Megan Bowen"',
    'userName eq "megan.bowen@contoso.com" and active eq true',
]


@pytest.mark.parametrize("expr", MATCHING_FILTERS)
async def test_e06_admin_selected_matching_attributes(scim: Client, expr: str) -> None:
    # Admins may pick any mapped attribute as the matching one; Entra then filters on it with eq.
    megan = await create_user(scim, {
        "schemas": [USER_URN, ENTERPRISE],
        "userName": "megan.bowen@contoso.com",
        "externalId": "MeganB",
        "displayName": "Megan Bowen",
        "active": True,
        "emails": [{"type": "work", "value": "Megan.Bowen@contoso.com", "primary": True}],
        ENTERPRISE: {"employeeNumber": "1001"},
    })
    await create_user(scim, {
        "schemas": [USER_URN, ENTERPRISE],
        "userName": "alex.wilber@contoso.com",
        "externalId": "AlexW",
        "displayName": "Alex Wilber",
        "emails": [{"type": "home", "value": "Megan.Bowen@contoso.com"}],
        ENTERPRISE: {"employeeNumber": "1002"},
    })
    assert (await find_one(scim, "Users", expr))["id"] == megan["id"]


async def test_e06_filter_by_id(scim: Client, e2: E2) -> None:
    user = await _e2_user(scim, e2)
    await create_user(scim, minimal_user("someone.else@contoso.com"))
    assert (await find_one(scim, "Users", f'id eq "{user["id"]}"'))["userName"] == e2.user_name


async def test_e06_filter_by_work_email(scim: Client) -> None:
    user = await create_user(scim, minimal_user(
        "user@contoso.com", emails=[{"type": "work", "value": "user@contoso.com", "primary": True}]
    ))
    await create_user(scim, minimal_user(
        "other@contoso.com", emails=[{"type": "home", "value": "shared@contoso.com"}]
    ))
    found = await find_one(scim, "Users", 'emails[type eq "work"].value eq "user@contoso.com"')
    assert found["id"] == user["id"]
    # A matching address of another type must not count as the work email.
    miss = await search(scim, "Users", 'emails[type eq "work"].value eq "shared@contoso.com"')
    assert miss["totalResults"] == 0


async def test_e06_id_and_manager_filter_with_attributes_id(scim: Client) -> None:
    manager = await create_user(scim, minimal_user("boss@contoso.com"))
    user = await create_user(scim, minimal_user("report@contoso.com"))
    await patch_user(scim, user["id"], patch_body(
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": manager["id"]}
    ))
    body = await search(
        scim, "Users", f'id eq "{user["id"]}" and manager eq "{manager["id"]}"', attributes="id"
    )
    assert body["totalResults"] == 1
    only = body["Resources"][0]
    assert only["id"] == user["id"]
    assert set(only) <= {"id", "schemas"}, f"attributes=id must project to the id: {only}"

    other = await search(scim, "Users", f'id eq "{user["id"]}" and manager eq "{user["id"]}"', attributes="id")
    assert other["totalResults"] == 0


async def test_e06_id_and_manager_filter_unquoted_legacy_form(scim: Client) -> None:
    manager = await create_user(scim, minimal_user("boss@contoso.com"))
    user = await create_user(scim, minimal_user("report@contoso.com"))
    await patch_user(scim, user["id"], patch_body(
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": manager["id"]}
    ))
    reply = await call(
        scim, "GET",
        f"{BASE}/Users?filter=id+eq+{user['id']}+and+manager+eq+{manager['id']}&attributes=id",
        expect=200,
    )
    assert reply.json["totalResults"] == 1
    assert reply.json["Resources"][0]["id"] == user["id"]


# E7 ---------------------------------------------------------------------------------------------


async def test_e07_get_user_by_id(scim: Client, e2: E2) -> None:
    created = await _e2_user(scim, e2)
    user = await get_user(scim, created["id"])
    assert user["userName"] == e2.user_name
    assert user["externalId"] == "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"
    assert user["meta"]["resourceType"] == "User"
    assert user["emails"] == created["emails"]


@pytest.mark.parametrize("missing", ["5d48a0a8e9f04aa38008", "23B51B0E5D7AE9110A49411D@7cca31655d49f3640a494224"])
async def test_e07_get_unknown_user_is_404_error(scim: Client, e2: E2, missing: str) -> None:
    await _e2_user(scim, e2)
    reply = await call(scim, "GET", f"{BASE}/Users/{missing}", expect=404)
    err = reply.json
    assert err["schemas"] == [ERROR_URN]
    assert err["status"] == "404"


# E8–E9 ------------------------------------------------------------------------------------------


async def test_e08_patch_work_email_and_family_name(scim: Client, e2: E2) -> None:
    created = await _e2_user(scim, e2)
    user = await patch_user(scim, created["id"], E8_PATCH)
    assert work_email(user) == "updatedEmail@microsoft.com"
    assert user["name"]["familyName"] == "updatedFamilyName"
    assert user["name"]["givenName"] == "givenName"
    assert len(user["emails"]) == 1
    assert user["userName"] == e2.user_name
    found = await find_one(scim, "Users", 'emails[type eq "work"].value eq "updatedEmail@microsoft.com"')
    assert found["id"] == created["id"]


async def test_e09_rename_username(scim: Client, e2: E2) -> None:
    created = await _e2_user(scim, e2)
    new_name = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    user = await patch_user(scim, created["id"], E9_PATCH)
    assert user["id"] == created["id"]
    assert user["userName"] == new_name
    assert (await find_one(scim, "Users", f'userName eq "{new_name}"'))["id"] == created["id"]
    assert (await search(scim, "Users", f'userName eq "{e2.user_name}"'))["totalResults"] == 0
    # The old address is free again: Entra may assign it to another person in the same cycle.
    reused = await create_user(scim, minimal_user(e2.user_name))
    assert reused["id"] != created["id"]


# E10 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", DISABLE_FORMS.values(), ids=DISABLE_FORMS.keys())
async def test_e10_disable_user(scim: Client, e2: E2, body: str) -> None:
    created = await _e2_user(scim, e2)
    user = await patch_user(scim, created["id"], body)
    assert user["active"] is False
    found = await find_one(scim, "Users", f'userName eq "{e2.user_name}"')
    assert found["id"] == created["id"]
    assert found["active"] is False


@pytest.mark.parametrize("body", ENABLE_FORMS.values(), ids=ENABLE_FORMS.keys())
async def test_e10_reenable_user(scim: Client, e2: E2, body: str) -> None:
    created = await _e2_user(scim, e2)
    await patch_user(scim, created["id"], E10_NO_FLAG)
    user = await patch_user(scim, created["id"], body)
    assert user["active"] is True
    found = await find_one(scim, "Users", f'userName eq "{e2.user_name}"')
    assert found["active"] is True


# E11 --------------------------------------------------------------------------------------------


async def test_e11_delete_user(scim: Client, e2: E2) -> None:
    created = await _e2_user(scim, e2)
    await call(scim, "DELETE", f"{BASE}/Users/{created['id']}", expect=204)
    assert_error(await call(scim, "GET", f"{BASE}/Users/{created['id']}"), 404)
    assert (await search(scim, "Users", f'userName eq "{e2.user_name}"'))["totalResults"] == 0
    assert_error(await call(scim, "DELETE", f"{BASE}/Users/{created['id']}"), 404)


# E12 --------------------------------------------------------------------------------------------


async def _user_and_manager(scim: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    manager = await create_user(scim, minimal_user("manager@contoso.com"))
    user = await _entra_user(scim)
    return user, manager


async def test_e12_add_manager_legacy_ref_array(scim: Client) -> None:
    user, manager = await _user_and_manager(scim)
    body = E12_LEGACY_MANAGER.replace("00aa00aa-bb11-cc22-dd33-44ee44ee44ee", manager["id"])
    after = await patch_user(scim, user["id"], body)
    assert manager_of(after)["value"] == manager["id"]


async def test_e12_add_manager_bare_string_urn_path(scim: Client) -> None:
    user, manager = await _user_and_manager(scim)
    body = E12_MODERN_MANAGER.replace("2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2", manager["id"])
    after = await patch_user(scim, user["id"], body)
    assert manager_of(after)["value"] == manager["id"]
    found = await find_one(scim, "Users", f'userName eq "{user["userName"]}"')
    assert manager_of(found)["value"] == manager["id"]


async def test_e12_replace_manager(scim: Client) -> None:
    user, manager = await _user_and_manager(scim)
    second = await create_user(scim, minimal_user("second.manager@contoso.com"))
    await patch_user(scim, user["id"], E12_MODERN_MANAGER.replace(
        "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2", manager["id"]))
    after = await patch_user(scim, user["id"], patch_body(
        {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": second["id"]}
    ))
    assert manager_of(after)["value"] == second["id"]


async def test_e12_remove_manager_with_empty_value_object(scim: Client) -> None:
    user, manager = await _user_and_manager(scim)
    await patch_user(scim, user["id"], E12_MODERN_MANAGER.replace(
        "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2", manager["id"]))
    after = await patch_user(scim, user["id"], E12_REMOVE_EMPTY_VALUE)
    assert manager_of(after) is None


async def test_e12_remove_manager_by_value_filter(scim: Client) -> None:
    user, manager = await _user_and_manager(scim)
    await patch_user(scim, user["id"], E12_MODERN_MANAGER.replace(
        "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2", manager["id"]))
    after = await patch_user(scim, user["id"], E12_REMOVE_FILTER.replace("manager-id", manager["id"]))
    assert manager_of(after) is None


async def test_e12_manager_is_returned_as_object_under_enterprise_urn(scim: Client) -> None:
    user, manager = await _user_and_manager(scim)
    await patch_user(scim, user["id"], E12_MODERN_MANAGER.replace(
        "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2", manager["id"]))
    reply = await call(scim, "GET", f"{BASE}/Users/{user['id']}", expect=200)
    raw = json.loads(reply.text)
    assert "manager" not in raw
    assert isinstance(raw[ENTERPRISE]["manager"], dict)
    assert raw[ENTERPRISE]["manager"]["value"] == manager["id"]
    assert ENTERPRISE in raw["schemas"]


# E13 --------------------------------------------------------------------------------------------


async def test_e13_replace_paths_without_feature_flag(scim: Client) -> None:
    created = await _entra_user(scim)
    user = await patch_user(scim, created["id"], E13_NO_FLAG)
    assert user["displayName"] == "Pvlo"
    assert work_email(user) == "TestBcwqnm@test.microsoft.com"
    assert user["name"]["givenName"] == "Gtfd"
    assert user["name"]["familyName"] == "Pkqf"
    assert user["externalId"] == "Eqpj"
    assert ent(user)["employeeNumber"] == "Eqpj"
    assert user["userName"] == created["userName"]


async def test_e13_pathless_replace_with_dotted_and_urn_keys(scim: Client) -> None:
    created = await _entra_user(scim)
    user = await patch_user(scim, created["id"], E13_FLAG)
    assert work_email(user) == "TestMhvaes@test.microsoft.com"
    assert user["displayName"] == "Bjfe"
    assert user["name"]["givenName"] == "Kkom"
    assert user["name"]["familyName"] == "Unua"
    assert user["name"]["formatted"] == "Adele Vance"
    assert ent(user)["employeeNumber"] == "Aklq"
    for literal in ("name.givenName", "name.familyName"):
        assert literal not in user, f"dotted key stored literally: {user}"
    assert user["externalId"] == "AdeleV"


@pytest.mark.parametrize("op", ["Add", "add"])
async def test_e13_single_value_add_nickname(scim: Client, op: str) -> None:
    created = await _entra_user(scim)
    user = await patch_user(scim, created["id"], patch_body({"op": op, "path": "nickName", "value": "Babs"}))
    assert user["nickName"] == "Babs"


async def test_e13_replace_and_add_mixed_real_traffic(scim: Client) -> None:
    created = await _entra_user(scim)
    user = await patch_user(scim, created["id"], E13_LARAVEL)
    assert work_email(user) == "AdeleV2@REDACTED.onmicrosoft.com"
    assert [a["formatted"] for a in typed(user, "addresses", "work")] == ["18/2111"]
    assert ent(user)["department"] == "Retail"


async def test_e13_add_work_email_creates_element(scim: Client) -> None:
    created = await create_user(scim, minimal_user("no.mail@contoso.com"))
    assert "emails" not in created
    user = await patch_user(scim, created["id"], E13_ADD_WORK_EMAIL)
    works = typed(user, "emails", "work")
    assert len(works) == 1
    assert works[0]["value"] == "something@outlook.com"


# E14 --------------------------------------------------------------------------------------------


async def test_e14_create_with_roles_tolerated(scim: Client) -> None:
    body = minimal_user(
        "roles.user@contoso.com",
        roles=[{"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}],
    )
    created = await create_user(scim, body)
    user = await get_user(scim, created["id"])
    assert user["userName"] == "roles.user@contoso.com"


async def test_e14_patch_roles_json_encoded_string_tolerated(scim: Client) -> None:
    created = await _entra_user(scim)
    body = r"""{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
{"op": "Add", "path": "roles", "value": [
  {"value": "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}]}]}"""
    user = await patch_user(scim, created["id"], body)
    assert user["userName"] == created["userName"]


async def test_e14_patch_roles_assertive_replace_tolerated(scim: Client) -> None:
    created = await _entra_user(scim)
    body = patch_body({"op": "replace", "path": "roles", "value": [
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "value": "Reader", "display": "Reader"},
    ]})
    user = await patch_user(scim, created["id"], body)
    assert user["userName"] == created["userName"]


# E24 --------------------------------------------------------------------------------------------


async def test_e24_validator_full_create_reads_back(scim: Client) -> None:
    created = await create_user(scim, VALIDATOR_USER)
    assert_validator_user(created)
    assert_validator_user(await get_user(scim, created["id"]))
    assert_validator_user(await find_one(scim, "Users", f'userName eq "{VALIDATOR_USER_NAME}"'))


async def test_e24_duplicate_create_is_409_uniqueness(scim: Client) -> None:
    await create_user(scim, VALIDATOR_USER)
    reply = await call(scim, "POST", f"{BASE}/Users", raw=VALIDATOR_USER)
    assert_error(reply, 409, "uniqueness")
    assert (await search(scim, "Users", f'userName eq "{VALIDATOR_USER_NAME}"'))["totalResults"] == 1


async def test_e24_case_variant_duplicate_is_409(scim: Client) -> None:
    await create_user(scim, VALIDATOR_USER)
    variant = VALIDATOR_USER.replace(VALIDATOR_USER_NAME, VALIDATOR_USER_NAME.upper())
    reply = await call(scim, "POST", f"{BASE}/Users", raw=variant)
    assert_error(reply, 409, "uniqueness")
    body = await get(scim, f"{BASE}/Users")
    assert body["totalResults"] == 1


# E30 --------------------------------------------------------------------------------------------


async def test_e30_add_work_email_when_user_has_none(scim: Client) -> None:
    created = await create_user(scim, minimal_user(
        "add.attrs@contoso.com", emails=[{"type": "home", "value": "home@example.org"}]
    ))
    user = await patch_user(scim, created["id"], patch_body(
        {"op": "add", "path": 'emails[type eq "work"].value', "value": "add.attrs.work@contoso.com"}
    ))
    assert work_email(user) == "add.attrs.work@contoso.com"
    assert [e["value"] for e in typed(user, "emails", "home")] == ["home@example.org"]


async def test_e30_verbose_replace_36_ops(scim: Client) -> None:
    manager = await create_user(scim, minimal_user("verbose.manager@contoso.com"))
    created = await create_user(scim, VALIDATOR_USER)
    body, new = verbose_replace(manager["id"])
    user = await patch_user(scim, created["id"], body)
    assert_verbose_applied(user, manager["id"])
    found = await find_one(scim, "Users", f'userName eq "{new["userName"]}"')
    assert_verbose_applied(found, manager["id"])
    assert_list_response(await get(scim, f"{BASE}/Users"))


async def test_non_address_user_name_is_refused_clearly(scim: Client, entra_backend: BackendUnderTest) -> None:
    """E2 verbatim: where mailboxes are mail addresses, a userName that is not one is refused with a detail
    the admin can act on (map userName to the UPN or mail attribute), and nothing is created."""
    if not entra_backend.addresses_only:
        await create_user(scim, E2_CREATE)
        return
    reply = await call(scim, "POST", f"{BASE}/Users", raw=E2_CREATE, expect=400)
    assert reply.json["scimType"] == "invalidValue"
    assert E2_USER_NAME in reply.json["detail"] and "mail address" in reply.json["detail"]
    assert (await search(scim, "Users", f'userName eq "{E2_USER_NAME}"'))["totalResults"] == 0
