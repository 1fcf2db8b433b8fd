"""normalize_resource / coerce_value / strip_empty: POST and PUT bodies as Entra and its validator send them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.scim.errors import ScimError
from gateway.scim.resources import coerce_value, normalize_resource, strip_empty
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_RESOURCE, USER_RESOURCE

ENT = ENTERPRISE_SCHEMA
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"


def user(body: Any) -> dict[str, Any]:
    snapshot = copy.deepcopy(body)
    result = normalize_resource(body, USER_RESOURCE)
    assert body == snapshot, "normalize_resource must not modify its input"
    return result


def group(body: Any) -> dict[str, Any]:
    return normalize_resource(body, GROUP_RESOURCE)


def error_of(body: Any, rt: Any = USER_RESOURCE) -> ScimError:
    with pytest.raises(ScimError) as info:
        normalize_resource(body, rt)
    assert info.value.status == 400
    return info.value


# ----------------------------------------------------------------------------- Entra bodies


def test_e2_create_user() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "active": True,
        "emails": [{
            "primary": True,
            "type": "work",
            "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com",
        }],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
    }
    assert user(body) == {
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "active": True,
        "emails": [{
            "primary": True,
            "type": "work",
            "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com",
        }],
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
    }


def test_e3_legacy_create_with_nulls_and_malformed_schema_urn() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
        "externalId": "jyoung",
        "userName": "jyoung@testuser.com",
        "active": True,
        "addresses": None,
        "displayName": "Joy Young",
        "emails": [{"type": "work", "value": "jyoung@Contoso.com", "primary": True}],
        "meta": {"resourceType": "User"},
        "name": {"familyName": "Young", "givenName": "Joy"},
        "phoneNumbers": None,
        "preferredLanguage": None,
        "title": None,
        "department": None,
        "manager": None,
    }
    assert user(body) == {
        "externalId": "jyoung",
        "userName": "jyoung@testuser.com",
        "active": True,
        "displayName": "Joy Young",
        # Stored as sent: the capital C must survive or Entra re-PATCHes every cycle.
        "emails": [{"type": "work", "value": "jyoung@Contoso.com", "primary": True}],
        "name": {"familyName": "Young", "givenName": "Joy"},
    }


E24 = {
    "userName": "julien.vonrueden@ondricka.us", "active": True, "displayName": "NDSQQTECVAAC",
    "title": "CJSGUNOAAMMQ",
    "emails": [{"type": "work", "value": "thaddeus@hammes.info", "primary": True}], "preferredLanguage": "hi",
    "name": {"givenName": "Elfrieda", "familyName": "Urban", "formatted": "Myah", "middleName": "Cindy",
             "honorificPrefix": "Minerva", "honorificSuffix": "Micaela"},
    "addresses": [{"type": "work", "formatted": "ZQEHBLETAAQE", "streetAddress": "25928 Katlyn Row",
                   "locality": "YRAKBQCGOHZF", "region": "XCCVLAIDMQYR", "postalCode": "cx47 4mz",
                   "primary": True, "country": "Sierra Leone"}],
    "phoneNumbers": [{"type": "work", "value": "10-040-1308", "primary": True},
                     {"type": "mobile", "value": "10-040-1308"}, {"type": "fax", "value": "10-040-1308"}],
    ENT: {"employeeNumber": "OXYYEGWVLTGW", "department": "ZYWTBPDFHIIP", "costCenter": "ASHTVSKANCGL",
          "organization": "DPQRRHJMBXZE", "division": "WXNFEJQDRAVI", "manager": {"value": "XYMKVVRYDIOO"}},
    "roles": [{"primary": "True", "display": "MRONYWGFFHXQ", "value": "WDEIISGWWQBE", "type": "XVTUOHMYUFRL"}],
    "userType": "GZILLRZCFPNC", "nickName": "FOGSIQTKHIPG", "locale": "RJWNTUNNOHNZ",
    "timezone": "America/Guayaquil", "profileUrl": "BAPNQLJSRQGD",
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
}


def test_e24_validator_create_user() -> None:
    expected = copy.deepcopy(E24)
    del expected["schemas"]
    expected["roles"] = [{"primary": True, "display": "MRONYWGFFHXQ", "value": "WDEIISGWWQBE",
                          "type": "XVTUOHMYUFRL"}]
    result = user(E24)
    assert result == expected
    assert result["roles"][0]["primary"] is True


def test_e15_group_create_with_microsoft_schema_uri() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "displayName",
        "meta": {"resourceType": "Group"},
    }
    assert group(body) == {"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "displayName"}


def test_e25_validator_group_create() -> None:
    body = {"displayName": "ZGHZBQHCAPZU", "externalId": "087af0b9-1", "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:Group"]}
    assert group(body) == {"displayName": "ZGHZBQHCAPZU", "externalId": "087af0b9-1"}


def test_postman_capitalised_attribute_names() -> None:
    body = {
        "UserName": "UserName123", "Active": "True", "DisplayName": "BobIsAmazing",
        "Emails": [{"Primary": "true", "Type": "work", "Value": "bob@contoso.com"}],
        "Name": {"FamilyName": "Bob", "GivenName": "Amazing"},
        ENT: {"Department": "Tour Operations", "Manager": {"Value": "OyaIsAwesome"}},
    }
    assert user(body) == {
        "userName": "UserName123", "active": True, "displayName": "BobIsAmazing",
        "emails": [{"primary": True, "type": "work", "value": "bob@contoso.com"}],
        "name": {"familyName": "Bob", "givenName": "Amazing"},
        ENT: {"department": "Tour Operations", "manager": {"value": "OyaIsAwesome"}},
    }


# ----------------------------------------------------------------------------- booleans and types


@pytest.mark.parametrize(("sent", "stored"), [
    (True, True), (False, False), ("True", True), ("False", False), ("true", True), ("false", False),
    ("TRUE", True), ("fAlSe", False),
])
def test_active_accepts_booleans_and_their_strings(sent: Any, stored: bool) -> None:
    result = user({"userName": "a@x", "active": sent})
    assert result == {"userName": "a@x", "active": stored}
    assert result["active"] is stored


@pytest.mark.parametrize("sent", ["yes", "1", " ", 1, 0, [True], {"value": True}])
def test_active_rejects_other_values(sent: Any) -> None:
    err = error_of({"userName": "a@x", "active": sent})
    assert err.scim_type == "invalidValue"
    assert "active" in err.detail


def test_empty_string_means_absent_for_every_type() -> None:
    assert user({"userName": "a@x", "active": "", "emails": [{"value": "a@x", "primary": ""}, ""]}) == {
        "userName": "a@x", "emails": [{"value": "a@x"}]}


def test_primary_string_boolean_in_elements() -> None:
    result = user({"userName": "a@x", "emails": [{"value": "a@x", "primary": "False"}]})
    assert result["emails"] == [{"value": "a@x", "primary": False}]
    err = error_of({"userName": "a@x", "emails": [{"value": "a@x", "primary": "maybe"}]})
    assert err.scim_type == "invalidValue"
    assert "emails[0].primary" in err.detail


@pytest.mark.parametrize(("body", "named"), [
    ({"userName": "a@x", "displayName": 5}, "displayName"),
    ({"userName": "a@x", "title": {"value": "x"}}, "title"),
    ({"userName": 42}, "userName"),
    ({"userName": "a@x", "name": "Joy Young"}, "name"),
    ({"userName": "a@x", "name": {"givenName": 3}}, "name.givenName"),
    ({"userName": "a@x", "emails": "a@x"}, "emails"),
    ({"userName": "a@x", "emails": ["a@x"]}, "emails[0]"),
    ({"userName": "a@x", ENT: {"department": 12}}, f"{ENT}:department"),
    ({"userName": "a@x", f"{ENT}:employeeNumber": 12}, f"{ENT}:employeeNumber"),
    ({"userName": "a@x", ENT: "Sales"}, ENT),
])
def test_wrong_types_name_the_attribute(body: dict[str, Any], named: str) -> None:
    err = error_of(body)
    assert err.scim_type == "invalidValue"
    assert f"'{named}'" in err.detail


def test_single_object_for_multi_valued_is_one_element_list() -> None:
    assert user({"userName": "a@x", "emails": {"value": "a@x", "type": "work"}}) == {
        "userName": "a@x", "emails": [{"value": "a@x", "type": "work"}]}


def test_unknown_sub_attributes_and_null_elements_are_dropped() -> None:
    body = {"userName": "a@x", "emails": [None, {"value": "a@x", "label": "x", "type": None}],
            "name": {"givenName": "A", "nick": "B"}}
    assert user(body) == {"userName": "a@x", "emails": [{"value": "a@x"}], "name": {"givenName": "A"}}


# ----------------------------------------------------------------------------- ignored input


def test_client_id_meta_schemas_groups_and_unknown_attributes_are_ignored() -> None:
    body = {"id": "client-chosen", "userName": "a@x", "meta": {"resourceType": "User", "version": "W/1"},
            "schemas": ["urn:example:unknown"], "groups": [{"value": "g1"}], "favouriteColour": "blue",
            "urn:ietf:params:scim:schemas:core:2.0:User:shoeSize": "42"}
    assert user(body) == {"userName": "a@x"}


def test_empty_strings_lists_objects_are_absent() -> None:
    body = {"userName": "a@x", "title": "", "roles": [], "name": {}, "emails": [{}], ENT: {"department": ""}}
    assert user(body) == {"userName": "a@x"}


def test_values_are_stored_exactly_as_sent() -> None:
    body = {"userName": "Jyoung@Contoso.COM", "phoneNumbers": [{"value": "55555555555", "type": "work"}],
            "displayName": "  padded  "}
    assert user(body) == body


def test_dotted_top_level_key_sets_the_sub_attribute() -> None:
    assert user({"userName": "a@x", "name": {"familyName": "F"}, "name.givenName": "G"}) == {
        "userName": "a@x", "name": {"familyName": "F", "givenName": "G"}}


# ----------------------------------------------------------------------------- extensions


def test_enterprise_attributes_flat_nested_and_unqualified_end_up_under_the_urn() -> None:
    body = {"userName": "a@x", f"{ENT}:department": "Sales",
            ENT: {"costCenter": "CC1"}, "division": "North",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:employeeNumber": "7"}
    assert user(body) == {"userName": "a@x", ENT: {"department": "Sales", "costCenter": "CC1",
                                                   "division": "North", "employeeNumber": "7"}}


def test_custom_extension_attributes_are_kept_verbatim() -> None:
    body = {"userName": "a@x", f"{CUSTOM}:tag": "Blue", "urn:ietf:params:scim:schemas:extension:Foo:2.0:User": {
        "Level": "L3", "Nested": {"a": 1}}}
    assert user(body) == {
        "userName": "a@x",
        CUSTOM: {"tag": "Blue"},
        "urn:ietf:params:scim:schemas:extension:Foo:2.0:User": {"Level": "L3", "Nested": {"a": 1}},
    }


def test_custom_extension_flat_and_nested_merge_under_one_key() -> None:
    body = {"userName": "a@x", CUSTOM: {"tag": "A"}, f"{CUSTOM}:level": "2", f"{CUSTOM}:gone": None}
    assert user(body) == {"userName": "a@x", CUSTOM: {"tag": "A", "level": "2"}}


# ----------------------------------------------------------------------------- manager


@pytest.mark.parametrize(("sent", "stored"), [
    ("m1", {"value": "m1"}),
    ({"value": "m1"}, {"value": "m1"}),
    ({"Value": "m1", "$ref": "https://x/Users/m1"}, {"value": "m1", "$ref": "https://x/Users/m1"}),
    ([{"$ref": "https://x/Users/m1", "value": "m1"}], {"value": "m1", "$ref": "https://x/Users/m1"}),
    ({"value": "m1", "$ref": None, "displayName": "Boss"}, {"value": "m1", "displayName": "Boss"}),
])
def test_manager_shapes(sent: Any, stored: dict[str, Any]) -> None:
    assert user({"userName": "a@x", ENT: {"manager": sent}}) == {"userName": "a@x", ENT: {"manager": stored}}
    assert user({"userName": "a@x", f"{ENT}:manager": sent}) == {"userName": "a@x", ENT: {"manager": stored}}


@pytest.mark.parametrize("sent", ["", {"value": ""}, {"value": None}, [], {}])
def test_manager_empty_means_no_manager(sent: Any) -> None:
    assert user({"userName": "a@x", ENT: {"manager": sent, "department": "D"}}) == {
        "userName": "a@x", ENT: {"department": "D"}}


@pytest.mark.parametrize("sent", [5, [{"value": "a"}, {"value": "b"}], {"$ref": "https://x/Users/m1"},
                                  {"value": 7}])
def test_manager_invalid(sent: Any) -> None:
    err = error_of({"userName": "a@x", ENT: {"manager": sent}})
    assert err.scim_type == "invalidValue"
    assert "manager" in err.detail


# ----------------------------------------------------------------------------- groups


def test_members_dedupe_and_null_ref() -> None:
    body = {"displayName": "G", "members": [
        {"$ref": None, "value": "u1"}, {"value": "u2", "display": "Two", "type": "User"},
        {"value": "u1", "display": "again"}]}
    assert group(body) == {"displayName": "G", "members": [
        {"value": "u1"}, {"value": "u2", "display": "Two", "type": "User"}]}


@pytest.mark.parametrize("members", [[{"display": "no id"}], [{"value": ""}], [{"value": 5}], "u1"])
def test_members_invalid(members: Any) -> None:
    err = error_of({"displayName": "G", "members": members}, GROUP_RESOURCE)
    assert err.scim_type == "invalidValue"
    assert "members" in err.detail


# ----------------------------------------------------------------------------- required / syntax


@pytest.mark.parametrize("body", [{}, {"userName": ""}, {"userName": "   "}, {"userName": None},
                                  {"displayName": "no user name"}])
def test_user_name_required(body: dict[str, Any]) -> None:
    err = error_of(body)
    assert err.scim_type == "invalidValue"
    assert err.detail == "userName is required"


@pytest.mark.parametrize("body", [{}, {"displayName": ""}, {"externalId": "x"}])
def test_group_display_name_required(body: dict[str, Any]) -> None:
    err = error_of(body, GROUP_RESOURCE)
    assert err.detail == "displayName is required"


@pytest.mark.parametrize("body", [None, [], ["userName"], "userName", 3])
def test_body_must_be_an_object(body: Any) -> None:
    assert error_of(body).scim_type == "invalidSyntax"


# ----------------------------------------------------------------------------- helpers


def test_strip_empty_returns_same_object_when_clean() -> None:
    clean = {"a": "x", "b": [{"c": False, "d": 0}], "e": {"f": "g"}}
    assert strip_empty(clean) is clean


def test_strip_empty_removes_nested_empties_but_keeps_false_and_zero() -> None:
    value = {"a": "", "b": [None, {}, {"c": None, "d": False}], "e": {"f": [], "g": 0}, "h": {"i": ""}}
    snapshot = copy.deepcopy(value)
    assert strip_empty(value) == {"b": [{"d": False}], "e": {"g": 0}}
    assert value == snapshot


def test_coerce_value_uses_the_resolved_attribute() -> None:
    active = USER_RESOURCE.resolve("ACTIVE")
    primary = USER_RESOURCE.resolve("emails", "Primary")
    manager = USER_RESOURCE.resolve("manager")
    assert active is not None and primary is not None and manager is not None
    assert coerce_value(active, "False", "active") is False
    assert coerce_value(primary, "TRUE", "emails.primary") is True
    assert coerce_value(manager, "m1", "manager") == {"value": "m1"}
    assert coerce_value(manager, {"value": ""}, "manager") is None
    with pytest.raises(ScimError) as info:
        coerce_value(active, "nope", "active")
    assert info.value.scim_type == "invalidValue"
