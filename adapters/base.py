"""The backend SDK: what a mail-platform adapter implements, and what it may rely on.

Read ``docs/backend-sdk.md`` for the walk-through. In short:

* An adapter turns canonical records into calls on one mail platform. It never builds
  HTTP responses and never sees SCIM PATCH logic: the gateway hands it the changes to the
  attributes it *owns* (``Capabilities``), already computed. Everything else the gateway
  keeps in its own shadow store.
* It raises the errors below, and only those, on purpose. They stay domain errors up to
  the HTTP edge, which alone turns them into SCIM responses.
* Update and delete calls receive the record the gateway read just before (with the
  adapter's opaque ``state``), so no adapter needs to cache anything per request.
* Optional abilities are the ``runtime_checkable`` Protocols at the end of this module.

A backend may import from the gateway only what this module re-exports: the filter AST
(``Filter`` and its nodes) and the types defined here. Everything else in ``gateway`` is
private and may change between releases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from gateway.scim.filter_ast import And, AttrPath, Compare, Filter, Or

__all__ = [
    "Adapter",
    "AlreadyExists",
    "And",
    "AttrPath",
    "Attributes",
    "BackendError",
    "Capabilities",
    "Compare",
    "Filter",
    "GroupRecord",
    "HealthCheck",
    "NotFound",
    "Or",
    "Page",
    "RateLimited",
    "Rejected",
    "Statistics",
    "Unavailable",
    "UserRecord",
    "may_have_been_applied",
]

Attributes = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Capabilities:
    """What a backend stores and can search.

    Attribute names are canonical dotted SCIM paths (``name.givenName``); a complex
    attribute listed whole (``name``) means every sub-attribute is owned. Owned attributes
    are what the adapter receives and returns; the gateway shadows the rest.

    ``user_filterable`` / ``group_filterable`` declare filter push-down: the attributes
    ``find_users`` / ``find_groups`` can evaluate themselves with ``eq`` (combined with
    ``and`` / ``or``). The natural key (``userName``, group ``displayName``) must be among
    them: the gateway looks objects up by it before every create and rename. Strings in
    such a filter compare case-insensitively. A backend may return a superset of the
    matches (the gateway evaluates the whole filter again), never a subset.
    """

    user_attributes: frozenset[str]
    user_filterable: frozenset[str] = frozenset({"userName"})
    groups: bool = True
    group_attributes: frozenset[str] = frozenset({"displayName", "members"})
    group_filterable: frozenset[str] = frozenset({"displayName"})
    max_page_size: int = 1000
    counts_platform_calls: bool = False
    """True when the backend calls ``adapters.telemetry.spend()`` for every request it sends to
    its platform; otherwise the gateway counts each adapter call as one (in-process backends)."""


@dataclass
class UserRecord:
    key: str
    """The backend's key of the mailbox (often its address). May change on rename."""
    attributes: Attributes
    """Owned attributes, SCIM-shaped: ``{"userName": …, "name": {"givenName": …}}``."""
    state: Any = None
    """Opaque to the gateway: whatever the adapter needs back in update/delete calls
    (a numeric id, a DN, an ETag). Never shown to SCIM clients, never stored."""


@dataclass
class GroupRecord:
    key: str
    attributes: Attributes
    """Owned group attributes except members, e.g. ``{"displayName": "Sales"}``."""
    member_keys: list[str] = field(default_factory=list)
    """Keys of the member mailboxes (as ``UserRecord.key``), in backend order."""
    state: Any = None


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int


# --- errors ---------------------------------------------------------------------------


class BackendError(Exception):
    """Base of every error an adapter raises on purpose. ``detail`` is shown to the admin."""

    may_apply = False
    """Whether the write that failed may nevertheless have been applied (see ``may_have_been_applied``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(BackendError):
    """The addressed object does not exist in the backend."""


class AlreadyExists(BackendError):
    """A create or rename collides with an existing object (its natural key is taken)."""

    def __init__(self, existing_key: str, detail: str = "") -> None:
        super().__init__(detail or f"{existing_key} already exists")
        self.existing_key = existing_key


class Rejected(BackendError):
    """The backend refused the request for good: a bad value, a policy, a quota.

    ``reason`` is the backend's own explanation, in words an admin can act on.
    ``scim_type`` and ``status`` say how a SCIM client should see it (``invalidValue`` /
    400 by default; ``uniqueness`` / 409 for a clash the backend detects in its own way).
    """

    def __init__(self, reason: str, *, scim_type: str = "invalidValue", status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.scim_type = scim_type
        self.status = status


class Unavailable(BackendError):
    """The backend is down, overloaded or too slow; the same call may succeed later.

    ``may_apply`` is True when a write was sent and its answer lost (timeout, reset,
    5xx after sending): the gateway then re-reads before it tries again, so a create is
    never sent twice. ``retry_after`` is the backend's hint in seconds, if it gave one.
    """

    def __init__(self, detail: str, *, retry_after: float | None = None, may_apply: bool = False) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.may_apply = may_apply


class RateLimited(Unavailable):
    """The backend asks us to slow down (HTTP 429 and the like); nothing was applied."""

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail, retry_after=retry_after, may_apply=False)


def may_have_been_applied(exc: BaseException) -> bool:
    """Whether the backend write that ended in ``exc`` may have taken effect.

    The one definition the gateway uses for its create-at-most-once promise. A
    ``BackendError`` knows (an answer, or a failure before sending, is definite). Anything
    else raised while a write was under way (a cancelled request, a crash of the adapter,
    the state store failing after the backend answered) leaves the outcome unknown.
    """
    if isinstance(exc, BackendError):
        return exc.may_apply
    return True


# --- the protocol ---------------------------------------------------------------------


@runtime_checkable
class Adapter(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self) -> None:
        """Open connections. Called once before the first request."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    # Users -------------------------------------------------------------------------
    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        """Users matching ``filter``, ordered stably; ``offset`` is 0-based.

        ``filter`` is None (all users) or built only from ``eq`` on
        ``capabilities.user_filterable`` attributes, ``and`` and ``or``.
        """

    async def get_user(self, key: str) -> UserRecord:
        """Raise NotFound when absent. Returns a fresh record the caller may change."""

    async def create_user(self, attributes: Attributes) -> UserRecord:
        """Raise AlreadyExists(existing_key) when the userName is taken (case-insensitively).

        Never retry a create whose answer was lost: raise ``Unavailable(may_apply=True)``
        and the gateway re-reads by userName.
        """

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        """Apply owned-attribute changes (dotted path → new value, None clears) to ``record``,
        as the gateway just read it. A ``userName`` change renames: the returned record
        carries the new key. Raise NotFound when the mailbox is gone."""

    async def delete_user(self, record: UserRecord) -> None:
        """Raise NotFound when absent. Removes the mailbox from every group."""

    # Groups (only when capabilities.groups) ----------------------------------------
    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        """As ``find_users``, over ``capabilities.group_filterable``."""

    async def get_group(self, key: str) -> GroupRecord: ...

    async def create_group(self, attributes: Attributes, member_keys: Sequence[str]) -> GroupRecord:
        """Raise AlreadyExists when the displayName is taken (case-insensitively)."""

    async def update_group(self, record: GroupRecord, changes: Attributes) -> GroupRecord:
        """Apply owned group-attribute changes (not members)."""

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        """Idempotent: adding a present member is a success."""

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        """Idempotent: removing an absent member is a success."""

    async def delete_group(self, record: GroupRecord) -> None: ...


# --- optional abilities -----------------------------------------------------------------


@runtime_checkable
class HealthCheck(Protocol):
    """``/readyz`` and ``scim-gateway check`` ask the backend whether it is reachable."""

    async def check(self) -> None:
        """Return quickly when the backend answers; raise Unavailable (with why) when not."""


@runtime_checkable
class Statistics(Protocol):
    """Counters exported on ``/metrics`` as ``scim_gateway_backend_client_total``."""

    def statistics(self) -> Mapping[str, int]:
        """Monotonic counters by name, e.g. ``{"retries": 3, "timeouts": 1}``."""
