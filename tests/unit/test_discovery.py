"""Discovery documents: strict scim2-models validation and the attributes Entra relies on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from scim2_models import (
    Context,
    ListResponse,
    ResourceType,
    Schema,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
)

from gateway.scim import discovery
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA

BASE = "http://127.0.0.1:8080/scim/v2"

# The default policy already forbids unknown attributes; it is spelled out so the test
# keeps meaning "strict" even if a future scim2-models release relaxes its default.
STRICT = ScimPolicy(unknown=ScimPolicy.Unknown.forbid)
RESPONSE = Context.RESOURCE_QUERY_RESPONSE

# (type, multiValued) of every attribute of RFC 7643 §4.1 and §4.3.
USER_ATTRIBUTES: dict[str, tuple[str, bool]] = {
    "userName": ("string", False),
    "name": ("complex", False),
    "displayName": ("string", False),
    "nickName": ("string", False),
    "profileUrl": ("reference", False),
    "title": ("string", False),
    "userType": ("string", False),
    "preferredLanguage": ("string", False),
    "locale": ("string", False),
    "timezone": ("string", False),
    "active": ("boolean", False),
    "password": ("string", False),
    "emails": ("complex", True),
    "phoneNumbers": ("complex", True),
    "ims": ("complex", True),
    "photos": ("complex", True),
    "addresses": ("complex", True),
    "groups": ("complex", True),
    "entitlements": ("complex", True),
    "roles": ("complex", True),
    "x509Certificates": ("complex", True),
}
USER_SUB_ATTRIBUTES: dict[str, set[str]] = {
    "name": {"formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"},
    "emails": {"value", "display", "type", "primary"},
    "phoneNumbers": {"value", "display", "type", "primary"},
    "ims": {"value", "display", "type", "primary"},
    "photos": {"value", "display", "type", "primary"},
    "addresses": {
        "formatted", "streetAddress", "locality", "region", "postalCode", "country", "type", "primary",
    },
    "groups": {"value", "$ref", "display", "type"},
    "entitlements": {"value", "display", "type", "primary"},
    "roles": {"value", "display", "type", "primary"},
    "x509Certificates": {"value", "display", "type", "primary"},
}
ENTERPRISE_ATTRIBUTES: dict[str, tuple[str, bool]] = {
    "employeeNumber": ("string", False),
    "costCenter": ("string", False),
    "organization": ("string", False),
    "division": ("string", False),
    "department": ("string", False),
    "manager": ("complex", False),
}

CAMEL_KEY = re.compile(r"^[a-z][A-Za-z0-9]*$")


def _all_schemas() -> list[dict[str, Any]]:
    return discovery.schemas(BASE)


def _schema(urn: str) -> dict[str, Any]:
    doc = discovery.schema(BASE, urn)
    assert doc is not None, urn
    return doc


def _attrs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in doc["attributes"]}


def _subs(attr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in attr["subAttributes"]}


def _walk_attributes(attrs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for attr in attrs:
        yield attr
        yield from _walk_attributes(attr.get("subAttributes", []))


def _walk_values(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_values(item, f"{path}[{index}]")


def _spc(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_results": 200, "max_operations": 1000, "max_payload_size": 1_048_576}
    kwargs.update(overrides)
    return discovery.service_provider_config(BASE, **kwargs)


def _every_document() -> list[dict[str, Any]]:
    return [
        *_all_schemas(),
        *discovery.resource_types(BASE),
        _spc(),
        _spc(etag=False, documentation_uri="https://example.com/docs"),
        discovery.list_response(_all_schemas()),
        discovery.list_response(discovery.resource_types(BASE)),
        discovery.list_response([]),
    ]


# --- strict validation -------------------------------------------------------------------------


@pytest.mark.parametrize("urn", [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA])
def test_schema_documents_validate_strictly_and_round_trip(urn: str) -> None:
    doc = _schema(urn)
    model = Schema.model_validate(doc, scim_ctx=RESPONSE, scim_policy=STRICT)
    # A lossless round trip proves no key was silently ignored or coerced.
    assert model.model_dump(scim_ctx=RESPONSE) == doc


@pytest.mark.parametrize("name", ["User", "Group"])
def test_resource_type_documents_validate_strictly_and_round_trip(name: str) -> None:
    doc = discovery.resource_type(BASE, name)
    assert doc is not None
    model = ResourceType.model_validate(doc, scim_ctx=RESPONSE, scim_policy=STRICT)
    # scim2-models drops empty lists on dump; the gateway sends Group's empty
    # schemaExtensions on purpose.
    expected = {k: v for k, v in doc.items() if v != []}
    assert model.model_dump(scim_ctx=RESPONSE) == expected


@pytest.mark.parametrize("overrides", [{}, {"etag": False, "documentation_uri": "https://example.com/d"}])
def test_service_provider_config_validates_strictly_and_round_trips(overrides: dict[str, Any]) -> None:
    doc = _spc(**overrides)
    model = ServiceProviderConfig.model_validate(doc, scim_ctx=RESPONSE, scim_policy=STRICT)
    assert model.model_dump(scim_ctx=RESPONSE) == doc


def test_list_responses_validate_strictly() -> None:
    schemas = ListResponse[Schema].model_validate(
        discovery.list_response(_all_schemas()), scim_ctx=Context.SEARCH_RESPONSE, scim_policy=STRICT
    )
    assert schemas.total_results == 3
    rts = ListResponse[ResourceType].model_validate(
        discovery.list_response(discovery.resource_types(BASE)),
        scim_ctx=Context.SEARCH_RESPONSE,
        scim_policy=STRICT,
    )
    assert [rt.name for rt in rts.resources or []] == ["User", "Group"]


def test_strict_validation_rejects_unknown_keys() -> None:
    """Guards the guard: the validation mode used above does refuse stray keys."""
    doc = {**_schema(USER_SCHEMA), "bogus": 1}
    with pytest.raises(ValueError, match="bogus"):
        Schema.model_validate(doc, scim_ctx=RESPONSE, scim_policy=STRICT)
    nested = _schema(GROUP_SCHEMA)
    nested = {**nested, "attributes": [{**nested["attributes"][0], "frobnicate": False}]}
    with pytest.raises(ValueError, match="frobnicate"):
        Schema.model_validate(nested, scim_ctx=RESPONSE, scim_policy=STRICT)


def test_scim_clients_can_build_models_from_discovery() -> None:
    """scim2-client and scim2-tester turn /Schemas + /ResourceTypes into models this way."""
    provider = ScimProvider.from_discovery(
        [Schema.model_validate(s, scim_policy=STRICT) for s in _all_schemas()],
        [ResourceType.model_validate(r, scim_policy=STRICT) for r in discovery.resource_types(BASE)],
        ServiceProviderConfig.model_validate(_spc(), scim_policy=STRICT),
    )
    assert provider.model_for(USER_SCHEMA) is not None
    assert provider.model_for(GROUP_SCHEMA) is not None


# --- shape rules (RFC 7643 §7, Entra) ------------------------------------------------------------


def test_no_null_values_anywhere() -> None:
    for doc in _every_document():
        nulls = [path for path, value in _walk_values(doc) if value is None]
        assert nulls == [], nulls


def test_keys_are_camel_case() -> None:
    for doc in _every_document():
        for path, value in _walk_values(doc):
            if isinstance(value, dict):
                odd = [k for k in value if not CAMEL_KEY.match(k) and k != "Resources"]
                assert odd == [], (path, odd)


def test_every_attribute_carries_all_characteristics() -> None:
    keys = {"name", "type", "multiValued", "description", "required", "caseExact", "mutability",
            "returned", "uniqueness"}
    for doc in _all_schemas():
        for attr in _walk_attributes(doc["attributes"]):
            assert keys <= attr.keys(), (doc["id"], attr["name"], keys - attr.keys())
            assert attr["mutability"] in {"readOnly", "readWrite", "immutable", "writeOnly"}
            assert attr["returned"] in {"always", "never", "default", "request"}
            assert attr["uniqueness"] in {"none", "server", "global"}
            if attr["type"] == "complex":
                assert attr["subAttributes"], attr["name"]
            else:
                assert "subAttributes" not in attr, attr["name"]
            if attr["type"] == "reference":
                assert attr["referenceTypes"], attr["name"]
            else:
                assert "referenceTypes" not in attr, attr["name"]
            if "canonicalValues" in attr:
                assert attr["canonicalValues"], attr["name"]


def test_attribute_names_are_unique_case_insensitively() -> None:
    for doc in _all_schemas():
        names = [a["name"].lower() for a in doc["attributes"]]
        assert len(names) == len(set(names)), doc["id"]
        for attr in doc["attributes"]:
            subs = [s["name"].lower() for s in attr.get("subAttributes", [])]
            assert len(subs) == len(set(subs)), attr["name"]


def test_resources_have_schemas_and_meta() -> None:
    for doc in _all_schemas():
        assert doc["schemas"] == [discovery.SCHEMA_SCHEMA]
        assert doc["meta"] == {"resourceType": "Schema", "location": f"{BASE}/Schemas/{doc['id']}"}
    for doc in discovery.resource_types(BASE):
        assert doc["schemas"] == [discovery.RESOURCE_TYPE_SCHEMA]
        location = f"{BASE}/ResourceTypes/{doc['id']}"
        assert doc["meta"] == {"resourceType": "ResourceType", "location": location}
    spc = _spc()
    assert spc["schemas"] == [discovery.SERVICE_PROVIDER_CONFIG_SCHEMA]
    location = f"{BASE}/ServiceProviderConfig"
    assert spc["meta"] == {"resourceType": "ServiceProviderConfig", "location": location}


# --- content -------------------------------------------------------------------------------------


def test_user_schema_lists_every_rfc_attribute_with_its_type() -> None:
    attrs = _attrs(_schema(USER_SCHEMA))
    for name, (type_, multi) in USER_ATTRIBUTES.items():
        assert name in attrs, name
        assert (attrs[name]["type"], attrs[name]["multiValued"]) == (type_, multi), name
    for name, subs in USER_SUB_ATTRIBUTES.items():
        assert set(_subs(attrs[name])) == subs, name


def test_user_schema_characteristics_entra_and_clients_rely_on() -> None:
    attrs = _attrs(_schema(USER_SCHEMA))
    user_name = attrs["userName"]
    assert (user_name["required"], user_name["caseExact"], user_name["uniqueness"]) == (True, False, "server")
    assert (attrs["password"]["mutability"], attrs["password"]["returned"]) == ("writeOnly", "never")
    assert attrs["groups"]["mutability"] == "readOnly"
    assert all(s["mutability"] == "readOnly" for s in attrs["groups"]["subAttributes"])
    assert attrs["profileUrl"]["referenceTypes"] == ["external"]
    assert _subs(attrs["photos"])["value"]["type"] == "reference"
    assert _subs(attrs["x509Certificates"])["value"]["type"] == "binary"


def test_emails_phones_addresses_cover_entra_default_mappings() -> None:
    """Entra's gallery validator checks /Schemas lists every mapped attribute path."""
    attrs = _attrs(_schema(USER_SCHEMA))
    emails = _subs(attrs["emails"])
    assert {"value", "type", "primary"} <= emails.keys()
    assert emails["value"]["type"] == "string"
    assert emails["primary"]["type"] == "boolean"
    assert {"work", "other"} <= set(emails["type"]["canonicalValues"])
    phone_types = set(_subs(attrs["phoneNumbers"])["type"]["canonicalValues"])
    assert {"work", "mobile", "fax"} <= phone_types
    addresses = _subs(attrs["addresses"])
    assert {"formatted", "streetAddress", "locality", "region", "postalCode", "country"} <= addresses.keys()
    assert "work" in addresses["type"]["canonicalValues"]


def test_enterprise_extension_lists_every_attribute_including_manager() -> None:
    doc = _schema(ENTERPRISE_SCHEMA)
    assert doc["name"] == "EnterpriseUser"
    attrs = _attrs(doc)
    for name, (type_, multi) in ENTERPRISE_ATTRIBUTES.items():
        assert name in attrs, name
        assert (attrs[name]["type"], attrs[name]["multiValued"]) == (type_, multi), name
    manager = _subs(attrs["manager"])
    assert set(manager) == {"value", "$ref", "displayName"}
    assert manager["value"]["type"] == "string"
    # Entra clears a manager with {"value": ""}; a required value would make that invalid.
    assert manager["value"]["required"] is False
    assert manager["$ref"]["type"] == "reference"
    assert manager["$ref"]["referenceTypes"] == ["User"]
    assert manager["displayName"]["mutability"] == "readOnly"


def test_group_schema_has_display_name_and_members() -> None:
    attrs = _attrs(_schema(GROUP_SCHEMA))
    assert attrs["displayName"]["type"] == "string"
    assert attrs["displayName"]["required"] is True
    members = attrs["members"]
    assert (members["type"], members["multiValued"], members["mutability"]) == ("complex", True, "readWrite")
    subs = _subs(members)
    assert {"value", "$ref", "type"} <= subs.keys()
    assert subs["value"]["mutability"] == "immutable"
    assert subs["$ref"]["referenceTypes"] == ["User", "Group"]
    assert subs["type"]["canonicalValues"] == ["User", "Group"]


def test_common_attributes_are_not_part_of_schema_documents() -> None:
    """RFC 7643 §3.1: id, externalId and meta belong to every resource, not to a schema."""
    for doc in _all_schemas():
        assert not {"id", "externalId", "meta"} & _attrs(doc).keys()


def test_resource_types() -> None:
    user = discovery.resource_type(BASE, "User")
    group = discovery.resource_type(BASE, "Group")
    assert user is not None and group is not None
    assert (user["id"], user["name"]) == ("User", "User")
    assert (user["endpoint"], user["schema"]) == ("/Users", USER_SCHEMA)
    assert user["schemaExtensions"] == [{"schema": ENTERPRISE_SCHEMA, "required": False}]
    assert (group["endpoint"], group["schema"], group["schemaExtensions"]) == ("/Groups", GROUP_SCHEMA, [])


def test_service_provider_config_is_honest() -> None:
    spc = _spc()
    assert spc["patch"] == {"supported": True}
    assert spc["bulk"] == {"supported": False, "maxOperations": 1000, "maxPayloadSize": 1_048_576}
    assert spc["filter"] == {"supported": True, "maxResults": 200}
    assert spc["changePassword"] == {"supported": False}
    assert spc["sort"] == {"supported": True}
    assert spc["etag"] == {"supported": True}
    assert "documentationUri" not in spc
    [scheme] = spc["authenticationSchemes"]
    assert scheme["type"] == "oauthbearertoken"
    assert scheme["name"] == "OAuth Bearer Token"
    assert scheme["description"]
    assert scheme["primary"] is True
    other = _spc(etag=False, documentation_uri="https://example.com/d")
    assert other["etag"] == {"supported": False}
    assert other["documentationUri"] == "https://example.com/d"


# --- lookups and caching -------------------------------------------------------------------------


def test_lookups_are_case_insensitive_and_unknown_is_none() -> None:
    assert discovery.schema(BASE, USER_SCHEMA.upper()) is _schema(USER_SCHEMA)
    assert discovery.schema(BASE, "urn:example:nope") is None
    assert discovery.resource_type(BASE, "user") is discovery.resource_type(BASE, "User")
    assert discovery.resource_type(BASE, "Schemas") is None


def test_documents_are_built_once_per_base_url() -> None:
    assert discovery.schemas(BASE) is discovery.schemas(BASE)
    assert discovery.schemas(BASE + "/") is discovery.schemas(BASE)
    assert discovery.resource_types(BASE) is discovery.resource_types(BASE)
    assert _spc() is _spc()
    other = discovery.schemas("https://scim.example.com/scim/v2")
    assert other[0]["meta"]["location"].startswith("https://scim.example.com/scim/v2/Schemas/")
    assert discovery.schemas(BASE)[0]["meta"]["location"].startswith(BASE)


def test_list_response() -> None:
    resources = [{"id": "a"}, {"id": "b"}]
    assert discovery.list_response(resources) == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 2,
        "itemsPerPage": 2,
        "startIndex": 1,
        "Resources": resources,
    }
    paged = discovery.list_response(resources, total=10)
    assert (paged["totalResults"], paged["itemsPerPage"]) == (10, 2)
    empty = discovery.list_response([])
    assert (empty["totalResults"], empty["Resources"]) == (0, [])
