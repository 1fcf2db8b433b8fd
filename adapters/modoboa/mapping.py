"""Pure translations between the gateway's records and Modoboa's accounts and aliases."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Mapping
from typing import Any

from adapters.base import And, Compare, Filter, GroupRecord, Or, Rejected, UserRecord

Row = dict[str, Any]

ROLE = "SimpleUsers"
"""The only kind of Modoboa account the gateway manages: a user with a mailbox."""
LIST_MARKER = "scim-mail-gateway list: "
"""Start of the description of every alias the gateway created; the group's displayName follows."""
MAX_LOCAL_PART = 64
MAX_NAME = 150
"""Modoboa's limit on first_name and last_name."""
MAX_LOOKUPS = 64
"""One Modoboa search per name: a filter naming more is refused, never sent as that many calls."""


def random_password() -> str:
    """A password Modoboa's validators accept (upper, lower, digit, long, not common); never kept."""
    return "Aa1-" + secrets.token_urlsafe(16)


def mailbox_address(value: Any) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or not all(value.strip().split("@")):
        raise Rejected(f"userName {value!r} must be a mail address (local@domain): Modoboa names mailboxes by "
                       "their address")
    return value.strip().lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


# --- filters ----------------------------------------------------------------------------------


def wanted_names(expr: Filter | None, attribute: str) -> list[str] | None:
    """The values an ``eq``/``and``/``or`` filter on ``attribute`` selects; None for no filter (all).

    Names compare case-insensitively; a contradiction (``a and b``) selects nothing.
    """
    if expr is None:
        return None
    folded = _names(expr, attribute.lower())
    if len(folded) > MAX_LOOKUPS:
        raise Rejected(f"the filter names more than {MAX_LOOKUPS} {attribute}s, each a lookup on Modoboa",
                       scim_type="invalidFilter")
    return sorted(folded.values(), key=str.lower)


def _names(expr: Filter, attribute: str) -> dict[str, str]:
    if isinstance(expr, Compare):
        name = expr.path.attr.lower()
        if expr.op != "eq" or name != attribute or expr.path.sub_attr or expr.path.value_filter is not None:
            raise Rejected(f"Modoboa cannot evaluate the filter on {name!r} {expr.op}", scim_type="invalidFilter")
        return {expr.value.lower(): expr.value} if isinstance(expr.value, str) else {}
    if isinstance(expr, Or):
        return {**_names(expr.left, attribute), **_names(expr.right, attribute)}
    if isinstance(expr, And):
        left, right = _names(expr.left, attribute), _names(expr.right, attribute)
        return {k: v for k, v in left.items() if k in right}
    raise Rejected(f"Modoboa cannot evaluate a {type(expr).__name__} filter", scim_type="invalidFilter")


# --- users ------------------------------------------------------------------------------------


def _name_part(path: str, value: Any) -> str:
    """A first or last name for Modoboa, which stores "" for none and refuses null."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected(f"{path} must be a string")
    if len(value) > MAX_NAME:
        raise Rejected(f"{path} is longer than Modoboa's {MAX_NAME} characters")
    return value


def account_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Owned-attribute changes (dotted paths) as the fields of an account PATCH."""
    body: dict[str, Any] = {}
    for path, value in changes.items():
        if path == "userName":
            body["username"] = mailbox_address(value)
        elif path == "active":
            if not isinstance(value, bool):
                raise Rejected("active must be a boolean")
            body["is_active"] = value
        elif path == "name" and value is None:
            body["first_name"] = body["last_name"] = ""
        elif path == "name" and isinstance(value, Mapping):
            body.update(account_changes({f"name.{k}": v for k, v in value.items()}))
        elif path == "name.givenName":
            body["first_name"] = _name_part(path, value)
        elif path == "name.familyName":
            body["last_name"] = _name_part(path, value)
        elif path == "password":
            if not isinstance(value, str) or not value:
                raise Rejected("password must be a non-empty string")
            body["password"] = value
        else:
            raise Rejected(f"Modoboa does not store {path!r}", scim_type="invalidPath")
    return body


def new_account(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``POST /accounts/``: a SimpleUsers account with a mailbox on the domain's quota."""
    fields = dict(attributes)
    address = mailbox_address(fields.pop("userName", None))
    body: dict[str, Any] = {"username": address, "role": ROLE, "first_name": "", "last_name": "",
                            "is_active": True, "mailbox": {"use_domain_quota": True}}
    body.update(account_changes(fields))
    if "password" not in body:
        # Entra sends no password: the mailbox gets one nobody knows, until an admin sets one.
        body["password"] = random_password()
    return body


def user_record(row: Mapping[str, Any]) -> UserRecord:
    address = str(row["username"]).lower()
    attributes: dict[str, Any] = {"userName": address, "active": bool(row.get("is_active"))}
    name = {sub: row[field] for sub, field in (("givenName", "first_name"), ("familyName", "last_name"))
            if row.get(field)}
    if name:
        attributes["name"] = name
    return UserRecord(key=address, attributes=attributes, state=dict(row))


def is_managed_account(row: Mapping[str, Any]) -> bool:
    return row.get("role") == ROLE


# --- groups -----------------------------------------------------------------------------------


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


def list_description(name: str) -> str:
    return LIST_MARKER + name


def is_gateway_list(row: Mapping[str, Any]) -> bool:
    return str(row.get("description") or "").startswith(LIST_MARKER)


def members_of(row: Mapping[str, Any], placeholder: str) -> list[str]:
    """The list's members: its recipients without the stand-in of an empty list."""
    return [str(r).lower() for r in row.get("recipients") or [] if str(r).lower() != placeholder]


def list_body(members: list[str], placeholder: str) -> dict[str, Any]:
    """Recipients and state of a list, always sent together (Modoboa fails a PATCH without recipients).

    Modoboa refuses an alias without recipients, so an empty list keeps one stand-in
    recipient and is disabled: Postfix then ignores it, and nothing reaches the stand-in.
    """
    unique = list(dict.fromkeys(m.lower() for m in members))
    return {"recipients": unique or [placeholder], "enabled": bool(unique)}


def group_record(row: Mapping[str, Any], placeholder: str) -> GroupRecord:
    description = str(row.get("description") or "")
    name = description[len(LIST_MARKER):] if description.startswith(LIST_MARKER) else description
    return GroupRecord(key=str(row["address"]).lower(), attributes={"displayName": name} if name else {},
                       member_keys=members_of(row, placeholder), state=dict(row))
