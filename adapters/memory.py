"""An in-memory backend that behaves like a small mail platform.

It owns what a mail-admin API typically stores (address, status, first/last/display
name, lists with member addresses) so the gateway exercises the same owned/shadow split
as with a real backend. Lookups by address are O(1); listing is O(page).

Mailboxes are kept as orjson blobs, not attribute dicts: a fraction of the memory with
100k users, nothing for the cyclic GC to walk, and decoding on read is the copy a caller
needs anyway. Lists stay as records: they are few, and member edits change them in place.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import Field

from adapters.base import (
    AlreadyExists,
    Attributes,
    Capabilities,
    GroupRecord,
    NotFound,
    Page,
    Rejected,
    UserRecord,
)
from adapters.plugins import BackendContext, BackendPlugin, BackendSettingsModel
from adapters.records import record_filter, set_dotted
from gateway.scim.filter_ast import Compare, Filter


def _clone(value: Any) -> Any:
    """A deep copy of JSON data: several times faster than copy.deepcopy."""
    return orjson.loads(orjson.dumps(value))


def _pack(attributes: Attributes) -> bytes:
    # orjson hands back its whole write buffer (4 KiB or more, whatever the length): keep
    # a copy sized to the content.
    return bytes(memoryview(orjson.dumps(attributes)))


def _user(key: str, blob: bytes) -> UserRecord:
    return UserRecord(key, orjson.loads(blob))


USER_ATTRIBUTES = frozenset({"userName", "active", "name.givenName", "name.familyName", "displayName"})


class MemoryAdapter:
    """Adapter over plain dicts; a fresh instance is an empty platform."""

    name = "memory"

    def __init__(self, *, max_page_size: int = 1000) -> None:
        self.capabilities = Capabilities(
            user_attributes=USER_ATTRIBUTES,
            user_filterable=frozenset({"userName", "displayName", "name.givenName", "name.familyName"}),
            groups=True,
            group_attributes=frozenset({"displayName", "members"}),
            group_filterable=frozenset({"displayName"}),
            max_page_size=max_page_size,
        )
        self._users: dict[str, bytes] = {}
        """Mailbox attributes as orjson, by lower-cased address, in creation order."""
        self._groups: dict[str, GroupRecord] = {}
        self._group_by_name: dict[str, str] = {}
        self._group_ids = itertools.count(1)
        self.calls: dict[str, int] = {}

    def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # Users --------------------------------------------------------------------------

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        self._count("find_users")
        if isinstance(filter, Compare) and filter.op == "eq" and filter.path.attr == "userName":
            key = str(filter.value).lower() if filter.value is not None else ""
            found = self._users.get(key)
            items = [_user(key, found)] if found is not None and offset == 0 else []
            return Page(items[:limit], 1 if found is not None else 0)
        if filter is None:
            keys = list(itertools.islice(self._users, offset, offset + limit))
            return Page([_user(k, self._users[k]) for k in keys], len(self._users))
        selected = record_filter(filter, "User")
        matching = [k for k, blob in self._users.items() if selected(orjson.loads(blob))]
        page = matching[offset:offset + limit]
        return Page([_user(k, self._users[k]) for k in page], len(matching))

    async def get_user(self, key: str) -> UserRecord:
        self._count("get_user")
        try:
            return _user(key, self._users[key])
        except KeyError:
            raise NotFound(f"mailbox {key} not found") from None

    async def create_user(self, attributes: Attributes) -> UserRecord:
        self._count("create_user")
        user_name = attributes.get("userName")
        if not isinstance(user_name, str) or not user_name:
            raise Rejected("userName is required")
        key = user_name.lower()
        if key in self._users:
            raise AlreadyExists(key, f"mailbox {user_name} already exists")
        stored = {k: v for k, v in attributes.items() if v is not None}
        stored.setdefault("active", True)
        blob = self._users[key] = _pack(stored)
        return _user(key, blob)

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        key = record.key
        self._count("update_user")
        blob = self._users.get(key)
        if blob is None:
            raise NotFound(f"mailbox {key} not found")
        new_key = key
        new_name = changes.get("userName")
        if isinstance(new_name, str) and new_name.lower() != key:
            new_key = new_name.lower()
            if new_key in self._users:
                raise AlreadyExists(new_key, f"mailbox {new_name} already exists")
        updated = orjson.loads(blob)
        for dotted, value in changes.items():
            set_dotted(updated, dotted, value)
        blob = _pack(updated)  # before any index changes: a value orjson refuses leaves all as it was
        if new_key != key:
            del self._users[key]
            for group in self._groups.values():
                group.member_keys = [new_key if m == key else m for m in group.member_keys]
        self._users[new_key] = blob
        return _user(new_key, blob)

    async def delete_user(self, record: UserRecord) -> None:
        key = record.key
        self._count("delete_user")
        if self._users.pop(key, None) is None:
            raise NotFound(f"mailbox {key} not found")
        for group in self._groups.values():
            if key in group.member_keys:
                group.member_keys = [m for m in group.member_keys if m != key]

    # Groups -------------------------------------------------------------------------

    def _copy_group(self, group: GroupRecord) -> GroupRecord:
        return GroupRecord(group.key, _clone(group.attributes), list(group.member_keys))

    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        self._count("find_groups")
        if isinstance(filter, Compare) and filter.op == "eq" and filter.path.attr == "displayName":
            key = self._group_by_name.get(str(filter.value).lower())
            items = [self._copy_group(self._groups[key])] if key is not None and offset == 0 else []
            return Page(items[:limit], 1 if key is not None else 0)
        groups = list(self._groups.values())
        if filter is not None:
            selected = record_filter(filter, "Group")
            groups = [g for g in groups if selected(g.attributes)]
        return Page([self._copy_group(g) for g in groups[offset:offset + limit]], len(groups))

    async def get_group(self, key: str) -> GroupRecord:
        self._count("get_group")
        group = self._groups.get(key)
        if group is None:
            raise NotFound(f"list {key} not found")
        return self._copy_group(group)

    def _check_members(self, member_keys: Sequence[str]) -> None:
        missing = [m for m in member_keys if m not in self._users]
        if missing:
            raise Rejected(f"no mailbox for member(s) {', '.join(missing)}")

    async def create_group(self, attributes: Attributes, member_keys: Sequence[str]) -> GroupRecord:
        self._count("create_group")
        name = attributes.get("displayName")
        if not isinstance(name, str) or not name:
            raise Rejected("displayName is required")
        if name.lower() in self._group_by_name:
            raise AlreadyExists(self._group_by_name[name.lower()], f"list {name} already exists")
        self._check_members(member_keys)
        key = f"list-{next(self._group_ids)}"
        group = GroupRecord(key, _clone(attributes), list(dict.fromkeys(member_keys)))
        self._groups[key] = group
        self._group_by_name[name.lower()] = key
        return self._copy_group(group)

    async def update_group(self, record: GroupRecord, changes: Attributes) -> GroupRecord:
        key = record.key
        self._count("update_group")
        group = self._groups.get(key)
        if group is None:
            raise NotFound(f"list {key} not found")
        new_name = changes.get("displayName")
        old_name = group.attributes.get("displayName", "")
        if isinstance(new_name, str) and new_name.lower() != str(old_name).lower():
            if new_name.lower() in self._group_by_name:
                raise AlreadyExists(self._group_by_name[new_name.lower()], f"list {new_name} already exists")
            self._group_by_name.pop(str(old_name).lower(), None)
            self._group_by_name[new_name.lower()] = key
        for dotted, value in changes.items():
            set_dotted(group.attributes, dotted, _clone(value))
        return self._copy_group(group)

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        key = record.key
        self._count("add_members")
        group = self._groups.get(key)
        if group is None:
            raise NotFound(f"list {key} not found")
        self._check_members(member_keys)
        present = set(group.member_keys)
        group.member_keys.extend(m for m in dict.fromkeys(member_keys) if m not in present)

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        key = record.key
        self._count("remove_members")
        group = self._groups.get(key)
        if group is None:
            raise NotFound(f"list {key} not found")
        gone = set(member_keys)
        group.member_keys = [m for m in group.member_keys if m not in gone]

    async def delete_group(self, record: GroupRecord) -> None:
        key = record.key
        self._count("delete_group")
        group = self._groups.pop(key, None)
        if group is None:
            raise NotFound(f"list {key} not found")
        self._group_by_name.pop(str(group.attributes.get("displayName", "")).lower(), None)


class MemorySettings(BackendSettingsModel):
    max_page_size: int = Field(default=1000, ge=1, description="Largest page one listing call returns.")


def _create(settings: MemorySettings, context: BackendContext) -> MemoryAdapter:
    return MemoryAdapter(max_page_size=settings.max_page_size)


PLUGIN = BackendPlugin(
    name="memory", summary="An in-process mail platform for trials and tests; its data is lost on restart.",
    settings=MemorySettings, create=_create, keeps_data=False,
)
