"""The two kinds of resource, described for the one provisioning pipeline.

Everything that differs between Users (mailboxes) and Groups (distribution lists) is
here, as data: the natural key, the owned attributes, and which adapter call serves each
step. The pipeline itself (``service.py``) has no branch on the resource type.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.base import Adapter, Attributes, Filter, GroupRecord, Page, UserRecord
from gateway.provisioning.guard import BackendGuard
from gateway.scim.schema import GROUP_RESOURCE, USER_RESOURCE, ResourceType

Record = UserRecord | GroupRecord


@dataclass(frozen=True)
class BackendCalls:
    """One resource type's adapter calls, each through the tenant's guard under its metric label.

    Each returns the guard's coroutine rather than awaiting it: one coroutine less per call.
    """

    guard: BackendGuard
    singular: str
    find_fn: Callable[[Filter | None, int, int], Awaitable[Page[Any]]]
    get_fn: Callable[[str], Awaitable[Any]]
    create_fn: Callable[[Attributes, Sequence[str]], Awaitable[Any]]
    update_fn: Callable[[Any, Attributes], Awaitable[Any]]
    delete_fn: Callable[[Any], Awaitable[None]]
    add_fn: Callable[[GroupRecord, Sequence[str]], Awaitable[None]] | None = None
    remove_fn: Callable[[GroupRecord, Sequence[str]], Awaitable[None]] | None = None

    @functools.cached_property
    def _labels(self) -> dict[str, str]:
        return {step: f"{step}_{self.singular}" for step in ("get", "create", "update", "delete")} | {
            "find": f"find_{self.singular}s"}

    def find(self, flt: Filter | None, offset: int, limit: int) -> Awaitable[Page[Record]]:
        return self.guard.call(self._labels["find"], self.find_fn, flt, offset, limit)

    def get(self, key: str) -> Awaitable[Record]:
        return self.guard.call(self._labels["get"], self.get_fn, key)

    def create(self, owned: Attributes, member_keys: Sequence[str]) -> Awaitable[Record]:
        return self.guard.call(self._labels["create"], self.create_fn, owned, member_keys)

    def update(self, record: Record, changes: Attributes) -> Awaitable[Record]:
        return self.guard.call(self._labels["update"], self.update_fn, record, changes)

    def delete(self, record: Record) -> Awaitable[None]:
        return self.guard.call(self._labels["delete"], self.delete_fn, record)

    async def add_members(self, record: Record, keys: Sequence[str]) -> None:
        if keys and self.add_fn is not None and isinstance(record, GroupRecord):
            await self.guard.call("add_members", self.add_fn, record, keys)

    async def remove_members(self, record: Record, keys: Sequence[str]) -> None:
        if keys and self.remove_fn is not None and isinstance(record, GroupRecord):
            await self.guard.call("remove_members", self.remove_fn, record, keys)


@dataclass(frozen=True)
class ResourceKind:
    rt: ResourceType
    natural_key: str
    """The attribute that names a resource in the backend; unique case-insensitively."""
    noun: str
    """What the mail platform calls one, for messages: "mailbox", "distribution list"."""
    owned: frozenset[str]
    """Attributes the backend stores (members travel apart, as member keys)."""
    filterable: frozenset[str]
    calls: BackendCalls
    has_members: bool = False
    supported: bool = True
    address_key: bool = False
    """The natural key is a mail address, held to the tenant's mail domains."""


def members_of(record: Record) -> list[str]:
    return record.member_keys if isinstance(record, GroupRecord) else []


def with_members(record: Record, member_keys: list[str]) -> Record:
    """``record`` holding ``member_keys`` (a user record, which has no members, as it is)."""
    if isinstance(record, GroupRecord):
        record.member_keys = member_keys
    return record


def user_kind(adapter: Adapter, guard: BackendGuard) -> ResourceKind:
    def create(attributes: Attributes, member_keys: Sequence[str]) -> Awaitable[UserRecord]:
        return adapter.create_user(attributes)

    caps = adapter.capabilities
    calls = BackendCalls(guard, "user", adapter.find_users, adapter.get_user, create, adapter.update_user,
                         adapter.delete_user)
    return ResourceKind(USER_RESOURCE, "userName", "mailbox", caps.user_attributes, caps.user_filterable, calls,
                        address_key=True)


def group_kind(adapter: Adapter, guard: BackendGuard) -> ResourceKind:
    caps = adapter.capabilities
    calls = BackendCalls(guard, "group", adapter.find_groups, adapter.get_group, adapter.create_group,
                         adapter.update_group, adapter.delete_group, adapter.add_members, adapter.remove_members)
    return ResourceKind(GROUP_RESOURCE, "displayName", "distribution list", caps.group_attributes - {"members"},
                        caps.group_filterable, calls, has_members=True, supported=caps.groups)
