"""DN spelling: the adapter's keys must not depend on how slapd chose to escape or case a DN."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.ldap import dn as dns


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("uid=a\\+b@x.org,ou=people,dc=example,dc=org", "UID=A\\2Bb@X.org, ou=People,DC=example,dc=ORG"),
        ("cn=Smith\\, John,ou=groups,dc=x", "cn=smith\\2c john,ou=groups,dc=x"),
        ("cn=caf\\C3\\A9,dc=x", "cn=CAFÉ,dc=x"),
        ("cn=\\ lead,dc=x", "cn=\\20lead,dc=x"),
    ],
)
def test_spellings_of_one_dn_normalize_alike(one: str, other: str) -> None:
    assert dns.normalize(one) == dns.normalize(other)


def test_rdn_escapes_what_a_dn_cannot_carry() -> None:
    assert dns.rdn("uid", "a+b,c@x.org") == "uid=a\\+b\\,c@x.org"
    assert dns.rdn("cn", "#1 ") == "cn=\\#1\\ "
    assert dns.first_value("cn=a\\+b\\,c,dc=x") == "a+b,c"


def test_parent_and_below() -> None:
    assert dns.parent("uid=a,ou=People,dc=x") == "ou=People,dc=x"
    assert dns.is_below(dns.normalize("uid=a,ou=People,dc=x"), dns.normalize("ou=people,dc=x"))
    assert not dns.is_below(dns.normalize("ou=people,dc=x"), dns.normalize("ou=people,dc=x"))
    assert not dns.is_below(dns.normalize("uid=a,ou=otherpeople,dc=x"), dns.normalize("ou=people,dc=x"))


@pytest.mark.parametrize("text", ["", "uid", "=a,dc=x", "cn=a\\"])
def test_not_a_dn(text: str) -> None:
    with pytest.raises(dns.DnError):
        dns.first_value(text)


@given(st.text(min_size=1, max_size=30).filter(lambda v: v.strip() == v and "\x00" not in v))
def test_any_value_survives_escaping(value: str) -> None:
    built = f"{dns.rdn('cn', value)},ou=groups,dc=example,dc=org"
    assert dns.first_value(built) == value
    assert dns.normalize(built) == dns.normalize(f"cn={dns.escape_value(value.lower())},ou=groups,dc=example,dc=org")
