"""Discovery endpoints E22–E23: what the gallery validator's Schema_Discoverability_Test reads."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BASE
from tests.entra.helpers import (
    ENTERPRISE,
    GROUP_URN,
    LIST_URN,
    RESOURCE_TYPE_URN,
    SCHEMA_URN,
    SPC_URN,
    USER_URN,
    Client,
    assert_error,
    assert_no_nulls,
    call,
    get,
)

# Every target attribute of Entra's default user mapping (reference §6.1), as schema attribute
# name -> the sub-attributes the mapping writes.
MAPPED_USER_ATTRIBUTES: dict[str, set[str]] = {
    "userName": set(),
    "active": set(),
    "displayName": set(),
    "title": set(),
    "preferredLanguage": set(),
    "emails": {"value", "type"},
    "name": {"givenName", "familyName", "formatted"},
    "addresses": {"formatted", "streetAddress", "locality", "region", "postalCode", "country", "type"},
    "phoneNumbers": {"value", "type"},
}
MAPPED_ENTERPRISE_ATTRIBUTES = {"employeeNumber", "department", "manager"}


def _attrs(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"].lower(): a for a in schema["attributes"]}


async def test_e22_schemas_list_response(scim: Client) -> None:
    body = await get(scim, f"{BASE}/Schemas")
    assert body["schemas"] == [LIST_URN]
    ids = {r["id"] for r in body["Resources"]}
    assert {USER_URN, GROUP_URN, ENTERPRISE} <= ids
    assert body["totalResults"] == len(body["Resources"])
    for resource in body["Resources"]:
        assert resource["schemas"] == [SCHEMA_URN]
        assert resource["name"]
        assert isinstance(resource["attributes"], list) and resource["attributes"]
    assert_no_nulls(body)


async def test_e22_user_schema_lists_every_mapped_attribute(scim: Client) -> None:
    body = await get(scim, f"{BASE}/Schemas")
    by_id = {r["id"]: r for r in body["Resources"]}
    user = _attrs(by_id[USER_URN])
    for name, subs in MAPPED_USER_ATTRIBUTES.items():
        assert name.lower() in user, f"{name} missing from the User schema"
        listed = {s["name"].lower() for s in user[name.lower()].get("subAttributes", [])}
        assert {s.lower() for s in subs} <= listed, f"{name} lacks {subs - listed}"
    assert user["active"]["type"] == "boolean"
    assert user["emails"]["multiValued"] is True
    assert user["username"]["required"] is True
    assert user["username"]["uniqueness"] == "server"
    assert user["username"]["mutability"] == "readWrite"
    enterprise = _attrs(by_id[ENTERPRISE])
    for name in MAPPED_ENTERPRISE_ATTRIBUTES:
        assert name.lower() in enterprise, f"{name} missing from the enterprise schema"
    assert enterprise["manager"]["type"] == "complex"
    manager_subs = {s["name"] for s in enterprise["manager"]["subAttributes"]}
    assert "value" in manager_subs
    group = _attrs(by_id[GROUP_URN])
    assert {"displayname", "members"} <= set(group)


@pytest.mark.parametrize("urn", [USER_URN, GROUP_URN, ENTERPRISE])
async def test_e22_schema_by_urn(scim: Client, urn: str) -> None:
    body = await get(scim, f"{BASE}/Schemas/{urn}")
    assert body["id"] == urn
    assert body["schemas"] == [SCHEMA_URN]
    assert_no_nulls(body)


async def test_e22_unknown_schema_urn_is_404(scim: Client) -> None:
    reply = await call(scim, "GET", f"{BASE}/Schemas/urn:ietf:params:scim:schemas:core:2.0:Printer")
    assert_error(reply, 404)


async def test_e23_resource_types(scim: Client) -> None:
    body = await get(scim, f"{BASE}/ResourceTypes")
    assert body["schemas"] == [LIST_URN]
    by_id = {r["id"]: r for r in body["Resources"]}
    assert {"User", "Group"} <= set(by_id)
    assert body["totalResults"] == len(body["Resources"])
    user = by_id["User"]
    assert user["schemas"] == [RESOURCE_TYPE_URN]
    assert user["endpoint"] == "/Users"
    assert user["schema"] == USER_URN
    assert [e["schema"] for e in user["schemaExtensions"]] == [ENTERPRISE]
    assert by_id["Group"]["endpoint"] == "/Groups"
    assert by_id["Group"]["schema"] == GROUP_URN
    assert_no_nulls(body)


async def test_e23_resource_type_user(scim: Client) -> None:
    body = await get(scim, f"{BASE}/ResourceTypes/User")
    assert body["id"] == "User"
    assert body["name"] == "User"
    assert body["endpoint"] == "/Users"
    assert body["schema"] == USER_URN


async def test_e23_resource_type_group(scim: Client) -> None:
    body = await get(scim, f"{BASE}/ResourceTypes/Group")
    assert body["id"] == "Group"
    assert body["schema"] == GROUP_URN


async def test_e23_service_provider_config(scim: Client) -> None:
    body = await get(scim, f"{BASE}/ServiceProviderConfig")
    assert body["schemas"] == [SPC_URN]
    assert body["patch"]["supported"] is True
    assert body["filter"]["supported"] is True
    assert isinstance(body["filter"]["maxResults"], int) and body["filter"]["maxResults"] > 0
    # The suite relies on ETags and sorting, so the document must advertise them.
    assert body["etag"]["supported"] is True
    assert body["sort"]["supported"] is True
    assert isinstance(body["bulk"]["supported"], bool)
    assert isinstance(body["changePassword"]["supported"], bool)
    schemes = body["authenticationSchemes"]
    assert "oauthbearertoken" in [s["type"] for s in schemes]
    assert_no_nulls(body)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/Schemas", "/ResourceTypes", "/ServiceProviderConfig"])
async def test_e23_discovery_endpoints_are_read_only(scim: Client, method: str, path: str) -> None:
    reply = await call(scim, method, f"{BASE}{path}", {"schemas": [USER_URN]})
    assert_error(reply, 405)
    allowed = {m.strip() for m in reply.headers.get("Allow", "").split(",")}
    assert "GET" in allowed, f"405 without an Allow header listing GET: {reply.headers.get('Allow')!r}"
    assert method not in allowed


@pytest.mark.parametrize("path", ["/Printers", "/Users/abc/def", "/Bulkish", "/Me/Now"])
async def test_e23_unknown_path_is_scim_404(scim: Client, path: str) -> None:
    assert_error(await call(scim, "GET", f"{BASE}{path}"), 404)
