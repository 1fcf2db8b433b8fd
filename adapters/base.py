"""The backend adapter contract.

An adapter turns canonical records into calls on one mail platform. It never builds
HTTP responses and never sees SCIM PATCH logic: the provisioning service hands it the
*owned* attribute changes already computed, and maps the exceptions below to SCIM
responses.

Records carry SCIM-shaped attribute dicts restricted to what the backend owns
(``Capabilities.user_attributes``), e.g. ``{"userName": "a@x.ch", "active": True,
"name": {"givenName": "A", "familyName": "B"}, "displayName": "A B"}``. Every other
SCIM attribute is kept by the gateway in its shadow store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from gateway.scim.filter_ast import Filter

Attributes = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Capabilities:
    """What a backend stores and can search.

    Attribute names are canonical dotted SCIM paths (``name.givenName``); a complex
    attribute listed whole (``name``) means every sub-attribute is owned.
    ``*_filterable`` lists the attributes ``find_*`` can evaluate itself with ``eq``
    (case-insensitively for userName/displayName); anything else the gateway filters.
    """

    user_attributes: frozenset[str]
    user_filterable: frozenset[str]
    groups: bool = True
    group_attributes: frozenset[str] = frozenset({"displayName", "members"})
    group_filterable: frozenset[str] = frozenset({"displayName"})
    max_page_size: int = 1000


@dataclass
class UserRecord:
    key: str
    """The backend's natural key (for a mailbox: its address). Changes on rename."""
    attributes: Attributes


@dataclass
class GroupRecord:
    key: str
    attributes: Attributes
    """Owned group attributes except members, e.g. ``{"displayName": "Sales"}``."""
    member_keys: list[str] = field(default_factory=list)
    """Backend keys of the member users, in backend order."""


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int


# --- exceptions -----------------------------------------------------------------------


class AdapterError(Exception):
    """Base of everything an adapter may raise on purpose."""


class NotFound(AdapterError):
    """The addressed object does not exist in the backend."""


class AlreadyExists(AdapterError):
    """A create or rename collides with an existing object (natural key taken)."""

    def __init__(self, existing_key: str, detail: str = "") -> None:
        super().__init__(detail or f"{existing_key} already exists")
        self.existing_key = existing_key


class Transient(AdapterError):
    """The backend is unavailable, overloaded or too slow; the same call may succeed later.

    ``rate_limited`` distinguishes "slow down" (answered as 429) from "down" (503).
    ``ambiguous`` is set when a write may or may not have been applied (timeout, reset,
    5xx after sending): the caller must re-read before trying again.
    """

    def __init__(
        self,
        detail: str,
        retry_after: float | None = None,
        *,
        rate_limited: bool = False,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        self.ambiguous = ambiguous


class Rejected(AdapterError):
    """The backend refused the request permanently (bad value, policy, quota)."""

    def __init__(self, scim_type: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.scim_type = scim_type
        self.detail = detail
        self.status = status


# --- the protocol -------------------------------------------------------------------


@runtime_checkable
class Adapter(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self) -> None:
        """Open connections. Called once before the first request."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def check(self) -> None:
        """Raise Transient when the backend is not reachable (readiness probe)."""

    # Users -------------------------------------------------------------------------
    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        """Users matching ``filter`` (built only from ``user_filterable`` attributes and
        ``eq``/``and``/``or``), ordered stably by key; ``offset`` is 0-based."""

    async def get_user(self, key: str) -> UserRecord:
        """Raise NotFound when absent. Returns a copy the caller may mutate."""

    async def create_user(self, attributes: Attributes) -> UserRecord:
        """Raise AlreadyExists(existing_key) when the userName is taken (case-insensitively)."""

    async def update_user(self, key: str, changes: Attributes) -> UserRecord:
        """Apply owned-attribute changes (dotted path → new value, None clears).
        A change of ``userName`` renames; the returned record carries the new key."""

    async def delete_user(self, key: str) -> None:
        """Raise NotFound when absent. Removes the user from every group."""

    # Groups (only when capabilities.groups) ----------------------------------------
    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]: ...

    async def get_group(self, key: str) -> GroupRecord: ...

    async def create_group(self, attributes: Attributes, member_keys: Sequence[str]) -> GroupRecord: ...

    async def update_group(self, key: str, changes: Attributes) -> GroupRecord: ...

    async def add_members(self, key: str, member_keys: Sequence[str]) -> None:
        """Idempotent: adding a present member is a success."""

    async def remove_members(self, key: str, member_keys: Sequence[str]) -> None:
        """Idempotent: removing an absent member is a success."""

    async def delete_group(self, key: str) -> None: ...
