"""Pure translations between canonical records and PostfixAdmin rows (no I/O).

* A mailbox's key is its address, lower-cased: Postfix and Dovecot look addresses up in
  lower case, so on PostgreSQL (case-sensitive ``varchar``) a mixed-case row would never
  receive mail.
* A distribution list's address is a function of its displayName (the tenant's list
  template and list domain around an encoding of the lower-cased name), and the name is read
  back from the address: PostfixAdmin's ``alias`` table has no column for a name (4.0 and
  older). The encoding keeps ``[a-z0-9_-]``, writes a single inner space as ``.`` and every
  other byte of the UTF-8 name as ``=xx``: ``"Sales Team"`` ↔ ``sales.team``,
  ``"R&D Zürich"`` ↔ ``r=26d.z=c3=bcrich``. Only case is lost, and the gateway gives the
  displayName back in the case it was sent.
* A list's members are the addresses in ``alias.goto`` (comma-separated) that are mailboxes;
  other targets (an outside address an administrator added) are kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.base import And, Compare, Filter, GroupRecord, Or, Rejected, UserRecord

MAX_ADDRESS = 255
"""Width of PostfixAdmin's address columns."""
MAX_NAME = 255
"""Width of ``mailbox.name``."""

_LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class Address:
    local_part: str
    domain: str

    @property
    def value(self) -> str:
        return f"{self.local_part}@{self.domain}"

    @property
    def maildir(self) -> str:
        """PostfixAdmin's maildir for a new mailbox (relative to the platform's mail root)."""
        return f"{self.domain}/{self.local_part}/"


def mailbox_address(value: Any) -> Address:
    """A userName as a mailbox address, lower-cased; Rejected (400) when it is not one."""
    if not isinstance(value, str) or not value.strip():
        raise Rejected("userName is required and must be the mailbox's mail address (local@domain)")
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not _DOMAIN.match(domain):
        raise Rejected(f"userName {value!r} is not a mail address (local@domain): PostfixAdmin mailboxes are addresses")
    if not _LOCAL_PART.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise Rejected(f"userName {value!r} has characters a mailbox address cannot hold (use letters, digits, . _ -)")
    if len(text) > MAX_ADDRESS:
        raise Rejected(f"userName {value!r} is longer than the {MAX_ADDRESS} characters PostfixAdmin stores")
    return Address(local, domain)


def display_name(value: Any) -> str:
    """The ``mailbox.name`` for a displayName (empty when there is none)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected("displayName must be a string")
    if len(value) > MAX_NAME:
        raise Rejected(f"displayName is longer than the {MAX_NAME} characters PostfixAdmin's mailbox.name holds")
    return value


def user_record(row: Mapping[str, Any]) -> UserRecord:
    """A mailbox row (username, name, active) as a record; the password never leaves the database."""
    address = str(row["username"])
    attributes: dict[str, Any] = {"userName": address, "active": bool(row["active"])}
    if row.get("name"):
        attributes["displayName"] = str(row["name"])
    return UserRecord(key=address, attributes=attributes)


# --- distribution lists -----------------------------------------------------------------


def encode_name(name: str) -> str:
    """The local-part form of a list's displayName (see the module docstring); reversible up to case."""
    text = name.lower()
    out: list[str] = []
    for i, char in enumerate(text):
        if char in _KEEP:
            out.append(char)
        elif char == " " and 0 < i < len(text) - 1 and text[i - 1] != " " and text[i + 1] != " ":
            out.append(".")
        else:
            out.extend(f"={byte:02x}" for byte in char.encode())
    return "".join(out)


def decode_name(local: str) -> str | None:
    """The lower-cased displayName ``encode_name`` made ``local`` from; None if it made no such thing."""
    raw = bytearray()
    i = 0
    while i < len(local):
        char = local[i]
        if char == "=":
            pair = local[i + 1:i + 3]
            if len(pair) != 2 or any(c not in "0123456789abcdef" for c in pair):
                return None
            raw.append(int(pair, 16))
            i += 3
            continue
        if char == ".":
            raw.append(0x20)
        elif char in _KEEP:
            raw.append(ord(char))
        else:
            return None
        i += 1
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        return None
    return name if encode_name(name) == local else None


class ListAddresses:
    """The tenant's list addresses: ``template`` (``{slug}``, ``{domain}``) in ``domain``, both ways."""

    def __init__(self, template: str, domain: str | None) -> None:
        self.domain = domain.lower() if domain else None
        filled = template.replace("{domain}", self.domain or "")
        self.prefix, _, self.suffix = filled.partition("{slug}")
        if "{slug}" not in template or "{" in self.prefix + self.suffix or self.suffix.count("@") != 1:
            raise ValueError("list_address_template must hold {slug} before the @ and yield one local@domain address")
        self.list_domain = self.suffix.partition("@")[2]

    def address(self, name: Any) -> str:
        """The list address for displayName ``name``; Rejected when it cannot be one."""
        if not isinstance(name, str) or not name.strip():
            raise Rejected("a group needs a non-empty displayName")
        if self.domain is None:
            raise Rejected("distribution lists need a mail domain for their addresses: set the tenant's list_domain "
                           "(SCIM_GATEWAY_LIST_DOMAIN for the quick-start tenant)")
        address = f"{self.prefix}{encode_name(name)}{self.suffix}"
        if len(address) > MAX_ADDRESS:
            raise Rejected(f"the list address for displayName {name!r} would be longer than {MAX_ADDRESS} characters; "
                           "choose a shorter name")
        return address

    def name(self, address: str) -> str | None:
        """The (lower-cased) displayName of the list at ``address``; None for an address not made by ``address``."""
        if not (address.startswith(self.prefix) and address.endswith(self.suffix)):
            return None
        middle = address[len(self.prefix):len(address) - len(self.suffix)]
        return decode_name(middle) if middle else None

    def like_pattern(self) -> str:
        """A LIKE pattern (``\\`` escapes) matching every address of this template."""
        return f"{like_escape(self.prefix)}%{like_escape(self.suffix)}"


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def split_goto(goto: str | None) -> list[str]:
    """The targets of an ``alias.goto``, in order, without blanks."""
    return [part.strip() for part in (goto or "").split(",") if part.strip()]


def join_goto(targets: Iterable[str]) -> str:
    """A ``goto`` value; an empty string for no target, which Postfix treats as no alias at all (mail refused)."""
    return ",".join(dict.fromkeys(targets))


def group_record(addresses: ListAddresses, address: str, goto: str | None, mailboxes: set[str]) -> GroupRecord:
    members = [t.lower() for t in split_goto(goto) if t.lower() in mailboxes]
    name = addresses.name(address)
    attributes = {"displayName": name} if name is not None else {"displayName": address}
    return GroupRecord(key=address, attributes=attributes, member_keys=list(dict.fromkeys(members)))


def replace_target(goto: str, old: str, new: str | None) -> str:
    """``goto`` with ``old`` (case-insensitively) replaced by ``new``, or removed when ``new`` is None."""
    out: list[str] = []
    for target in split_goto(goto):
        if target.lower() == old:
            if new is not None:
                out.append(new)
        else:
            out.append(target)
    return join_goto(out)


# --- filters ----------------------------------------------------------------------------

USER_COLUMNS = {"username": "username", "active": "active"}


def user_condition(expr: Filter | None, args: list[Any]) -> str:
    """SQL for a pushed-down user filter (``eq`` on userName/active, ``and``, ``or``); parameters appended
    to ``args`` as ``%s``."""
    if expr is None:
        return "TRUE"
    if isinstance(expr, And | Or):
        left = user_condition(expr.left, args)
        right = user_condition(expr.right, args)
        return f"({left} {'AND' if isinstance(expr, And) else 'OR'} {right})"
    if isinstance(expr, Compare) and expr.op == "eq" and expr.path.sub_attr is None and expr.path.value_filter is None:
        column = USER_COLUMNS.get(expr.path.attr.lower())
        if column == "username":
            if not isinstance(expr.value, str):
                return "FALSE"
            args.append(expr.value.strip().lower())
            return "username = %s"
        if column == "active":
            if not isinstance(expr.value, bool):
                return "FALSE"
            args.append(expr.value)
            return "active = %s"
    raise Rejected("PostfixAdmin can only look mailboxes up by userName or active (eq)", scim_type="invalidFilter")


def group_names(expr: Filter | None) -> list[Any] | None:
    """The displayNames a pushed-down group filter asks for (an ``or`` of ``eq``); None for every list.

    An ``and`` of two names matches at most the one list both name.
    """
    if expr is None:
        return None
    if isinstance(expr, Or):
        left, right = group_names(expr.left), group_names(expr.right)
        return None if left is None or right is None else left + right
    if isinstance(expr, And):
        left, right = group_names(expr.left), group_names(expr.right)
        if left is None or right is None:
            return left if right is None else right
        folded = {str(n).lower() for n in right}
        return [n for n in left if str(n).lower() in folded]
    if (isinstance(expr, Compare) and expr.op == "eq" and expr.path.attr.lower() == "displayname"
            and expr.path.sub_attr is None):
        return [expr.value]
    raise Rejected("PostfixAdmin can only look lists up by displayName (eq)", scim_type="invalidFilter")


def unique(keys: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(k.lower() for k in keys))
