"""Profiles: how a directory lays out mailboxes and lists, as data an operator can pick and amend.

A profile says which object classes an entry gets, how its DN is formed, which LDAP
attribute holds each SCIM attribute, and how a mailbox is disabled. The settings pick one
(``profile = "generic"``) and may change any part of it (``attribute_map``,
``user_dn_template``, ``status_attribute`` …) without a code change.

Templates (DN template, derived and fallback values) may use ``{mail}``, ``{local_part}``,
``{domain}``, ``{display_name}`` (displayName, else "given family", else the address),
``{given_name}`` and ``{family_name}``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

DisableMethod = Literal["ppolicy", "status"]

TEMPLATE_FIELDS = frozenset({"mail", "local_part", "domain", "display_name", "given_name", "family_name"})

# Single-valued string attributes of the SCIM core User an operator may map to an LDAP attribute.
MAPPABLE_USER_PATHS = frozenset({
    "displayName", "nickName", "title", "userType", "preferredLanguage", "locale", "timezone", "profileUrl",
    "name.givenName", "name.familyName", "name.middleName", "name.honorificPrefix", "name.honorificSuffix",
    "name.formatted",
})

PERMANENTLY_LOCKED = "000001010000Z"
"""ppolicy's value of ``pwdAccountLockedTime`` for "locked until an administrator unlocks"."""


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    user_object_classes: tuple[str, ...]
    user_dn_template: str
    """The RDN of a new mailbox below users_dn, e.g. ``uid={mail}``."""
    mail_attribute: str = "mail"
    """Holds userName; searched case-insensitively; unique among mailboxes (the adapter checks)."""
    attribute_map: Mapping[str, str] = field(default_factory=dict)
    """SCIM path → LDAP attribute, for single-valued strings."""
    derived: Mapping[str, str] = field(default_factory=dict)
    """LDAP attribute → template, written on create and rewritten whenever its inputs change."""
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    """LDAP attribute → template written when the SCIM attribute mapped to it has no value (the schema
    requires one). A stored value equal to its fallback reads back as no value."""
    disable: DisableMethod = "ppolicy"
    status_attribute: str = "accountStatus"
    status_active: str = "active"
    status_disabled: str = "disabled"
    group_object_classes: tuple[str, ...] = ("groupOfNames",)
    group_name_attribute: str = "cn"
    """Holds the group's displayName and names the group in its DN."""
    member_attribute: str = "member"
    group_mail_attribute: str | None = None
    """Where a list's address goes (built from the tenant's list template); None stores none."""
    group_mail_object_classes: tuple[str, ...] = ()
    """Object classes added to a group that gets an address (e.g. one allowing that attribute)."""

    @property
    def rdn_attribute(self) -> str:
        return self.user_dn_template.partition("=")[0].strip()

    @property
    def rdn_template(self) -> str:
        return self.user_dn_template.partition("=")[2].strip()

    def owned_user_paths(self) -> frozenset[str]:
        return frozenset({"userName", "active", "password", *self.attribute_map})

    def check(self) -> None:
        """Raise ValueError naming what is inconsistent."""
        attribute, equals, value = self.user_dn_template.partition("=")
        if not equals or not attribute.strip().isidentifier() or not value.strip() or "," in value:
            raise ValueError(f"user_dn_template must be one RDN such as 'uid={{mail}}' (got {self.user_dn_template!r})")
        check_template(value.strip(), "user_dn_template")
        unknown = sorted(set(self.attribute_map) - MAPPABLE_USER_PATHS)
        if unknown:
            raise ValueError(f"attribute_map: SCIM attribute(s) {', '.join(unknown)} cannot be mapped "
                             f"(mappable: {', '.join(sorted(MAPPABLE_USER_PATHS))})")
        targets = [a.lower() for a in self.attribute_map.values()]
        if len(set(targets)) != len(targets):
            raise ValueError("attribute_map: two SCIM attributes map to the same LDAP attribute")
        managed = {self.mail_attribute.lower(), "objectclass", "userpassword", self.status_attribute.lower(),
                   "pwdaccountlockedtime"}
        for target in targets:
            if target in managed:
                raise ValueError(f"attribute_map: {target} is managed by the adapter itself")
        if self.rdn_attribute.lower() in targets:
            raise ValueError(f"user_dn_template: {self.rdn_attribute} is also in attribute_map; name entries by an "
                             "attribute the adapter derives (uid, mail, cn)")
        for attribute, template in {**self.derived, **self.fallbacks}.items():
            check_template(template, attribute)
        for attribute in self.fallbacks:
            if attribute.lower() not in targets:
                raise ValueError(f"fallback for {attribute}: no SCIM attribute maps to it")
        for attribute in self.derived:
            if attribute.lower() in {*targets, *managed, self.rdn_attribute.lower()}:
                raise ValueError(f"derived attribute {attribute} is also mapped, managed or the RDN's attribute")


def check_template(template: str, where: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ValueError(f"{where}: not a valid template ({err})") from None
    unknown = sorted(names - TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)} "
                         f"(known: {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))})")


GENERIC = Profile(
    name="generic",
    summary="inetOrgPerson mailboxes named uid=<address>, disabled with the ppolicy overlay's account lock; "
            "groupOfNames lists",
    user_object_classes=("inetOrgPerson",),
    user_dn_template="uid={mail}",
    attribute_map=_frozen({"name.givenName": "givenName", "name.familyName": "sn", "displayName": "displayName"}),
    derived=_frozen({"cn": "{display_name}"}),
    # inetOrgPerson requires sn: a mailbox created without a family name gets its address there.
    fallbacks=_frozen({"sn": "{mail}"}),
)

MAILUSER = replace(
    GENERIC,
    name="mailuser",
    summary="inetOrgPerson + a mailUser auxiliary class named mail=<address> with uid=<local part>, disabled "
            "through a status attribute (accountStatus: active/disabled, as iRedMail does); groupOfNames lists",
    user_object_classes=("inetOrgPerson", "mailUser"),
    user_dn_template="mail={mail}",
    derived=_frozen({"cn": "{display_name}", "uid": "{local_part}"}),
    disable="status",
)

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (GENERIC, MAILUSER)})
