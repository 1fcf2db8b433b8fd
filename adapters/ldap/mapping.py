"""Pure translations between directory entries and the gateway's records, under one layout.

Nothing here talks to the directory: ``Layout`` is a profile placed in a directory (its
containers, the group placeholder), and the functions turn SCIM-shaped attributes into the
LDAP values an entry should hold, entries into records, and pushed-down filters into LDAP
filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ldap3.utils.conv import escape_filter_chars

from adapters.base import And, Compare, Filter, GroupRecord, Or, Rejected, UserRecord
from adapters.ldap import dn as dns
from adapters.ldap.profiles import PERMANENTLY_LOCKED, Profile

Values = dict[str, list[str]]
"""LDAP attribute (lower-cased name) → values."""

LOCK_ATTRIBUTE = "pwdaccountlockedtime"


@dataclass(frozen=True)
class Layout:
    profile: Profile
    users_dn: str
    groups_dn: str
    placeholder_member: str
    """Member value of a group that has no real member (groupOfNames requires one)."""
    list_domain: str | None = None
    list_address_template: str = "{slug}@{domain}"
    users_key: str = field(init=False)
    placeholder_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "users_key", dns.normalize(self.users_dn))
        object.__setattr__(self, "placeholder_key", dns.normalize(self.placeholder_member))

    # --- what to ask the directory for ------------------------------------------------

    def user_attributes(self) -> list[str]:
        """Every attribute the adapter reads or rewrites on a mailbox."""
        p = self.profile
        names = [p.mail_attribute, p.rdn_attribute, *p.attribute_map.values(), *p.derived]
        names.append(p.status_attribute if p.disable == "status" else "pwdAccountLockedTime")
        return list(dict.fromkeys(names))

    def group_attributes(self) -> list[str]:
        p = self.profile
        names = [p.group_name_attribute, p.member_attribute]
        if p.group_mail_attribute:
            names.append(p.group_mail_attribute)
        return names

    def user_class_filter(self) -> str:
        return "".join(f"(objectClass={escape_filter_chars(c)})" for c in self.profile.user_object_classes)

    def group_class_filter(self) -> str:
        return f"(objectClass={escape_filter_chars(self.profile.group_object_classes[0])})"


# --- users ---------------------------------------------------------------------------


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _get(attributes: Mapping[str, Any], path: str) -> Any:
    head, _, tail = path.partition(".")
    value = attributes.get(head)
    if not tail:
        return value
    return value.get(tail) if isinstance(value, dict) else None


def template_fields(attributes: Mapping[str, Any]) -> dict[str, str]:
    """The values a profile's templates may use, from SCIM-shaped attributes."""
    mail = str(attributes.get("userName") or "")
    local_part, _, domain = mail.rpartition("@") if "@" in mail else (mail, "", "")
    given = _string(_get(attributes, "name.givenName")) or ""
    family = _string(_get(attributes, "name.familyName")) or ""
    display = _string(attributes.get("displayName")) or " ".join(p for p in (given, family) if p) or mail
    return {"mail": mail, "local_part": local_part, "domain": domain, "display_name": display,
            "given_name": given, "family_name": family}


def user_name(attributes: Mapping[str, Any]) -> str:
    name = _string(attributes.get("userName"))
    if name is None:
        raise Rejected("userName (the mailbox address) is required")
    return name


def rdn_value(layout: Layout, attributes: Mapping[str, Any]) -> str:
    value = layout.profile.rdn_template.format(**template_fields(attributes)).strip()
    if not value:
        raise Rejected(f"cannot name the entry: {layout.profile.user_dn_template!r} gives an empty value")
    return value


def user_dn(layout: Layout, attributes: Mapping[str, Any], container: str | None = None) -> str:
    rdn = dns.rdn(layout.profile.rdn_attribute, rdn_value(layout, attributes))
    return f"{rdn},{container or layout.users_dn}"


def user_values(layout: Layout, attributes: Mapping[str, Any]) -> Values:
    """What the managed attributes of a mailbox with these SCIM attributes hold (RDN and status included)."""
    p = layout.profile
    fields = template_fields(attributes)
    values: Values = {p.rdn_attribute.lower(): [rdn_value(layout, attributes)], p.mail_attribute.lower(): [
        user_name(attributes)]}
    for path, target in p.attribute_map.items():
        value = _get(attributes, path)
        if value is not None and not isinstance(value, str):
            raise Rejected(f"{path} must be a string")
        fallback = p.fallbacks.get(target)
        if _string(value) is None and fallback is not None:
            value = fallback.format(**fields)
        values[target.lower()] = [value] if _string(value) is not None else []
    for target, template in p.derived.items():
        rendered = template.format(**fields).strip()
        values[target.lower()] = [rendered] if rendered else []
    if p.disable == "status":
        active = attributes.get("active", True) is not False
        values[p.status_attribute.lower()] = [p.status_active if active else p.status_disabled]
    return values


def is_active(layout: Layout, values: Values) -> bool:
    p = layout.profile
    if p.disable == "status":
        return any(v.lower() == p.status_active.lower() for v in values.get(p.status_attribute.lower(), []))
    return PERMANENTLY_LOCKED not in values.get(LOCK_ATTRIBUTE, [])


def user_scim(layout: Layout, values: Values) -> dict[str, Any]:
    """SCIM-shaped owned attributes of an entry (fallback values read back as absent)."""
    p = layout.profile
    mails = values.get(p.mail_attribute.lower(), [])
    attributes: dict[str, Any] = {"userName": mails[0] if mails else "", "active": is_active(layout, values)}
    read: dict[str, str] = {}
    for path, target in p.attribute_map.items():
        stored = values.get(target.lower(), [])
        if stored:
            read[path] = stored[0]
    for path, target in p.attribute_map.items():
        fallback = p.fallbacks.get(target)
        if fallback is not None and path in read:
            others = _nest({"userName": attributes["userName"], **{k: v for k, v in read.items() if k != path}})
            if read[path] == fallback.format(**template_fields(others)):
                del read[path]
    attributes.update(_nest(read))
    return attributes


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        head, _, tail = path.partition(".")
        if tail:
            nested.setdefault(head, {})[tail] = value
        else:
            nested[head] = value
    return nested


@dataclass
class UserState:
    dn: str
    """As the directory spells it."""
    values: Values


def user_record(layout: Layout, dn: str, values: Values) -> UserRecord:
    return UserRecord(dns.normalize(dn), user_scim(layout, values), UserState(dn, values))


def with_changes(attributes: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` after the gateway's dotted-path ``changes`` (None clears)."""
    result: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in attributes.items()}
    for path, value in changes.items():
        head, _, tail = path.partition(".")
        if not tail:
            if value is None:
                result.pop(head, None)
            else:
                result[head] = value
            continue
        inner = result.get(head)
        if not isinstance(inner, dict):
            inner = result[head] = {}
        if value is None:
            inner.pop(tail, None)
        else:
            inner[tail] = value
    return result


def replacements(current: Values, wanted: Values, skip: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Attribute → new values for every managed attribute whose values change (``[]`` removes it)."""
    return {name: values for name, values in wanted.items()
            if name not in skip and values != current.get(name, [])}


# --- groups --------------------------------------------------------------------------


@dataclass
class GroupState:
    dn: str
    members: list[str]
    """Member values as read, in the directory's spelling (placeholder included)."""


def group_record(layout: Layout, dn: str, values: Values) -> GroupRecord:
    members = values.get(layout.profile.member_attribute.lower(), [])
    keys: dict[str, None] = {}
    for member in members:
        try:
            key = dns.normalize(member)
        except dns.DnError:
            continue
        if key != layout.placeholder_key and dns.is_below(key, layout.users_key):
            keys[key] = None
    return GroupRecord(dns.normalize(dn), {"displayName": dns.first_value(dn)}, list(keys), GroupState(dn, members))


def group_name(attributes: Mapping[str, Any]) -> str:
    name = _string(attributes.get("displayName"))
    if name is None:
        raise Rejected("a group needs a non-empty displayName")
    return name


def group_dn(layout: Layout, name: str, container: str | None = None) -> str:
    return f"{dns.rdn(layout.profile.group_name_attribute, name)},{container or layout.groups_dn}"


# --- filters -------------------------------------------------------------------------


def ldap_filter(flt: Filter | None, attribute_of: Mapping[str, str]) -> str:
    """An LDAP filter selecting at least what ``flt`` selects (eq on ``attribute_of``'s paths, and, or).

    Anything else becomes "match all": the gateway evaluates the whole filter again.
    """
    if flt is None:
        return "(objectClass=*)"
    if isinstance(flt, Compare):
        path = flt.path.attr + (f".{flt.path.sub_attr}" if flt.path.sub_attr else "")
        target = attribute_of.get(path)
        if flt.op != "eq" or target is None or not isinstance(flt.value, str):
            return "(objectClass=*)"
        return f"({target}={escape_filter_chars(flt.value)})"
    if isinstance(flt, And):
        return f"(&{ldap_filter(flt.left, attribute_of)}{ldap_filter(flt.right, attribute_of)})"
    if isinstance(flt, Or):
        return f"(|{ldap_filter(flt.left, attribute_of)}{ldap_filter(flt.right, attribute_of)})"
    return "(objectClass=*)"
