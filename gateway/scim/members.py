"""Group membership PATCHes applied to member ids directly.

Entra keeps group membership in sync with PATCHes that only add or remove members by id.
Applied through :func:`gateway.scim.patch.apply_patch` they cost time in proportion to the
group's size several times over (the whole member list is rendered, copied and filtered); at
thousands of members that dominated each request. :func:`member_edits` recognises those
PATCHes and :func:`apply_member_edits` gives the same member list as ``apply_patch`` would.
Anything else, including every shape whose validation could fail, returns None from
:func:`member_edits` and takes the general path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.scim.filter_ast import AttrPath, Compare
from gateway.scim.patch import PatchOperation
from gateway.scim.schema import GROUP_SCHEMA

# What a member element may carry; others are dropped as unknown by the general path too.
_MEMBER_KEYS = frozenset({"value", "$ref", "type", "display"})


@dataclass(frozen=True)
class MemberEdit:
    op: Literal["add", "remove", "remove_folded", "replace"]
    """"remove_folded": ids compared case-insensitively, as a ``members[value eq …]`` filter does."""
    ids: tuple[str, ...] | None = None
    """None with "remove": every member."""


def _is_members(path: AttrPath | None) -> bool:
    return (path is not None and path.attr.lower() == "members" and path.sub_attr is None
            and (path.urn is None or path.urn.lower() == GROUP_SCHEMA.lower()))


def _member_id(item: Any) -> str | None:
    """The id of a plain member element; None for anything the general path must validate."""
    if not isinstance(item, dict):
        return None
    value = item.get("value")
    if not isinstance(value, str) or not value:
        return None
    for key, other in item.items():
        if not isinstance(key, str) or (key.lower() in _MEMBER_KEYS and key not in _MEMBER_KEYS):
            return None  # "Value" and the like: left to the general path's case-insensitive reading
        if key in _MEMBER_KEYS and other is not None and not isinstance(other, str):
            return None
    return value


def _ids(value: Any, *, bare_strings: bool) -> tuple[str, ...] | None:
    items = value if isinstance(value, list) else [value]
    ids: list[str] = []
    for item in items:
        if item is None:
            continue
        found = item if bare_strings and isinstance(item, str) else _member_id(item)
        if found is None:
            return None
        ids.append(found)
    return tuple(ids)


def member_edits(ops: Sequence[PatchOperation]) -> list[MemberEdit] | None:
    """The operations as member-id edits when each one only adds, removes or sets members by id."""
    edits: list[MemberEdit] = []
    for op in ops:
        path = op.path
        if path is None or not _is_members(path):
            return None
        if path.value_filter is not None:
            flt = path.value_filter
            if (op.op != "remove" or not isinstance(flt, Compare) or flt.op != "eq"
                    or flt.path != AttrPath("value") or not isinstance(flt.value, str)):
                return None
            edits.append(MemberEdit("remove_folded", (flt.value,)))
            continue
        if op.op == "remove":
            if op.value is None:
                edits.append(MemberEdit("remove"))
                continue
            ids = _ids(op.value, bare_strings=True)
        elif isinstance(op.value, list | dict):
            ids = _ids(op.value, bare_strings=False)
        else:
            return None
        if ids is None:
            return None
        edits.append(MemberEdit(op.op, ids))
    return edits


def apply_member_edits(current: Sequence[str], edits: Sequence[MemberEdit]) -> list[str]:
    """The member ids after ``edits``, in the order ``apply_patch`` would leave them."""
    members = dict.fromkeys(current)
    for edit in edits:
        if edit.op == "replace":
            members = dict.fromkeys(edit.ids or ())
        elif edit.op == "add":
            for member_id in edit.ids or ():
                members.setdefault(member_id)
        elif edit.ids is None:
            members.clear()
        elif edit.op == "remove":
            for member_id in edit.ids:
                members.pop(member_id, None)
        else:
            folded = {member_id.lower() for member_id in edit.ids}
            members = dict.fromkeys(m for m in members if m.lower() not in folded)
    return list(members)
