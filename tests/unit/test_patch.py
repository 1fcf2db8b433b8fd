"""PATCH: every body Entra, its validator and RFC 7644 §3.5.2 send, with exact resulting resources."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.scim.errors import ScimError
from gateway.scim.filter_ast import AttrPath, Compare
from gateway.scim.patch import PatchOperation, apply_patch, parse_patch
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_RESOURCE, USER_RESOURCE, ResourceType

ENT = ENTERPRISE_SCHEMA
CUSTOM = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
PATCH_OP = ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]


def make_user(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": "u1",
        "userName": "jdoe@contoso.com",
        "externalId": "jdoe",
        "active": True,
        "displayName": "John Doe",
        "name": {"givenName": "John", "familyName": "Doe", "formatted": "John Doe"},
        "emails": [{"value": "jdoe@contoso.com", "type": "work", "primary": True}],
    }
    for key, value in changes.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def make_group(*members: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"id": "g1", "displayName": "Sales", "externalId": "ext-g1"}
    if members:
        resource["members"] = [{"value": m} for m in members]
    return resource


def run(resource: dict[str, Any], body: Any, rt: ResourceType = USER_RESOURCE) -> dict[str, Any]:
    """parse + apply, checking that the input resource is left untouched."""
    snapshot = copy.deepcopy(resource)
    result = apply_patch(resource, parse_patch(body, rt), rt)
    assert resource == snapshot, "apply_patch modified its input"
    return result


def ops(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": PATCH_OP, "Operations": list(operations)}


def fails(resource: dict[str, Any], body: Any, rt: ResourceType = USER_RESOURCE) -> ScimError:
    snapshot = copy.deepcopy(resource)
    with pytest.raises(ScimError) as info:
        apply_patch(resource, parse_patch(body, rt), rt)
    assert resource == snapshot
    assert info.value.status == 400
    return info.value


# ----------------------------------------------------------------------------- E8–E13: users


def test_e8_multi_valued_and_complex() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ],
    }
    assert run(make_user(), body) == make_user(
        emails=[{"value": "updatedEmail@microsoft.com", "type": "work", "primary": True}],
        name={"givenName": "John", "familyName": "updatedFamilyName", "formatted": "John Doe"},
    )


def test_e9_rename() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "userName",
                        "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}],
    }
    assert run(make_user(), body) == make_user(userName="5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com")


E10_DOCS = {"Operations": [{"op": "Replace", "path": "active", "value": False}],
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}
E10_DEFAULT = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
E10_FLAG = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}]}


@pytest.mark.parametrize("body", [
    E10_DOCS, E10_DEFAULT, E10_FLAG,
    ops({"op": "Replace", "path": "active", "value": "false"}),
    ops({"op": "Add", "path": "active", "value": "False"}),
    ops({"op": "replace", "value": {"active": "False"}}),
])
def test_e10_disable_user_every_form(body: dict[str, Any]) -> None:
    result = run(make_user(), body)
    assert result == make_user(active=False)
    assert result["active"] is False


@pytest.mark.parametrize("value", [True, "True", "true", "TRUE"])
def test_e10_re_enable(value: Any) -> None:
    result = run(make_user(active=False), ops({"op": "Replace", "path": "active", "value": value}))
    assert result["active"] is True


def test_e12_manager_legacy_array_form() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "Add",
            "path": "manager",
            "value": [{"$ref": "http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
                       "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}],
        }],
    }
    assert run(make_user(), body) == make_user(**{ENT: {"manager": {
        "$ref": "http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
        "value": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}}})


def test_e12_manager_modern_string_form() -> None:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add",
                            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                            "value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}]}
    assert run(make_user(), body) == make_user(**{ENT: {"manager": {"value": "2c2f6fb8-254f-492e-b7fe-c09c5a61c8a2"}}})


def test_e12_replace_manager_drops_the_old_ref() -> None:
    start = make_user(**{ENT: {"manager": {"value": "old", "$ref": "https://x/Users/old"}, "department": "D"}})
    body = ops({"op": "replace", "path": f"{ENT}:manager", "value": {"value": "new"}})
    assert run(start, body) == make_user(**{ENT: {"manager": {"value": "new"}, "department": "D"}})


@pytest.mark.parametrize("operation", [
    {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
     "value": {"value": ""}},
    {"op": "replace", "path": f"{ENT}:manager", "value": ""},
    {"op": "replace", "path": f"{ENT}:manager", "value": None},
    {"op": "Replace", "path": "manager", "value": {"value": None}},
    {"op": "replace", "path": f"{ENT}:manager.value", "value": ""},
    {"op": "remove", "path": "manager[value eq \"manager-id\"]"},
    {"op": "Remove", "path": "manager"},
    {"op": "remove", "path": f"{ENT}:manager", "value": {"value": "manager-id"}},
])
def test_e12_q17_remove_manager_every_form(operation: dict[str, Any]) -> None:
    start = make_user(**{ENT: {"manager": {"value": "manager-id"}, "department": "D"}})
    assert run(start, ops(operation)) == make_user(**{ENT: {"department": "D"}})


def test_q17_remove_manager_last_attribute_drops_the_extension() -> None:
    start = make_user(**{ENT: {"manager": {"value": "manager-id"}}})
    assert run(start, ops({"op": "replace", "path": f"{ENT}:manager", "value": {"value": ""}})) == make_user()


def test_q17_remove_manager_filter_that_does_not_match_is_a_no_op() -> None:
    start = make_user(**{ENT: {"manager": {"value": "someone-else"}}})
    assert run(start, ops({"op": "remove", "path": "manager[value eq \"manager-id\"]"})) == start


def test_e13_without_flag() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
             "value": "Eqpj"},
        ],
    }
    assert run(make_user(), body) == make_user(
        displayName="Pvlo", externalId="Eqpj",
        emails=[{"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": True}],
        name={"givenName": "Gtfd", "familyName": "Pkqf", "formatted": "John Doe"},
        **{ENT: {"employeeNumber": "Eqpj"}},
    )


def test_e13_with_flag_path_less_dotted_and_urn_keys() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
            {"op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",
            }},
        ],
    }
    assert run(make_user(), body) == make_user(
        displayName="Bjfe",
        emails=[{"value": "TestMhvaes@test.microsoft.com", "type": "work", "primary": True}],
        name={"givenName": "Kkom", "familyName": "Unua", "formatted": "John Doe"},
        **{ENT: {"employeeNumber": "Aklq"}},
    )


@pytest.mark.parametrize("op", ["Add", "add"])
def test_e13_single_value_add(op: str) -> None:
    assert run(make_user(), ops({"op": op, "path": "nickName", "value": "Babs"})) == make_user(nickName="Babs")


def test_e13_observed_mixed_replace_and_add() -> None:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "AdeleV2@REDACTED.onmicrosoft.com"},
        {"op": "Replace", "path": "addresses[type eq \"work\"].formatted", "value": "18/2111"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
         "value": "Retail"}]}
    assert run(make_user(), body) == make_user(
        emails=[{"value": "AdeleV2@REDACTED.onmicrosoft.com", "type": "work", "primary": True}],
        addresses=[{"type": "work", "formatted": "18/2111"}],
        **{ENT: {"department": "Retail"}},
    )


def test_e14_roles_json_encoded_string_is_kept_verbatim() -> None:
    encoded = "{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"
    body = ops({"op": "Add", "path": "roles", "value": [{"value": encoded}]})
    assert run(make_user(), body) == make_user(roles=[{"value": encoded}])


def test_e14_assertive_roles_replace_with_full_objects() -> None:
    start = make_user(roles=[{"value": "old"}])
    body = ops({"op": "replace", "path": "roles", "value": [
        {"primary": "True", "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"},
        {"primary": "False", "value": "Reader"}]})
    assert run(start, body) == make_user(roles=[
        {"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"},
        {"primary": False, "value": "Reader"}])


def test_q6_roles_filter_on_quoted_boolean() -> None:
    start = make_user(roles=[{"primary": True, "value": "Admin"}, {"value": "Reader"}])
    body = ops({"op": "Replace", "path": "roles[primary eq \"True\"].value", "value": "Owner"})
    assert run(start, body) == make_user(roles=[{"primary": True, "value": "Owner"}, {"value": "Reader"}])


# ----------------------------------------------------------------------------- E18–E20, E26–E29: groups


def test_e18_group_rename() -> None:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "displayName",
                            "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}
    assert run(make_group("a"), body, GROUP_RESOURCE) == {
        "id": "g1", "displayName": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName",
        "externalId": "ext-g1", "members": [{"value": "a"}]}


E19 = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
       "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}]}


def test_e19_add_member() -> None:
    assert run(make_group(), E19, GROUP_RESOURCE) == make_group("f648f8d5ea4e4cd38e9c")
    assert run(make_group("a"), E19, GROUP_RESOURCE) == make_group("a", "f648f8d5ea4e4cd38e9c")


def test_e19_add_member_is_idempotent() -> None:
    once = run(make_group("a"), E19, GROUP_RESOURCE)
    assert run(once, E19, GROUP_RESOURCE) == once == make_group("a", "f648f8d5ea4e4cd38e9c")


def test_e19_multiple_members_in_one_operation() -> None:
    body = ops({"op": "Add", "path": "members", "value": [
        {"value": "b"}, {"value": "a"}, {"value": "c"}, {"value": "b"}]})
    assert run(make_group("a"), body, GROUP_RESOURCE) == make_group("a", "b", "c")


@pytest.mark.parametrize("body", [
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
     "Operations": [{"op": "Remove", "path": "members",
                     "value": [{"$ref": None, "value": "f648f8d5ea4e4cd38e9c"}]}]},
    ops({"op": "Remove", "path": "members", "value": [{"value": "f648f8d5ea4e4cd38e9c"}]}),
    ops({"op": "remove", "path": "members[value eq \"f648f8d5ea4e4cd38e9c\"]"}),
])
def test_e20_q4_remove_only_the_listed_member(body: dict[str, Any]) -> None:
    start = make_group("keep-1", "f648f8d5ea4e4cd38e9c", "keep-2")
    assert run(start, body, GROUP_RESOURCE) == make_group("keep-1", "keep-2")


def test_e20_flag_form_verbatim() -> None:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": "members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]}
    start = make_group("7f4bc1a3-285e-48ae-8202-5accb43efb0e", "other")
    assert run(start, body, GROUP_RESOURCE) == make_group("other")


def test_q4_remove_several_members_by_value_array() -> None:
    body = ops({"op": "Remove", "path": "members", "value": [{"value": "a"}, {"value": "c"}, {"value": "zz"}]})
    assert run(make_group("a", "b", "c", "d"), body, GROUP_RESOURCE) == make_group("b", "d")


def test_q4_remove_members_without_value_or_filter_clears_all() -> None:
    assert run(make_group("a", "b"), ops({"op": "remove", "path": "members"}), GROUP_RESOURCE) == make_group()


def test_remove_member_that_is_not_there_is_a_no_op() -> None:
    start = make_group("a")
    assert run(start, ops({"op": "remove", "path": "members[value eq \"zz\"]"}), GROUP_RESOURCE) == start
    assert run(start, ops({"op": "Remove", "path": "members", "value": [{"value": "zz"}]}), GROUP_RESOURCE) == start


@pytest.mark.parametrize("value", [{"externalId": "663fa3a8-0000"}, {"displayName": "WUZPWMBDDCGI"}])
def test_e26_group_path_less_replace(value: dict[str, Any]) -> None:
    result = run(make_group("a"), ops({"op": "replace", "value": value}), GROUP_RESOURCE)
    assert result == {**make_group("a"), **value}


def test_e27_q19_replace_members_sets_exactly_that_set() -> None:
    body = ops({"op": "replace", "path": "members", "value": [{"value": "805d32c6-1"}, {"value": "805d32c6-2"}]})
    assert run(make_group("a", "805d32c6-1"), body, GROUP_RESOURCE) == make_group("805d32c6-1", "805d32c6-2")
    assert run(make_group(), body, GROUP_RESOURCE) == make_group("805d32c6-1", "805d32c6-2")


def test_e28_remove_member_by_filter() -> None:
    body = ops({"op": "remove", "path": "members[value eq \"ee90548a-1\"]"})
    assert run(make_group("ee90548a-1", "b"), body, GROUP_RESOURCE) == make_group("b")


def test_e29_q18_add_then_remove_same_member_in_order() -> None:
    body = ops({"op": "add", "path": "members", "value": [{"value": "m1"}]},
               {"op": "remove", "path": "members[value eq \"m1\"]"})
    assert run(make_group("a"), body, GROUP_RESOURCE) == make_group("a")
    reverse = ops({"op": "remove", "path": "members[value eq \"m1\"]"},
                  {"op": "add", "path": "members", "value": [{"value": "m1"}]})
    assert run(make_group("a"), reverse, GROUP_RESOURCE) == make_group("a", "m1")


def test_replace_member_value_does_not_create_a_duplicate() -> None:
    body = ops({"op": "replace", "path": "members[value eq \"a\"].value", "value": "b"})
    assert run(make_group("a", "b"), body, GROUP_RESOURCE) == make_group("b")


# ----------------------------------------------------------------------------- E30, Q6, Q7: filtered paths


@pytest.mark.parametrize("op", ["Add", "add", "Replace"])
def test_e30_q6_add_work_email_to_user_without_one(op: str) -> None:
    body = ops({"op": op, "path": "emails[type eq \"work\"].value", "value": "something@outlook.com"})
    assert run(make_user(emails=None), body) == make_user(
        emails=[{"type": "work", "value": "something@outlook.com", "primary": True}])


def test_q6_new_work_email_is_not_primary_when_another_is() -> None:
    start = make_user(emails=[{"value": "home@x.org", "type": "home", "primary": True}])
    body = ops({"op": "add", "path": "emails[type eq \"work\"].value", "value": "w@x.org"})
    assert run(start, body) == make_user(emails=[
        {"value": "home@x.org", "type": "home", "primary": True}, {"type": "work", "value": "w@x.org"}])


def test_q6_other_email_is_never_made_primary() -> None:
    body = ops({"op": "add", "path": "emails[type eq \"other\"].value", "value": "alias@x.org"})
    assert run(make_user(emails=None), body) == make_user(emails=[{"type": "other", "value": "alias@x.org"}])


@pytest.mark.parametrize(("path", "element"), [
    ("phoneNumbers[type eq \"mobile\"].value", {"type": "mobile", "value": "+1 555 0100"}),
    ("phoneNumbers[type eq \"fax\"].value", {"type": "fax", "value": "+1 555 0100"}),
    ("addresses[type eq \"work\"].streetAddress", {"type": "work", "streetAddress": "+1 555 0100"}),
])
def test_q6_create_on_absent_for_phones_and_addresses(path: str, element: dict[str, Any]) -> None:
    attr = path.split("[")[0]
    body = ops({"op": "Add", "path": path, "value": "+1 555 0100"})
    assert run(make_user(), body) == make_user(**{attr: [element]})


def test_q6_replace_updates_every_matching_element_only() -> None:
    start = make_user(phoneNumbers=[{"type": "work", "value": "1"}, {"type": "mobile", "value": "2"},
                                    {"type": "Work", "value": "3"}])
    body = ops({"op": "Replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "9"})
    assert run(start, body) == make_user(phoneNumbers=[
        {"type": "work", "value": "9"}, {"type": "mobile", "value": "2"}, {"type": "Work", "value": "9"}])


def test_q6_address_sub_attributes_accumulate_in_one_element() -> None:
    body = ops(
        {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
        {"op": "Add", "path": "addresses[type eq \"work\"].country", "value": "US"},
    )
    assert run(make_user(), body) == make_user(addresses=[
        {"type": "work", "streetAddress": "1 Main St", "locality": "Springfield", "country": "US"}])


@pytest.mark.parametrize("operation", [
    {"op": "Remove", "path": "emails[type eq \"work\"].value", "value": "jdoe@contoso.com"},
    {"op": "remove", "path": "emails[type eq \"work\"].value"},
    {"op": "remove", "path": "emails[type eq \"work\"]"},
    {"op": "replace", "path": "emails[type eq \"work\"].value", "value": ""},
    {"op": "replace", "path": "emails[type eq \"work\"].value", "value": None},
])
def test_q7_remove_work_email(operation: dict[str, Any]) -> None:
    assert run(make_user(), ops(operation)) == make_user(emails=None)


def test_q7_clearing_a_sub_attribute_keeps_an_element_that_still_has_data() -> None:
    start = make_user(addresses=[{"type": "work", "streetAddress": "1 Main", "locality": "X"}])
    body = ops({"op": "Remove", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main"})
    assert run(start, body) == make_user(addresses=[{"type": "work", "locality": "X"}])


def test_filter_matching_nothing_on_remove_is_a_no_op() -> None:
    start = make_user()
    assert run(start, ops({"op": "remove", "path": "emails[type eq \"home\"]"})) == start
    assert run(start, ops({"op": "remove", "path": "phoneNumbers[type eq \"fax\"].value"})) == start


def test_filter_values_compare_case_insensitively_unless_case_exact() -> None:
    body = ops({"op": "replace", "path": "emails[value eq \"JDOE@CONTOSO.COM\"].type", "value": "home"})
    assert run(make_user(), body) == make_user(emails=[{"value": "jdoe@contoso.com", "type": "home",
                                                        "primary": True}])


def test_filter_that_cannot_describe_an_element_is_no_target() -> None:
    body = ops({"op": "replace", "path": "emails[type ne \"work\"].value", "value": "x@y"})
    assert fails(make_user(), body).scim_type == "noTarget"


# ----------------------------------------------------------------------------- Q1–Q5, Q13: dialect


@pytest.mark.parametrize("op", ["add", "Add", "ADD", "replace", "Replace", "REPLACE", "rEpLaCe"])
def test_q1_op_is_case_insensitive(op: str) -> None:
    assert run(make_user(), ops({"op": op, "path": "title", "value": "CTO"})) == make_user(title="CTO")


def test_q1_structural_keys_are_case_insensitive() -> None:
    body = {"SCHEMAS": PATCH_OP, "operations": [{"OP": "Remove", "Path": "displayName"},
                                                {"Op": "Add", "PATH": "title", "VALUE": "CTO"}]}
    assert run(make_user(), body) == make_user(displayName=None, title="CTO")


def test_q1_attribute_names_in_paths_are_case_insensitive() -> None:
    body = ops({"op": "replace", "path": "NAME.GIVENNAME", "value": "Jo"},
               {"op": "replace", "path": "Emails[Type eq \"work\"].Value", "value": "jo@x"},
               {"op": "replace", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department",
                "value": "D"})
    assert run(make_user(), body) == make_user(
        name={"givenName": "Jo", "familyName": "Doe", "formatted": "John Doe"},
        emails=[{"value": "jo@x", "type": "work", "primary": True}], **{ENT: {"department": "D"}})


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("emails[type eq \"work\"].primary", "False", [{"value": "jdoe@contoso.com", "type": "work", "primary": False}]),
    ("emails[type eq \"work\"].primary", "TRUE", [{"value": "jdoe@contoso.com", "type": "work", "primary": True}]),
])
def test_q2_boolean_strings_in_sub_attributes(path: str, value: str, expected: list[Any]) -> None:
    result = run(make_user(), ops({"op": "replace", "path": path, "value": value}))
    assert result["emails"] == expected


def test_q2_other_strings_are_rejected_for_booleans() -> None:
    err = fails(make_user(), ops({"op": "Replace", "path": "active", "value": "Disabled"}))
    assert err.scim_type == "invalidValue"
    assert "'active'" in err.detail


def test_q3_path_less_nested_complex_merges() -> None:
    body = ops({"op": "replace", "value": {"name": {"givenName": "Kkom"}, "title": "Boss"}})
    assert run(make_user(), body) == make_user(
        name={"givenName": "Kkom", "familyName": "Doe", "formatted": "John Doe"}, title="Boss")


def test_q3_path_less_urn_keyed_nested_object() -> None:
    start = make_user(**{ENT: {"department": "Old", "costCenter": "C1"}})
    body = ops({"op": "replace", "value": {ENT: {"department": "New", "manager": "m9"}, "externalId": "x"}})
    assert run(start, body) == make_user(
        externalId="x", **{ENT: {"department": "New", "costCenter": "C1", "manager": {"value": "m9"}}})


def test_q3_path_less_ignores_schemas_and_meta_and_accepts_unchanged_id() -> None:
    body = ops({"op": "replace", "value": {"schemas": ["x"], "meta": {"version": "W/1"}, "id": "u1",
                                           "displayName": "Z"}})
    assert run(make_user(), body) == make_user(displayName="Z")


def test_q3_path_less_add_appends_to_multi_valued() -> None:
    body = ops({"op": "add", "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}],
                                       "nickname": "Babs"}})
    assert run(make_user(), body) == make_user(nickName="Babs", emails=[
        {"value": "jdoe@contoso.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"}])


@pytest.mark.parametrize("op", ["Add", "Replace"])
def test_q13_add_on_single_valued_replaces(op: str) -> None:
    start = make_user(**{ENT: {"department": "Old"}})
    body = ops({"op": op, "path": f"{ENT}:department", "value": "Retail"},
               {"op": op, "path": "displayName", "value": "New Name"})
    assert run(start, body) == make_user(displayName="New Name", **{ENT: {"department": "Retail"}})


def test_add_name_merges_sub_attributes() -> None:
    body = ops({"op": "add", "path": "name", "value": {"middleName": "Q", "givenName": None}})
    assert run(make_user(), body) == make_user(name={"familyName": "Doe", "formatted": "John Doe",
                                                     "middleName": "Q"})


def test_add_email_with_primary_demotes_the_old_primary() -> None:
    body = ops({"op": "add", "path": "emails", "value": [{"value": "n@x", "type": "home", "primary": True}]})
    assert run(make_user(), body) == make_user(emails=[
        {"value": "jdoe@contoso.com", "type": "work", "primary": False},
        {"value": "n@x", "type": "home", "primary": True}])


def test_making_another_element_primary_demotes_the_old_primary() -> None:
    start = make_user(emails=[{"value": "w@x", "type": "work", "primary": True}, {"value": "h@x", "type": "home"}])
    body = ops({"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"})
    assert run(start, body) == make_user(emails=[{"value": "w@x", "type": "work", "primary": False},
                                                 {"value": "h@x", "type": "home", "primary": True}])


# ----------------------------------------------------------------------------- null updates


@pytest.mark.parametrize("value", ["", None])
def test_null_update_clears_optional_attributes(value: Any) -> None:
    start = make_user(title="CTO", **{ENT: {"department": "D", "costCenter": "C"}})
    body = ops({"op": "replace", "path": "title", "value": value},
               {"op": "replace", "path": "name.givenName", "value": value},
               {"op": "replace", "path": "nickName", "value": value},
               {"op": "Replace", "path": f"{ENT}:department", "value": value},
               {"op": "replace", "value": {"displayName": value, f"{ENT}:costCenter": value}})
    assert run(start, body) == make_user(displayName=None, name={"familyName": "Doe", "formatted": "John Doe"})


def test_null_update_of_whole_complex_and_multi_valued() -> None:
    body = ops({"op": "replace", "path": "name", "value": None},
               {"op": "replace", "path": "emails", "value": []})
    assert run(make_user(), body) == make_user(name=None, emails=None)


# ----------------------------------------------------------------------------- custom extensions


def test_custom_extension_path_is_stored_verbatim() -> None:
    body = ops({"op": "Add", "path": f"{CUSTOM}:tag", "value": "Blue Team"})
    assert run(make_user(), body) == make_user(**{CUSTOM: {"tag": "Blue Team"}})


def test_custom_extension_replace_remove_and_path_less_forms() -> None:
    start = make_user(**{CUSTOM: {"tag": "A", "level": "1"}})
    body = ops({"op": "replace", "value": {f"{CUSTOM}:tag": "B",
                                           "urn:ietf:params:scim:schemas:extension:Foo:2.0:User": {"x": "y"}}},
               {"op": "remove", "path": f"{CUSTOM}:level"})
    assert run(start, body) == make_user(**{CUSTOM: {"tag": "B"},
                                            "urn:ietf:params:scim:schemas:extension:Foo:2.0:User": {"x": "y"}})


def test_custom_extension_cleared_with_empty_value() -> None:
    start = make_user(**{CUSTOM: {"tag": "A"}})
    assert run(start, ops({"op": "replace", "path": f"{CUSTOM}:tag", "value": ""})) == make_user()


# ----------------------------------------------------------------------------- less common shapes


def test_whole_extension_path_add_and_remove() -> None:
    start = make_user(**{ENT: {"department": "D"}})
    body = ops({"op": "add", "path": ENT, "value": {"costCenter": "C", "manager": "m1", "schemas": [ENT]}})
    assert run(start, body) == make_user(**{ENT: {"department": "D", "costCenter": "C", "manager": {"value": "m1"}}})
    assert run(start, ops({"op": "remove", "path": ENT})) == make_user()


def test_path_less_null_clears_a_complex_attribute() -> None:
    assert run(make_user(), ops({"op": "replace", "value": {"name": None}})) == make_user(name=None)


def test_sub_attribute_of_multi_valued_without_filter_applies_to_every_element() -> None:
    start = make_user(emails=[{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "home"}])
    body = ops({"op": "replace", "path": "emails.display", "value": "Mail"})
    assert run(start, body) == make_user(emails=[{"value": "a@x", "type": "work", "display": "Mail"},
                                                 {"value": "b@x", "type": "home", "display": "Mail"}])


def test_filtered_member_replace_without_match_creates_the_member() -> None:
    body = ops({"op": "replace", "path": "members[value eq \"u7\"]", "value": {"display": "Seven"}})
    assert run(make_group("a"), body, GROUP_RESOURCE) == {
        **make_group("a"), "members": [{"value": "a"}, {"value": "u7", "display": "Seven"}]}


def test_member_cannot_be_created_without_a_value() -> None:
    body = ops({"op": "add", "path": "members[type eq \"User\"].$ref", "value": "https://x/Users/u9"})
    assert fails(make_group("a"), body, GROUP_RESOURCE).scim_type == "noTarget"


def test_group_path_less_replace_members_and_single_object_add() -> None:
    body = ops({"op": "replace", "value": {"members": [{"value": "x"}, {"value": "y"}], "displayName": "S2"}},
               {"op": "add", "path": "members", "value": {"value": "z", "$ref": None}})
    assert run(make_group("a"), body, GROUP_RESOURCE) == {**make_group("x", "y", "z"), "displayName": "S2"}


# ----------------------------------------------------------------------------- RFC 7644 §3.5.2 examples


def test_rfc_add_member_with_display_and_ref() -> None:
    body = ops({"op": "add", "path": "members", "value": [{
        "display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
        "value": "2819c223-7f76-453a-919d-413861904646"}]})
    assert run(make_group(), body, GROUP_RESOURCE) == {**make_group(), "members": [{
        "display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
        "value": "2819c223-7f76-453a-919d-413861904646"}]}


def test_rfc_remove_with_compound_filter() -> None:
    start = make_user(emails=[{"value": "a@example.com", "type": "work"}, {"value": "b@other.org", "type": "work"},
                              {"value": "c@example.com", "type": "home"}])
    body = ops({"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"})
    assert run(start, body) == make_user(emails=[{"value": "b@other.org", "type": "work"},
                                                 {"value": "c@example.com", "type": "home"}])


def test_rfc_replace_whole_filtered_element_and_sub_attribute() -> None:
    start = make_user(addresses=[{"type": "work", "streetAddress": "old", "locality": "L", "primary": True},
                                 {"type": "home", "streetAddress": "home st"}])
    body = ops({"op": "replace", "path": "addresses[type eq \"work\"]", "value": {
        "type": "work", "streetAddress": "911 Universal City Plaza", "postalCode": "91608"}},
        {"op": "replace", "path": "addresses[type eq \"home\"].streetAddress", "value": "1010 Broadway Ave"})
    assert run(start, body) == make_user(addresses=[
        {"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "L", "primary": True,
         "postalCode": "91608"},
        {"type": "home", "streetAddress": "1010 Broadway Ave"}])


# ----------------------------------------------------------------------------- validator: verbose replace


def test_validator_replace_attributes_verbose() -> None:
    start = {
        "id": "u1", "userName": "old@x.com", "active": True, "displayName": "OLD", "title": "OLD",
        "emails": [{"type": "work", "value": "old@x.com", "primary": True}], "preferredLanguage": "en",
        "name": {"givenName": "O", "familyName": "O", "formatted": "O", "middleName": "O",
                 "honorificPrefix": "O", "honorificSuffix": "O"},
        "addresses": [{"type": "work", "formatted": "O", "streetAddress": "O", "locality": "O", "region": "O",
                       "postalCode": "O", "primary": True, "country": "O"}],
        "phoneNumbers": [{"type": "work", "value": "0", "primary": True}, {"type": "mobile", "value": "0"},
                         {"type": "fax", "value": "0"}],
        ENT: {"employeeNumber": "O", "department": "O", "costCenter": "O", "organization": "O", "division": "O",
              "manager": {"value": "O"}},
        "roles": [{"primary": True, "display": "O", "value": "O", "type": "O"}],
        "userType": "O", "nickName": "O", "locale": "O", "timezone": "Europe/Paris", "profileUrl": "O",
    }
    replacements = [
        ("userName", "julien.vonrueden@ondricka.us"), ("active", "False"), ("displayName", "NDSQQTECVAAC"),
        ("title", "CJSGUNOAAMMQ"), ("emails[type eq \"work\"].value", "thaddeus@hammes.info"),
        ("emails[type eq \"work\"].primary", "True"),
        ("preferredLanguage", "hi"), ("name.givenName", "Elfrieda"), ("name.familyName", "Urban"),
        ("name.formatted", "Myah"), ("name.middleName", "Cindy"), ("name.honorificPrefix", "Minerva"),
        ("name.honorificSuffix", "Micaela"), ("addresses[type eq \"work\"].formatted", "ZQEHBLETAAQE"),
        ("addresses[type eq \"work\"].streetAddress", "25928 Katlyn Row"),
        ("addresses[type eq \"work\"].locality", "YRAKBQCGOHZF"),
        ("addresses[type eq \"work\"].region", "XCCVLAIDMQYR"),
        ("addresses[type eq \"work\"].postalCode", "cx47 4mz"),
        ("addresses[type eq \"work\"].country", "Sierra Leone"),
        ("phoneNumbers[type eq \"work\"].value", "10-040-1308"),
        ("phoneNumbers[type eq \"mobile\"].value", "10-040-1309"),
        ("phoneNumbers[type eq \"fax\"].value", "10-040-1310"),
        (f"{ENT}:employeeNumber", "OXYYEGWVLTGW"), (f"{ENT}:department", "ZYWTBPDFHIIP"),
        (f"{ENT}:costCenter", "ASHTVSKANCGL"), (f"{ENT}:organization", "DPQRRHJMBXZE"),
        (f"{ENT}:division", "WXNFEJQDRAVI"), (f"{ENT}:manager", {"value": "XYMKVVRYDIOO"}),
        ("roles[primary eq \"True\"].display", "MRONYWGFFHXQ"), ("roles[primary eq \"True\"].value", "WDEIISGWWQBE"),
        ("roles[primary eq \"True\"].type", "XVTUOHMYUFRL"), ("userType", "GZILLRZCFPNC"),
        ("nickName", "FOGSIQTKHIPG"), ("locale", "RJWNTUNNOHNZ"), ("timezone", "America/Guayaquil"),
        ("profileUrl", "BAPNQLJSRQGD"), ("externalId", "ext-1"),
    ]
    body = ops(*({"op": "replace", "path": path, "value": value} for path, value in replacements))
    assert len(body["Operations"]) == 37
    assert run(start, body) == {
        "id": "u1", "userName": "julien.vonrueden@ondricka.us", "active": False, "displayName": "NDSQQTECVAAC",
        "title": "CJSGUNOAAMMQ", "emails": [{"type": "work", "value": "thaddeus@hammes.info", "primary": True}],
        "preferredLanguage": "hi",
        "name": {"givenName": "Elfrieda", "familyName": "Urban", "formatted": "Myah", "middleName": "Cindy",
                 "honorificPrefix": "Minerva", "honorificSuffix": "Micaela"},
        "addresses": [{"type": "work", "formatted": "ZQEHBLETAAQE", "streetAddress": "25928 Katlyn Row",
                       "locality": "YRAKBQCGOHZF", "region": "XCCVLAIDMQYR", "postalCode": "cx47 4mz",
                       "primary": True, "country": "Sierra Leone"}],
        "phoneNumbers": [{"type": "work", "value": "10-040-1308", "primary": True},
                         {"type": "mobile", "value": "10-040-1309"}, {"type": "fax", "value": "10-040-1310"}],
        ENT: {"employeeNumber": "OXYYEGWVLTGW", "department": "ZYWTBPDFHIIP", "costCenter": "ASHTVSKANCGL",
              "organization": "DPQRRHJMBXZE", "division": "WXNFEJQDRAVI", "manager": {"value": "XYMKVVRYDIOO"}},
        "roles": [{"primary": True, "display": "MRONYWGFFHXQ", "value": "WDEIISGWWQBE", "type": "XVTUOHMYUFRL"}],
        "userType": "GZILLRZCFPNC", "nickName": "FOGSIQTKHIPG", "locale": "RJWNTUNNOHNZ",
        "timezone": "America/Guayaquil", "profileUrl": "BAPNQLJSRQGD", "externalId": "ext-1",
    }


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("body", "scim_type"), [
    (None, "invalidSyntax"),
    ([], "invalidSyntax"),
    ({"schemas": PATCH_OP}, "invalidSyntax"),
    ({"Operations": {"op": "add"}}, "invalidSyntax"),
    ({"Operations": ["replace"]}, "invalidSyntax"),
    (ops({"op": "update", "path": "title", "value": "x"}), "invalidSyntax"),
    (ops({"op": 1, "path": "title", "value": "x"}), "invalidSyntax"),
    (ops({"path": "title", "value": "x"}), "invalidSyntax"),
    (ops({"op": "replace", "path": "title"}), "invalidSyntax"),
    (ops({"op": "replace", "value": "not an object"}), "invalidSyntax"),
    (ops({"op": "remove"}), "noTarget"),
    (ops({"op": "replace", "path": "emails[type eq", "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": 5, "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": "favouriteColour", "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": "name.nick", "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": "emails[label eq \"x\"].value", "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": "title[value eq \"x\"]", "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": f"{ENT}:shoeSize", "value": "x"}), "invalidPath"),
    (ops({"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:shoeSize", "value": "x"}),
     "invalidPath"),
    (ops({"op": "replace", "value": {"favouriteColour": "x"}}), "invalidPath"),
    (ops({"op": "replace", "path": "id", "value": "other"}), "mutability"),
    (ops({"op": "remove", "path": "id"}), "mutability"),
    (ops({"op": "replace", "path": "meta.version", "value": "x"}), "mutability"),
    (ops({"op": "add", "path": "groups", "value": [{"value": "g1"}]}), "mutability"),
    (ops({"op": "replace", "value": {"id": "other"}}), "mutability"),
    (ops({"op": "remove", "path": "userName"}), "invalidValue"),
    (ops({"op": "replace", "path": "userName", "value": ""}), "invalidValue"),
    (ops({"op": "replace", "path": "userName", "value": None}), "invalidValue"),
    (ops({"op": "replace", "path": "displayName", "value": 5}), "invalidValue"),
    (ops({"op": "replace", "path": "name", "value": "John Doe"}), "invalidValue"),
    (ops({"op": "add", "path": "emails", "value": "x@y"}), "invalidValue"),
    (ops({"op": "replace", "path": f"{ENT}:manager", "value": 42}), "invalidValue"),
])
def test_errors(body: Any, scim_type: str) -> None:
    assert fails(make_user(), body).scim_type == scim_type


def test_wrong_type_detail_names_the_attribute() -> None:
    err = fails(make_user(), ops({"op": "replace", "path": f"{ENT}:department", "value": 7}))
    assert f"'{ENT}:department'" in err.detail
    err = fails(make_user(), ops({"op": "replace", "path": "name.givenName", "value": ["x"]}))
    assert "'name.givenName'" in err.detail


def test_group_display_name_cannot_be_removed() -> None:
    err = fails(make_group("a"), ops({"op": "remove", "path": "displayName"}), GROUP_RESOURCE)
    assert err.detail.startswith("displayName is required")


def test_group_member_without_value_is_invalid() -> None:
    body = ops({"op": "add", "path": "members", "value": [{"display": "nobody"}]})
    assert fails(make_group(), body, GROUP_RESOURCE).scim_type == "invalidValue"


def test_rename_then_remove_keeps_required_check() -> None:
    body = ops({"op": "remove", "path": "userName"}, {"op": "add", "path": "userName", "value": "n@x"})
    assert run(make_user(), body) == make_user(userName="n@x")


# ----------------------------------------------------------------------------- atomicity and API shape


def test_second_operation_failing_leaves_resource_unchanged() -> None:
    start = make_user()
    snapshot = copy.deepcopy(start)
    operations = parse_patch(ops({"op": "replace", "path": "title", "value": "CTO"},
                                 {"op": "replace", "path": "name.givenName", "value": "Jo"},
                                 {"op": "replace", "path": "active", "value": "perhaps"}), USER_RESOURCE)
    with pytest.raises(ScimError) as info:
        apply_patch(start, operations, USER_RESOURCE)
    assert info.value.scim_type == "invalidValue"
    assert start == snapshot


def test_parse_patch_returns_canonical_operations() -> None:
    parsed = parse_patch(ops({"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@b"},
                             {"op": "replace", "value": {"displayName": "D", "name.givenName": "G"}}),
                         USER_RESOURCE)
    assert parsed == [
        PatchOperation("replace", AttrPath("emails", "value", None, Compare(AttrPath("type"), "eq", "work")), "a@b"),
        PatchOperation("replace", AttrPath("displayName"), "D"),
        PatchOperation("replace", AttrPath("name", "givenName"), "G"),
    ]


def test_hand_built_operations_including_path_less() -> None:
    operations = [PatchOperation("replace", None, {"title": "T"}),
                  PatchOperation("add", AttrPath("nickName"), "N"),
                  PatchOperation("remove", AttrPath("displayName"))]
    assert apply_patch(make_user(), operations, USER_RESOURCE) == make_user(title="T", nickName="N",
                                                                            displayName=None)


def test_hand_built_path_under_a_reserved_urn_is_rejected() -> None:
    operation = PatchOperation("add", AttrPath("x", urn="urn:ietf:params:scim:api:messages:2.0:PatchOp"), "v")
    with pytest.raises(ScimError) as info:
        apply_patch(make_user(), [operation], USER_RESOURCE)
    assert info.value.scim_type == "invalidPath"


def test_untouched_values_are_shared_not_copied() -> None:
    start = make_user(phoneNumbers=[{"type": "work", "value": "1"}])
    result = run(start, E10_DEFAULT)
    assert result is not start
    assert result["phoneNumbers"] is start["phoneNumbers"]
    assert result["emails"] is start["emails"]


def test_empty_operations_list_is_rejected_but_applying_no_operations_is_a_no_op() -> None:
    assert fails(make_user(), ops()).scim_type == "invalidSyntax"
    assert apply_patch(make_user(), [], USER_RESOURCE) == make_user()
