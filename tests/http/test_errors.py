"""HTTP-level behaviour: authentication, request validation, limits, ETags, PUT, .search, uniqueness.

Every error is checked against the shape Entra logs for an admin: the SCIM Error schema, the status
as a string, the scimType from the design's error table and a detail that says what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import BASE, TOKEN
from tests.entra.helpers import (
    ENTERPRISE,
    LIST_URN,
    SEARCH_URN,
    USER_URN,
    Client,
    assert_error,
    call,
    create_group,
    create_user,
    filter_path,
    find_one,
    get,
    get_group,
    get_user,
    member_ids,
    minimal_group,
    minimal_user,
    patch_body,
    patch_group,
)

MISSING_ID = "3f9c2a71-0d4e-4b8a-9e61-5c7d8f0a1b2e"

# Routes that must refuse a caller without a valid token. The ids do not exist: authentication
# has to be decided before the resource is looked up, or a 404 would leak which ids exist.
PROTECTED = [
    ("GET", "/Users", None),
    ("GET", f"/Users?filter=userName+eq+%22{MISSING_ID}%22", None),
    ("POST", "/Users", minimal_user("intruder@contoso.com")),
    ("GET", "/Groups", None),
    ("GET", "/Schemas", None),
    ("PATCH", f"/Users/{MISSING_ID}", patch_body({"op": "Replace", "path": "active", "value": "False"})),
    ("PUT", f"/Users/{MISSING_ID}", minimal_user("intruder@contoso.com")),
    ("DELETE", f"/Groups/{MISSING_ID}", None),
    ("DELETE", f"/Users/{MISSING_ID}", None),
    ("POST", "/Users/.search", {"schemas": [SEARCH_URN], "filter": 'userName eq "x"'}),
]

BAD_CREDENTIALS = {
    "missing": {},
    "wrong-token": {"Authorization": "Bearer not-the-token"},
    "empty-bearer": {"Authorization": "Bearer "},
    "basic-scheme": {"Authorization": "Basic dGVzdDp0ZXN0LXRva2VuLTAxMjM0NTY3ODk="},
    "right-token-wrong-scheme": {"Authorization": f"Token {TOKEN}"},
    "token-without-scheme": {"Authorization": TOKEN},
    "token-with-suffix": {"Authorization": f"Bearer {TOKEN}x"},
    "token-prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
}


async def _user(scim: Client, name: str = "ada.lovelace@contoso.com", **attrs: Any) -> dict[str, Any]:
    return await create_user(scim, minimal_user(name, **attrs))


# Authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[f"{m} {p.split('?')[0]}" for m, p, _ in PROTECTED])
async def test_unauthenticated_requests_get_401(
    anon: Client, credentials: dict[str, str], method: str, path: str, body: Any
) -> None:
    reply = await call(anon, method, f"{BASE}{path}", body, headers=credentials)
    assert_error(reply, 401)
    challenge = reply.headers.get("WWW-Authenticate", "")
    assert challenge.split(" ")[0] == "Bearer", f"WWW-Authenticate is {challenge!r}"


async def test_unauthenticated_create_has_no_effect(anon: Client) -> None:
    reply = await call(anon, "POST", f"{BASE}/Users", minimal_user("intruder@contoso.com"),
                       headers={"Authorization": "Bearer nope"})
    assert_error(reply, 401)
    ok = await call(anon, "GET", f"{BASE}/Users?filter=userName+eq+%22intruder%40contoso.com%22",
                    headers={"Authorization": f"Bearer {TOKEN}"}, expect=200)
    assert ok.json["totalResults"] == 0


async def test_bearer_scheme_is_case_insensitive(anon: Client) -> None:
    # RFC 7235 makes the auth-scheme token case-insensitive; some HTTP stacks send "bearer".
    reply = await call(anon, "GET", f"{BASE}/Users", headers={"Authorization": f"bearer {TOKEN}"}, expect=200)
    assert reply.json["schemas"] == [LIST_URN]


async def test_healthz_needs_no_auth(anon: Client) -> None:
    reply = await call(anon, "GET", "/healthz", expect=200)
    assert reply.status == 200


# Malformed bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"userName": "a@b.c",', "{not json", '{"userName": "a@b.c"}}', "\x00\x01", "'"])
async def test_malformed_json_on_create_is_invalid_syntax(scim: Client, raw: str) -> None:
    assert_error(await call(scim, "POST", f"{BASE}/Users", raw=raw), 400, "invalidSyntax")
    assert_error(await call(scim, "POST", f"{BASE}/Groups", raw=raw), 400, "invalidSyntax")


async def test_malformed_json_on_patch_and_put_is_invalid_syntax(scim: Client) -> None:
    user = await _user(scim)
    path = f"{BASE}/Users/{user['id']}"
    assert_error(await call(scim, "PATCH", path, raw='{"Operations": ['), 400, "invalidSyntax")
    assert_error(await call(scim, "PUT", path, raw='{"userName": '), 400, "invalidSyntax")
    assert (await get_user(scim, user["id"]))["userName"] == "ada.lovelace@contoso.com"


async def test_empty_body_on_create_is_400(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", raw="")
    err = assert_error(reply, 400)
    assert err.get("scimType") in ("invalidSyntax", "invalidValue"), err


@pytest.mark.parametrize("raw", ["[]", '"a@b.c"', "42", "null", "true", '[{"userName": "a@b.c"}]'])
async def test_body_that_is_not_an_object_is_400(scim: Client, raw: str) -> None:
    for path in (f"{BASE}/Users", f"{BASE}/Groups"):
        err = assert_error(await call(scim, "POST", path, raw=raw), 400)
        assert err.get("scimType") in ("invalidSyntax", "invalidValue"), err
    user = await _user(scim)
    err = assert_error(await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", raw=raw), 400)
    assert err.get("scimType") in ("invalidSyntax", "invalidValue"), err


@pytest.mark.parametrize("body", [
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]},
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []},
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": {"op": "replace"}},
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ["replace"]},
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"path": "title", "value": "x"}]},
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
     "Operations": [{"op": "frobnicate", "path": "title", "value": "x"}]},
])
async def test_malformed_patch_request_is_400(scim: Client, body: dict[str, Any]) -> None:
    user = await _user(scim, title="Countess")
    err = assert_error(await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", body), 400)
    assert err.get("scimType") in ("invalidSyntax", "invalidValue"), err
    assert (await get_user(scim, user["id"]))["title"] == "Countess"


# Wrong types ------------------------------------------------------------------------------------


@pytest.mark.parametrize("attrs", [
    {"userName": 5},
    {"userName": None},
    {"userName": ""},
    {"userName": ["a@b.c"]},
    {"userName": "a@b.c", "active": "maybe"},
    {"userName": "a@b.c", "active": 2},
    {"userName": "a@b.c", "emails": "a@b.c"},
    {"userName": "a@b.c", "emails": [{"value": 7}]},
    {"userName": "a@b.c", "name": "Ada Lovelace"},
    {"userName": "a@b.c", "displayName": {"text": "Ada"}},
    {"userName": "a@b.c", ENTERPRISE: "Finance"},
], ids=lambda a: json.dumps(a)[:60])
async def test_wrong_types_on_create_are_invalid_value(scim: Client, attrs: dict[str, Any]) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", {"schemas": [USER_URN], **attrs})
    assert_error(reply, 400, "invalidValue")
    assert (await get(scim, f"{BASE}/Users"))["totalResults"] == 0


async def test_missing_username_on_create_is_invalid_value(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", {"schemas": [USER_URN], "displayName": "No Name"})
    assert_error(reply, 400, "invalidValue")


async def test_missing_group_display_name_is_invalid_value(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]})
    assert_error(reply, 400, "invalidValue")


@pytest.mark.parametrize("op", [
    {"op": "Replace", "path": "userName", "value": 5},
    {"op": "Replace", "path": "userName", "value": ""},
    {"op": "Replace", "path": "active", "value": "maybe"},
    {"op": "Replace", "path": "emails", "value": "x@contoso.com"},
    {"op": "Replace", "value": {"active": "perhaps"}},
])
async def test_wrong_types_on_patch_are_invalid_value(scim: Client, op: dict[str, Any]) -> None:
    user = await _user(scim)
    reply = await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", patch_body(op))
    assert_error(reply, 400, "invalidValue")
    after = await get_user(scim, user["id"])
    assert after["userName"] == "ada.lovelace@contoso.com"
    assert after["active"] is True


# Size and nesting limits ------------------------------------------------------------------------


DEEP = 10_000


@pytest.mark.parametrize("raw", [
    "[" * DEEP + "]" * DEEP,
    '{"userName": "deep@contoso.com", "displayName": ' + "[" * DEEP + "]" * DEEP + "}",
    '{"userName": "deep@contoso.com", "name": ' + '{"a":' * DEEP + "1" + "}" * DEEP + "}",
], ids=["arrays", "arrays-in-attribute", "objects-in-attribute"])
async def test_deep_nesting_is_a_client_error(scim: Client, raw: str) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", raw=raw)
    assert 400 <= reply.status < 500, f"deep nesting gave {reply.status}: {reply.text[:300]}"
    assert_error(reply, reply.status)


async def test_deep_nesting_in_patch_is_a_client_error(scim: Client) -> None:
    user = await _user(scim)
    raw = (
        '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"title",'
        '"value":' + "[" * DEEP + "]" * DEEP + "}]}"
    )
    reply = await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", raw=raw)
    assert 400 <= reply.status < 500, f"deep nesting gave {reply.status}: {reply.text[:300]}"
    assert_error(reply, reply.status)


def _huge_user() -> str:
    return json.dumps(minimal_user("huge@contoso.com", displayName="x" * (1024 * 1024 + 512)))


async def test_body_over_one_mebibyte_is_413(scim: Client) -> None:
    assert_error(await call(scim, "POST", f"{BASE}/Users", raw=_huge_user()), 413)
    assert (await get(scim, f"{BASE}/Users"))["totalResults"] == 0


async def test_chunked_body_over_one_mebibyte_is_413(scim: Client) -> None:
    payload = _huge_user().encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 64 * 1024):
            yield payload[i:i + 64 * 1024]

    async with scim.post(f"{BASE}/Users", data=chunks(), headers={"Content-Type": "application/scim+json"}) as resp:
        assert resp.status == 413
        assert resp.content_type == "application/scim+json"
        body = await resp.json(content_type=None)
    assert body["status"] == "413"
    assert (await get(scim, f"{BASE}/Users"))["totalResults"] == 0


# Filters ----------------------------------------------------------------------------------------


BAD_FILTERS = [
    "userName eq",
    "((",
    'userName xx "a"',
    'userName eq "unterminated',
    'emails[type eq "work"',
    "and",
    'userName eq "a" and',
    'userName eq "a" )',
    'eq "a"',
    'userName eq "a" or or userName eq "b"',
]


@pytest.mark.parametrize("expr", BAD_FILTERS)
@pytest.mark.parametrize("resource", ["Users", "Groups"])
async def test_bad_filter_is_invalid_filter(scim: Client, resource: str, expr: str) -> None:
    assert_error(await call(scim, "GET", filter_path(resource, expr)), 400, "invalidFilter")


async def test_bad_filter_in_search_request_is_invalid_filter(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users/.search", {"schemas": [SEARCH_URN], "filter": "userName xx"})
    assert_error(reply, 400, "invalidFilter")


# PATCH paths ------------------------------------------------------------------------------------


BAD_PATHS = [
    'emails[type eq "work"',
    'emails[type eq "work"]]',
    "name..givenName",
    '[value eq "x"]',
    'emails[type zz "work"].value',
    "emails[].value",
    ".name",
    "name.",
    'emails[type eq "work"].value.extra',
]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("op", ["Replace", "Add", "Remove"])
async def test_bad_patch_path_is_invalid_path(scim: Client, path: str, op: str) -> None:
    user = await _user(scim, emails=[{"type": "work", "value": "ada.lovelace@contoso.com"}])
    reply = await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", patch_body(
        {"op": op, "path": path, "value": "x"}
    ))
    assert_error(reply, 400, "invalidPath")
    assert (await get_user(scim, user["id"]))["emails"] == [{"type": "work", "value": "ada.lovelace@contoso.com"}]


@pytest.mark.parametrize("path", ['members[value eq "x"', "members[value zz \"x\"]", "members..value"])
async def test_bad_group_patch_path_is_invalid_path(scim: Client, path: str) -> None:
    group = await create_group(scim, minimal_group("Analysts"))
    reply = await call(scim, "PATCH", f"{BASE}/Groups/{group['id']}", patch_body({"op": "remove", "path": path}))
    assert_error(reply, 400, "invalidPath")


async def test_remove_without_path_is_no_target(scim: Client) -> None:
    user = await _user(scim, title="Countess")
    reply = await call(scim, "PATCH", f"{BASE}/Users/{user['id']}", patch_body({"op": "Remove"}))
    assert_error(reply, 400, "noTarget")
    assert (await get_user(scim, user["id"]))["title"] == "Countess"


# Unknown ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["Users", "Groups"])
async def test_unknown_id_is_404_on_every_method(scim: Client, resource: str) -> None:
    await _user(scim)
    await create_group(scim, minimal_group("Analysts"))
    path = f"{BASE}/{resource}/{MISSING_ID}"
    body = minimal_user("ghost@contoso.com") if resource == "Users" else minimal_group("Ghosts")
    assert_error(await call(scim, "GET", path), 404)
    rename = patch_body({"op": "Replace", "path": "displayName", "value": "x"})
    assert_error(await call(scim, "PATCH", path, rename), 404)
    assert_error(await call(scim, "PUT", path, body), 404)
    assert_error(await call(scim, "DELETE", path), 404)
    assert (await get(scim, f"{BASE}/{resource}"))["totalResults"] == 1


# ETags ------------------------------------------------------------------------------------------


async def _etag(scim: Client, path: str) -> str:
    reply = await call(scim, "GET", path, expect=200)
    etag = reply.headers.get("ETag")
    assert etag, f"no ETag on GET {path}"
    version = reply.json["meta"].get("version")
    if version is not None:
        assert version == etag, f"meta.version {version!r} differs from ETag {etag!r}"
    return etag


async def test_etag_on_post_get_and_patch(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", minimal_user("etag@contoso.com"), expect=201)
    uid = reply.json["id"]
    assert reply.headers.get("ETag"), "no ETag on POST"
    path = f"{BASE}/Users/{uid}"
    first = await _etag(scim, path)
    assert first == reply.headers["ETag"]
    patched = await call(scim, "PATCH", path, patch_body({"op": "Replace", "path": "title", "value": "Dr"}),
                         expect=200)
    assert patched.headers.get("ETag"), "no ETag on PATCH"
    second = await _etag(scim, path)
    assert second == patched.headers["ETag"]
    assert second != first


async def test_group_etag_changes_on_member_patch(scim: Client) -> None:
    member = await _user(scim)
    group = await create_group(scim, minimal_group("Analysts"))
    path = f"{BASE}/Groups/{group['id']}"
    before = await _etag(scim, path)
    add = patch_body({"op": "Add", "path": "members", "value": [{"value": member["id"]}]})
    reply = await call(scim, "PATCH", path, add, expect=200)
    assert reply.headers.get("ETag"), "no ETag on group PATCH"
    assert await _etag(scim, path) != before


async def test_if_match_wrong_etag_is_412(scim: Client) -> None:
    user = await _user(scim, title="Countess")
    path = f"{BASE}/Users/{user['id']}"
    wrong = {"If-Match": 'W/"definitely-not-the-version"'}
    assert_error(await call(scim, "PATCH", path, patch_body({"op": "Replace", "path": "title", "value": "x"}),
                            headers=wrong), 412)
    assert_error(await call(scim, "PUT", path, minimal_user("ada.lovelace@contoso.com", title="x"), headers=wrong), 412)
    assert_error(await call(scim, "DELETE", path, headers=wrong), 412)
    assert (await get_user(scim, user["id"]))["title"] == "Countess"


async def test_if_match_stale_etag_is_412(scim: Client) -> None:
    user = await _user(scim, title="Countess")
    path = f"{BASE}/Users/{user['id']}"
    stale = await _etag(scim, path)
    await call(scim, "PATCH", path, patch_body({"op": "Replace", "path": "title", "value": "Dr"}), expect=200)
    reply = await call(scim, "PATCH", path, patch_body({"op": "Replace", "path": "title", "value": "Prof"}),
                       headers={"If-Match": stale})
    assert_error(reply, 412)
    assert (await get_user(scim, user["id"]))["title"] == "Dr"


async def test_if_match_current_etag_succeeds(scim: Client) -> None:
    user = await _user(scim, title="Countess")
    path = f"{BASE}/Users/{user['id']}"
    etag = await _etag(scim, path)
    await call(scim, "PATCH", path, patch_body({"op": "Replace", "path": "title", "value": "Dr"}),
               headers={"If-Match": etag}, expect=200)
    assert (await get_user(scim, user["id"]))["title"] == "Dr"
    etag = await _etag(scim, path)
    await call(scim, "PUT", path, minimal_user("ada.lovelace@contoso.com", title="Prof"), headers={"If-Match": etag},
               expect=200)
    etag = await _etag(scim, path)
    await call(scim, "DELETE", path, headers={"If-Match": etag}, expect=204)
    assert_error(await call(scim, "GET", path), 404)


async def test_if_match_star_succeeds(scim: Client) -> None:
    user = await _user(scim, title="Countess")
    path = f"{BASE}/Users/{user['id']}"
    await call(scim, "PATCH", path, patch_body({"op": "Replace", "path": "title", "value": "Dr"}),
               headers={"If-Match": "*"}, expect=200)
    assert (await get_user(scim, user["id"]))["title"] == "Dr"


async def test_if_none_match_current_etag_is_304(scim: Client) -> None:
    user = await _user(scim)
    path = f"{BASE}/Users/{user['id']}"
    etag = await _etag(scim, path)
    reply = await call(scim, "GET", path, headers={"If-None-Match": etag})
    assert reply.status == 304
    assert reply.text == ""
    await call(scim, "PATCH", path, patch_body({"op": "Replace", "path": "title", "value": "Dr"}), expect=200)
    fresh = await call(scim, "GET", path, headers={"If-None-Match": etag}, expect=200)
    assert fresh.json["title"] == "Dr"


# PUT --------------------------------------------------------------------------------------------


async def test_put_replaces_the_resource(scim: Client) -> None:
    user = await _user(scim, displayName="Ada", title="Countess", externalId="ada")
    path = f"{BASE}/Users/{user['id']}"
    reply = await call(scim, "PUT", path, {
        "schemas": [USER_URN, ENTERPRISE],
        "userName": "ada.king@contoso.com",
        "externalId": "ada",
        "active": False,
        "emails": [{"type": "work", "value": "ada.king@contoso.com", "primary": True}],
        ENTERPRISE: {"department": "Analytical Engines"},
    }, expect=200)
    assert reply.json["id"] == user["id"]
    after = await get_user(scim, user["id"])
    assert after["userName"] == "ada.king@contoso.com"
    assert after["active"] is False
    assert after[ENTERPRISE]["department"] == "Analytical Engines"
    # PUT replaces: readWrite attributes left out of the body are cleared (RFC 7644 §3.5.1).
    assert "displayName" not in after
    assert "title" not in after
    assert after["meta"]["created"] == user["meta"]["created"]


async def test_put_requires_username(scim: Client) -> None:
    user = await _user(scim)
    reply = await call(scim, "PUT", f"{BASE}/Users/{user['id']}", {"schemas": [USER_URN], "displayName": "x"})
    assert_error(reply, 400, "invalidValue")
    assert (await get_user(scim, user["id"]))["userName"] == "ada.lovelace@contoso.com"


async def test_put_group_replaces_members(scim: Client) -> None:
    a = await _user(scim)
    b = await _user(scim, "grace.hopper@contoso.com")
    group = await create_group(scim, minimal_group("Analysts", members=[{"value": a["id"]}]))
    await call(scim, "PUT", f"{BASE}/Groups/{group['id']}",
               minimal_group("Analysts", members=[{"value": b["id"]}]), expect=200)
    assert member_ids(await get_group(scim, group["id"])) == [b["id"]]


# .search ----------------------------------------------------------------------------------------


async def test_post_search_users(scim: Client) -> None:
    ada = await _user(scim, emails=[{"type": "work", "value": "ada.lovelace@contoso.com"}])
    await _user(scim, "grace.hopper@contoso.com")
    reply = await call(scim, "POST", f"{BASE}/Users/.search", {
        "schemas": [SEARCH_URN],
        "filter": 'userName eq "ADA.LOVELACE@contoso.com"',
        "attributes": ["userName"],
        "startIndex": 1,
        "count": 10,
    }, expect=200)
    body = reply.json
    assert body["schemas"] == [LIST_URN]
    assert body["totalResults"] == 1
    [found] = body["Resources"]
    assert found["id"] == ada["id"]
    assert found["userName"] == "ada.lovelace@contoso.com"
    assert "emails" not in found


async def test_post_search_groups_excluding_members(scim: Client) -> None:
    a = await _user(scim)
    group = await create_group(scim, minimal_group("Analysts", members=[{"value": a["id"]}]))
    reply = await call(scim, "POST", f"{BASE}/Groups/.search", {
        "schemas": [SEARCH_URN],
        "filter": 'displayName eq "analysts"',
        "excludedAttributes": ["members"],
    }, expect=200)
    [found] = reply.json["Resources"]
    assert found["id"] == group["id"]
    assert "members" not in found


async def test_post_search_paginates(scim: Client) -> None:
    for i in range(4):
        await _user(scim, f"searcher{i}@contoso.com")
    reply = await call(scim, "POST", f"{BASE}/Users/.search",
                       {"schemas": [SEARCH_URN], "startIndex": 3, "count": 5}, expect=200)
    assert reply.json["totalResults"] == 4
    assert reply.json["startIndex"] == 3
    assert len(reply.json["Resources"]) == 2


# Referential integrity and uniqueness -----------------------------------------------------------


async def test_deleted_user_disappears_from_every_group(scim: Client) -> None:
    ada = await _user(scim)
    grace = await _user(scim, "grace.hopper@contoso.com")
    first = await create_group(scim, minimal_group("Analysts"))
    second = await create_group(scim, minimal_group("Engineers"))
    for group in (first, second):
        await patch_group(scim, group["id"], patch_body(
            {"op": "Add", "path": "members", "value": [{"value": ada["id"]}, {"value": grace["id"]}]}
        ))
    await call(scim, "DELETE", f"{BASE}/Users/{ada['id']}", expect=204)
    for group in (first, second):
        assert member_ids(await get_group(scim, group["id"])) == [grace["id"]]


@pytest.mark.parametrize("taken", ["grace.hopper@contoso.com", "GRACE.HOPPER@contoso.com", "Grace.Hopper@Contoso.COM"])
async def test_rename_to_existing_username_is_409(scim: Client, taken: str) -> None:
    ada = await _user(scim)
    grace = await _user(scim, "grace.hopper@contoso.com")
    reply = await call(scim, "PATCH", f"{BASE}/Users/{ada['id']}", patch_body(
        {"op": "Replace", "path": "userName", "value": taken}
    ))
    assert_error(reply, 409, "uniqueness")
    reply = await call(scim, "PUT", f"{BASE}/Users/{ada['id']}", minimal_user(taken))
    assert_error(reply, 409, "uniqueness")
    assert (await get_user(scim, ada["id"]))["userName"] == "ada.lovelace@contoso.com"
    assert (await get_user(scim, grace["id"]))["userName"] == "grace.hopper@contoso.com"


async def test_rename_changing_only_case_is_allowed(scim: Client) -> None:
    ada = await _user(scim)
    await call(scim, "PATCH", f"{BASE}/Users/{ada['id']}", patch_body(
        {"op": "Replace", "path": "userName", "value": "Ada.Lovelace@contoso.com"}
    ), expect=200)
    assert (await get_user(scim, ada["id"]))["userName"] == "Ada.Lovelace@contoso.com"
    assert (await find_one(scim, "Users", 'userName eq "ada.lovelace@contoso.com"'))["id"] == ada["id"]


async def test_rename_to_own_current_name_is_not_a_conflict(scim: Client) -> None:
    ada = await _user(scim)
    await call(scim, "PATCH", f"{BASE}/Users/{ada['id']}", patch_body(
        {"op": "Replace", "path": "userName", "value": "ada.lovelace@contoso.com"}
    ), expect=200)
    await call(scim, "PUT", f"{BASE}/Users/{ada['id']}", minimal_user("ada.lovelace@contoso.com"), expect=200)


async def test_noop_patch_keeps_the_version(scim: Client) -> None:
    # Entra re-sends unchanged values after a restart; a no-op must not look like a change.
    ada = await _user(scim, title="Countess")
    path = f"{BASE}/Users/{ada['id']}"
    before = await _etag(scim, path)
    await call(scim, "PATCH", path, patch_body(
        {"op": "Replace", "path": "title", "value": "Countess"},
        {"op": "Replace", "path": "active", "value": "True"},
    ), expect=200)
    assert await _etag(scim, path) == before
    assert (await get_user(scim, ada["id"]))["meta"]["lastModified"] == ada["meta"]["lastModified"]


async def test_unknown_member_id_is_never_stored(scim: Client) -> None:
    # The unknown id is skipped (Entra's flow depends on the others being added); it is never kept,
    # since the backend list cannot hold it.
    ada = await _user(scim)
    group = await create_group(scim, minimal_group("Analysts"))
    reply = await call(scim, "PATCH", f"{BASE}/Groups/{group['id']}", patch_body(
        {"op": "Add", "path": "members", "value": [{"value": MISSING_ID}, {"value": ada["id"]}]}
    ), expect=200)
    assert member_ids(reply.json) == [ada["id"]]
    assert member_ids(await get_group(scim, group["id"])) == [ada["id"]]


async def test_group_rename_to_existing_display_name_is_409(scim: Client) -> None:
    await create_group(scim, minimal_group("Analysts"))
    other = await create_group(scim, minimal_group("Engineers"))
    reply = await call(scim, "PATCH", f"{BASE}/Groups/{other['id']}", patch_body(
        {"op": "Replace", "path": "displayName", "value": "ANALYSTS"}
    ))
    assert_error(reply, 409, "uniqueness")
    assert (await get_group(scim, other["id"]))["displayName"] == "Engineers"


async def test_deleted_username_can_be_reused(scim: Client) -> None:
    ada = await _user(scim)
    await call(scim, "DELETE", f"{BASE}/Users/{ada['id']}", expect=204)
    again = await _user(scim)
    assert again["id"] != ada["id"]


# Media types ------------------------------------------------------------------------------------


async def test_plain_json_request_is_accepted(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", raw=json.dumps(minimal_user("plain@contoso.com")),
                       headers={"Content-Type": "application/json"}, expect=201)
    assert reply.json["userName"] == "plain@contoso.com"


async def test_validator_content_type_with_charset_is_accepted(scim: Client) -> None:
    reply = await call(scim, "POST", f"{BASE}/Users", raw=json.dumps(minimal_user("charset@contoso.com")),
                       headers={"Content-Type": "application/scim+json; charset=utf-8"}, expect=201)
    assert reply.json["userName"] == "charset@contoso.com"
