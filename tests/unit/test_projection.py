"""attributes / excludedAttributes (RFC 7644 §3.9)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.scim.projection import project
from gateway.scim.query import parse_projection
from gateway.scim.schema import ENTERPRISE_SCHEMA, GROUP_RESOURCE, GROUP_SCHEMA, USER_RESOURCE, USER_SCHEMA

ENT = ENTERPRISE_SCHEMA
U = USER_RESOURCE


def user() -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA, ENT],
        "id": "u1",
        "externalId": "jy",
        "userName": "jane@contoso.com",
        "name": {"givenName": "Jane", "familyName": "Young"},
        "active": True,
        "emails": [
            {"value": "jane@contoso.com", "type": "work", "primary": True},
            {"value": "jy@home.example", "type": "home"},
        ],
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z", "version": 'W/"1"'},
        ENT: {"department": "Sales", "manager": {"value": "boss"}},
    }


def group() -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA],
        "id": "g1",
        "displayName": "Sales",
        "members": [{"value": "u1", "display": "Jane"}],
        "meta": {"resourceType": "Group"},
    }


def test_no_projection_returns_the_same_object() -> None:
    r = user()
    assert project(r, U, None, None) is r
    assert project(r, U, [], []) is r


def test_password_is_never_returned() -> None:
    r = {**user(), "password": "secret"}
    out = project(r, U, None, None)
    assert "password" not in out
    assert "password" in r  # input untouched
    assert project(r, U, ["password", "userName"], None) == {
        "schemas": [USER_SCHEMA], "id": "u1", "userName": "jane@contoso.com"
    }
    assert "password" not in project(r, U, None, ["userName"])


def test_attributes_keeps_only_those_plus_id_and_schemas() -> None:
    assert project(user(), U, ["userName"], None) == {
        "schemas": [USER_SCHEMA], "id": "u1", "userName": "jane@contoso.com"
    }


def test_attributes_are_case_insensitive_and_unknown_names_ignored() -> None:
    assert project(user(), U, ["USERNAME", "Active", "noSuchThing", "urn:x:y:z"], None) == {
        "schemas": [USER_SCHEMA], "id": "u1", "userName": "jane@contoso.com", "active": True
    }


def test_attributes_sub_attributes() -> None:
    out = project(user(), U, ["name.givenName", "emails.value", "meta.created"], None)
    assert out == {
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "name": {"givenName": "Jane"},
        "emails": [{"value": "jane@contoso.com"}, {"value": "jy@home.example"}],
        "meta": {"created": "2024-01-01T00:00:00Z"},
    }


def test_attributes_whole_attribute_wins_over_sub_attribute() -> None:
    out = project(user(), U, ["emails.type", "emails"], None)
    assert out["emails"] == user()["emails"]


def test_attributes_sub_attribute_missing_everywhere_drops_the_attribute() -> None:
    assert project(user(), U, ["emails.display"], None) == {"schemas": [USER_SCHEMA], "id": "u1"}


def test_attributes_extension_by_urn_and_by_short_name() -> None:
    assert project(user(), U, [f"{ENT}:department"], None) == {
        "schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: {"department": "Sales"}
    }
    assert project(user(), U, ["manager.value"], None) == {
        "schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: {"manager": {"value": "boss"}}
    }
    assert project(user(), U, [ENT.lower()], None) == {
        "schemas": [USER_SCHEMA, ENT], "id": "u1", ENT: user()[ENT]
    }


def test_attributes_core_urn_qualified() -> None:
    assert project(user(), U, [f"{USER_SCHEMA}:userName"], None) == {
        "schemas": [USER_SCHEMA], "id": "u1", "userName": "jane@contoso.com"
    }


def test_attributes_meta_only_when_asked() -> None:
    assert "meta" not in project(user(), U, ["userName"], None)
    assert project(user(), U, ["meta"], None)["meta"] == user()["meta"]


def test_attributes_id_only_as_in_the_legacy_entra_query() -> None:
    assert project(user(), U, ["id"], None) == {"schemas": [USER_SCHEMA], "id": "u1"}


def test_excluded_attributes() -> None:
    out = project(user(), U, None, ["emails", "Name"])
    expected = user()
    del expected["emails"], expected["name"]
    assert out == expected


def test_excluded_never_drops_always_returned() -> None:
    out = project(user(), U, None, ["id", "schemas"])
    assert out == user()


def test_excluded_meta_and_sub_attributes() -> None:
    out = project(user(), U, None, ["meta", "emails.primary", "name.familyName"])
    assert "meta" not in out
    assert out["emails"] == [
        {"value": "jane@contoso.com", "type": "work"},
        {"value": "jy@home.example", "type": "home"},
    ]
    assert out["name"] == {"givenName": "Jane"}


def test_excluded_extension_attributes_remove_empty_extension_and_its_urn() -> None:
    out = project(user(), U, None, [f"{ENT}:department", "manager"])
    assert ENT not in out
    assert out["schemas"] == [USER_SCHEMA]
    out = project(user(), U, None, [ENT])
    assert ENT not in out
    assert out["schemas"] == [USER_SCHEMA]
    out = project(user(), U, None, ["department"])
    assert out[ENT] == {"manager": {"value": "boss"}}
    assert out["schemas"] == [USER_SCHEMA, ENT]


def test_group_excluded_members_as_entra_asks() -> None:
    out = project(group(), GROUP_RESOURCE, None, ["members"])
    assert out == {"schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Sales", "meta": {"resourceType": "Group"}}


def test_group_attributes() -> None:
    assert project(group(), GROUP_RESOURCE, ["displayName"], None) == {
        "schemas": [GROUP_SCHEMA], "id": "g1", "displayName": "Sales"
    }
    assert project(group(), GROUP_RESOURCE, ["members.value"], None)["members"] == [{"value": "u1"}]


def test_attributes_and_excluded_together() -> None:
    out = project(user(), U, ["name", "emails"], ["name.familyName"])
    assert out == {
        "schemas": [USER_SCHEMA],
        "id": "u1",
        "name": {"givenName": "Jane"},
        "emails": user()["emails"],
    }


@pytest.mark.parametrize(
    ("attributes", "excluded"),
    [(["userName"], None), (None, ["emails.type", "department"]), (["name.givenName", ENT], ["manager"])],
)
def test_input_is_never_mutated(attributes: list[str] | None, excluded: list[str] | None) -> None:
    r = user()
    before = copy.deepcopy(r)
    project(r, U, attributes, excluded)
    assert r == before


def test_repeated_calls_use_the_same_plan_consistently() -> None:
    first = project(user(), U, ["userName", "emails.value"], None)
    second = project(user(), U, ["userName", "emails.value"], None)
    assert first == second
    assert project(group(), GROUP_RESOURCE, ["userName"], None) == {"schemas": [GROUP_SCHEMA], "id": "g1"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" , ,", None),
        ("userName", ["userName"]),
        (" userName , emails.value,,name ", ["userName", "emails.value", "name"]),
        (f"{ENT}:department", [f"{ENT}:department"]),
    ],
)
def test_parse_attribute_list(value: str | None, expected: list[str] | None) -> None:
    params = {} if value is None else {"attributes": value}
    parsed = parse_projection(params).attributes
    assert (list(parsed) if parsed is not None else None) == expected
