"""Pure translations between canonical records and the Cleanmail wire format."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from adapters.base import GroupRecord, Rejected, UserRecord
from gateway.scim.filter_ast import And, Compare, Filter, Or

Conjunction = dict[str, Any]
"""Canonical attribute name → required value; all must hold."""

# SCIM attribute names are case-insensitive; these map the folded form to ours.
USER_FILTERS = {"username": "userName", "active": "active"}
GROUP_FILTERS = {"displayname": "displayName"}
CASE_INSENSITIVE = frozenset({"userName", "displayName"})
MAX_LOCAL_PART = 64
MAX_CONJUNCTIONS = 64
"""One call per term: a filter that expands to more is refused, never sent as thousands of calls."""


def to_conjunctions(expr: Filter | None, allowed: Mapping[str, str]) -> list[Conjunction]:
    """Rewrite an ``eq``/``and``/``or`` filter as an OR of ANDs (disjunctive normal form).

    Contradictions (``userName eq "a" and userName eq "b"``) drop out, so an empty
    list means "matches nothing" and ``[{}]`` means "matches everything".
    """
    if expr is None:
        return [{}]
    if isinstance(expr, Compare):
        name = expr.path.attr.lower() + (f".{expr.path.sub_attr.lower()}" if expr.path.sub_attr else "")
        if expr.op != "eq" or name not in allowed or expr.path.value_filter is not None:
            raise Rejected(f"Cleanmail cannot evaluate the filter on {name!r} {expr.op}", scim_type="invalidFilter")
        return [{allowed[name]: expr.value}]
    if isinstance(expr, Or):
        terms = to_conjunctions(expr.left, allowed) + to_conjunctions(expr.right, allowed)
        if len(terms) > MAX_CONJUNCTIONS:
            raise Rejected(f"the filter expands to more than {MAX_CONJUNCTIONS} lookups on Cleanmail",
                           scim_type="invalidFilter")
        return terms
    if isinstance(expr, And):
        lefts, rights = to_conjunctions(expr.left, allowed), to_conjunctions(expr.right, allowed)
        if len(lefts) * len(rights) > MAX_CONJUNCTIONS:
            raise Rejected(f"the filter expands to more than {MAX_CONJUNCTIONS} lookups on Cleanmail",
                           scim_type="invalidFilter")
        merged: list[Conjunction] = []
        for left in lefts:
            for right in rights:
                both = _merge(left, right)
                if both is not None:
                    merged.append(both)
        return merged
    raise Rejected(f"Cleanmail cannot evaluate a {type(expr).__name__} filter", scim_type="invalidFilter")


def _merge(left: Conjunction, right: Conjunction) -> Conjunction | None:
    out = dict(left)
    for name, value in right.items():
        if name in out and not values_equal(name, out[name], value):
            return None
        out[name] = value
    return out


def values_equal(name: str, a: Any, b: Any) -> bool:
    if name in CASE_INSENSITIVE and isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b) and type(a) is type(b)


def wanted_status(value: Any) -> str | None:
    """The mailbox status an ``active eq value`` clause selects, None when nothing can match."""
    if value is True:
        return "active"
    if value is False:
        return "disabled"
    return None


# --- users --------------------------------------------------------------------------

_USER_FIELDS = {"name.givenName": "first_name", "name.familyName": "last_name", "displayName": "display_name"}


def flatten(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``{"name": {"givenName": x}}`` → ``{"name.givenName": x}``; dotted keys pass through."""
    flat: dict[str, Any] = {}
    for key, value in attributes.items():
        if key == "name" and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                flat[f"name.{sub}"] = sub_value
        else:
            flat[key] = value
    return flat


def mailbox_address(value: Any) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or not all(value.strip().split("@")):
        raise Rejected(f"userName {value!r} must be a mail address (local@domain)")
    return value.strip().lower()


def _text(path: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise Rejected(f"{path} must be a string")


def apply_user_changes(fields: dict[str, Any], changes: Mapping[str, Any]) -> str | None:
    """Write owned-attribute changes into mailbox ``fields``; return a new address if renamed."""
    new_address: str | None = None
    for path, value in changes.items():
        if path == "userName":
            new_address = mailbox_address(value)
        elif path == "active":
            if not isinstance(value, bool):
                raise Rejected("active must be a boolean")
            fields["status"] = "active" if value else "disabled"
        elif path == "name" and value is None:
            fields["first_name"] = fields["last_name"] = None
        elif path in _USER_FIELDS:
            fields[_USER_FIELDS[path]] = _text(path, value)
        else:
            raise Rejected(f"Cleanmail does not store {path!r}", scim_type="invalidPath")
    return new_address


def new_mailbox(attributes: Mapping[str, Any]) -> dict[str, Any]:
    flat = flatten(attributes)
    address = mailbox_address(flat.pop("userName", None))
    fields: dict[str, Any] = {"status": "active"}
    apply_user_changes(fields, flat)
    return {"address": address, **fields}


def user_record(row: Mapping[str, Any]) -> UserRecord:
    address = str(row["address"])
    attributes: dict[str, Any] = {"userName": address, "active": row.get("status") == "active"}
    name = {
        sub: row[field] for sub, field in (("givenName", "first_name"), ("familyName", "last_name")) if row.get(field)
    }
    if name:
        attributes["name"] = name
    if row.get("display_name"):
        attributes["displayName"] = row["display_name"]
    return UserRecord(key=address, attributes=attributes, state=dict(row))


def editable_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a full-replace PUT must send back so nothing is cleared by omission."""
    return {k: v for k, v in row.items() if k not in ("id", "address", "domain")}


# --- groups -------------------------------------------------------------------------


def slugify(text: str) -> str:
    """A mail-safe local part for a group name: ``"Zürich Sales"`` → ``zurich-sales``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:MAX_LOCAL_PART].strip("-")
    if slug:
        return slug
    # Names with no Latin letters still need a stable, distinct address.
    return "group-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def display_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Rejected("a group needs a non-empty displayName")
    return value


def group_record(row: Mapping[str, Any]) -> GroupRecord:
    attributes: dict[str, Any] = {}
    if row.get("display_name"):
        attributes["displayName"] = row["display_name"]
    return GroupRecord(key=str(row["address"]), attributes=attributes, member_keys=list(row.get("members", [])),
                       state=dict(row))
