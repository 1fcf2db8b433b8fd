"""PostfixAdmin's pure mapping: mailbox addresses, list addresses made from names and back, goto lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import AttrPath, Compare, Or, Rejected
from adapters.postfixadmin.mapping import (
    ListAddresses,
    decode_name,
    encode_name,
    group_names,
    mailbox_address,
    replace_target,
    split_goto,
    user_condition,
)


def test_mailbox_addresses_are_lower_cased_with_postfixadmins_maildir() -> None:
    address = mailbox_address(" Joy.Young@Contoso.COM ")
    assert (address.value, address.local_part, address.domain) == ("joy.young@contoso.com", "joy.young", "contoso.com")
    assert address.maildir == "contoso.com/joy.young/"


@pytest.mark.parametrize("bad", ["", "joy", "@contoso.com", "joy@", "joy@localhost", "jo y@x.com", "a..b@x.com",
                                 "joy@contoso.com/../x", None, 42])
def test_what_is_not_a_mailbox_address_is_rejected(bad: object) -> None:
    with pytest.raises(Rejected):
        mailbox_address(bad)


@pytest.mark.parametrize(("name", "local"), [
    ("Sales Team", "sales.team"),
    ("R&D Zürich", "r=26d.z=c3=bcrich"),
    ("EMEA - Sales", "emea.-.sales"),
    ("a  b", "a=20=20b"),
    (" lead", "=20lead"),
    ("x.y+z=1", "x=2ey=2bz=3d1"),
])
def test_list_names_become_readable_local_parts(name: str, local: str) -> None:
    assert encode_name(name) == local
    assert decode_name(local) == name.lower()


@given(st.text(min_size=1, max_size=40))
def test_every_name_comes_back_from_its_address_but_for_case(name: str) -> None:
    local = encode_name(name)
    assert set(local) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-.=")
    assert decode_name(local) == name.lower()


@pytest.mark.parametrize("foreign", ["info+x", "a=zz", "=c3", "sales..team"])
def test_local_parts_no_name_makes_are_not_taken_for_one(foreign: str) -> None:
    assert decode_name(foreign) is None


def test_the_tenants_template_and_domain_frame_the_list_address() -> None:
    lists = ListAddresses("dl-{slug}@{domain}", "Lists.Example.org")
    assert lists.address("Sales Team") == "dl-sales.team@lists.example.org"
    assert lists.name("dl-sales.team@lists.example.org") == "sales team"
    assert lists.name("sales.team@lists.example.org") is None
    assert lists.like_pattern() == "dl-%@lists.example.org"
    with pytest.raises(Rejected, match="list_domain"):
        ListAddresses("{slug}@{domain}", None).address("Sales")
    with pytest.raises(Rejected, match="longer"):
        lists.address("ü" * 100)


def test_goto_edits_keep_outside_targets_and_order() -> None:
    goto = "a@x.com, B@x.com,partner@elsewhere.net"
    assert split_goto(goto) == ["a@x.com", "B@x.com", "partner@elsewhere.net"]
    assert replace_target(goto, "b@x.com", "c@x.com") == "a@x.com,c@x.com,partner@elsewhere.net"
    assert replace_target(goto, "b@x.com", None) == "a@x.com,partner@elsewhere.net"
    assert replace_target("b@x.com", "b@x.com", None) == ""


def test_filters_become_sql_on_the_lower_cased_address() -> None:
    args: list[object] = []
    flt = Or(Compare(AttrPath("userName"), "eq", "Joy@X.com"), Compare(AttrPath("active"), "eq", False))
    assert user_condition(flt, args) == "(username = %s OR active = %s)"
    assert args == ["joy@x.com", False]
    with pytest.raises(Rejected):
        user_condition(Compare(AttrPath("displayName"), "eq", "Joy"), [])
    assert group_names(Or(Compare(AttrPath("displayName"), "eq", "A"), Compare(AttrPath("displayName"), "eq", "B"))) \
        == ["A", "B"]
