"""Translations between the gateway's records and Modoboa's accounts and aliases."""

from __future__ import annotations

import re

import pytest

from adapters.base import AttrPath, Compare, Filter, Rejected
from adapters.contract.kit import eq
from adapters.modoboa.mapping import (
    LIST_MARKER,
    account_changes,
    group_record,
    list_body,
    new_account,
    random_password,
    user_record,
    wanted_names,
)
from gateway.scim.filter_ast import And, Or

PLACEHOLDER = "nobody@empty-list.invalid"


def test_a_create_without_password_gets_one_modoboas_validators_accept() -> None:
    body = new_account({"userName": "Ann.Lee@Example.COM", "active": True, "name": {"givenName": "Ann"}})
    assert body["username"] == "ann.lee@example.com"
    assert (body["role"], body["first_name"], body["last_name"]) == ("SimpleUsers", "Ann", "")
    password = body["password"]
    assert len(password) >= 8 and re.search(r"\d", password) and re.search("[a-z]", password)
    assert re.search("[A-Z]", password)
    assert random_password() != random_password()


def test_a_password_sent_by_the_scim_client_is_passed_through() -> None:
    assert new_account({"userName": "a@b.org", "password": "Okta-Sent-1"})["password"] == "Okta-Sent-1"


def test_changes_become_one_account_patch() -> None:
    assert account_changes({"userName": "New@B.org", "active": False, "name.givenName": None,
                            "name.familyName": "Lee"}) == {"username": "new@b.org", "is_active": False,
                                                           "first_name": "", "last_name": "Lee"}
    assert account_changes({"name": None}) == {"first_name": "", "last_name": ""}


@pytest.mark.parametrize("changes", [{"name.givenName": "x" * 151}, {"active": "yes"}, {"userName": "no-at"},
                                     {"emails": []}])
def test_what_modoboa_cannot_store_is_rejected_before_sending(changes: dict[str, object]) -> None:
    with pytest.raises(Rejected):
        account_changes(changes)


def test_an_account_reads_back_as_a_user() -> None:
    record = user_record({"pk": 4, "username": "ann@b.org", "first_name": "Ann", "last_name": "",
                          "is_active": False, "role": "SimpleUsers"})
    assert record.key == "ann@b.org"
    assert record.attributes == {"userName": "ann@b.org", "active": False, "name": {"givenName": "Ann"}}
    assert record.state["pk"] == 4


def test_an_empty_list_has_the_stand_in_and_is_disabled() -> None:
    assert list_body([], PLACEHOLDER) == {"recipients": [PLACEHOLDER], "enabled": False}
    assert list_body(["B@x.org", "b@x.org", "a@x.org"], PLACEHOLDER) == {"recipients": ["b@x.org", "a@x.org"],
                                                                        "enabled": True}


def test_a_list_reads_back_its_exact_name_and_members_without_the_stand_in() -> None:
    record = group_record({"pk": 2, "address": "sales@l.org", "description": LIST_MARKER + "Sales: EMEA ",
                           "recipients": [PLACEHOLDER], "enabled": False}, PLACEHOLDER)
    assert (record.key, record.attributes, record.member_keys) == ("sales@l.org", {"displayName": "Sales: EMEA "}, [])


def _or(*names: str) -> Filter:
    expr: Filter = eq("userName", names[0])
    for name in names[1:]:
        expr = Or(expr, eq("userName", name))
    return expr


def test_filters_become_the_names_to_look_up() -> None:
    assert wanted_names(None, "userName") is None
    assert wanted_names(_or("b@x.org", "A@x.org", "a@X.org"), "userName") == ["a@X.org", "b@x.org"]
    assert wanted_names(And(eq("userName", "a@x.org"), eq("userName", "b@x.org")), "userName") == []
    assert wanted_names(And(eq("userName", "a@x.org"), eq("userName", "A@X.ORG")), "userName") == ["a@x.org"]
    with pytest.raises(Rejected):
        wanted_names(Compare(AttrPath("userName", None), "co", "a"), "userName")
