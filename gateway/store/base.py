"""The gateway's own state: SCIM id ↔ backend key, shadow attributes, versions.

The backend is the source of truth for what exists and for the attributes it owns;
the store remembers what the backend cannot: the stable SCIM id Entra caches, the
attributes the backend has no field for (read back exactly as sent), and the version
behind each ETag.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson


@dataclass
class StoredResource:
    id: str
    resource_type: str
    backend_key: str
    shadow: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    created: str = ""
    last_modified: str = ""
    sent: dict[str, str] = field(default_factory=dict)
    """Owned string attributes as the client sent them, by dotted path: a backend that
    lower-cases addresses must not make Entra see a change on every cycle."""
    notes: dict[str, Any] = field(default_factory=dict)
    """The gateway's own remarks about the resource, never rendered: e.g. ``skipped_members``,
    the member ids a client sent that name no provisioned user (for ``reconcile``)."""

    @property
    def external_id(self) -> str | None:
        value = self.shadow.get("externalId")
        return value if isinstance(value, str) else None


@dataclass
class JournalEntry:
    """A backend write in flight: written before the call, removed once the store agrees.

    After a crash, the entry says what the gateway was doing so the next touch can finish
    the write (the backend has it) or drop it (the backend never saw it).
    """

    id: str
    resource_type: str
    op: str
    """"create", "update" or "delete"."""
    natural_key: str
    """Lower-cased userName / group displayName the write is about."""
    resource: StoredResource
    """The mapping as it should be stored once the write is known to have happened."""
    changes: dict[str, Any] = field(default_factory=dict)
    """Owned attribute changes sent to the backend (updates only)."""
    created: str = ""


@dataclass
class IdempotencyRecord:
    """A stored response for an Idempotency-Key, replayed for a retry with the same body."""

    key: str
    fingerprint: str
    """sha256 of method, path and body: the same key with another request is a client error."""
    status: int
    headers: dict[str, str]
    body: bytes
    expires: float
    """Unix time after which the key may be reused."""


class StoreBusy(Exception):
    """A lock or connection could not be had in time; the request may be retried."""


class DuplicateKey(Exception):
    """Another mapping already holds this backend key."""


class StateStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def check(self) -> None:
        """Raise when the store cannot be reached (readiness)."""

    async def get(self, tenant: str, resource_type: str, id: str) -> StoredResource | None: ...

    async def get_by_key(self, tenant: str, resource_type: str, key: str) -> StoredResource | None: ...

    async def get_many_by_keys(
        self, tenant: str, resource_type: str, keys: list[str]
    ) -> dict[str, StoredResource]: ...

    async def ids_by_keys(self, tenant: str, resource_type: str, keys: list[str]) -> dict[str, str]:
        """Backend key → SCIM id for the mapped ``keys``: rendering a list's members needs no more."""

    async def get_many(self, tenant: str, resource_type: str, ids: list[str]) -> dict[str, StoredResource]: ...

    async def find_by_external_id(self, tenant: str, resource_type: str, external_id: str) -> list[StoredResource]:
        """Mappings whose shadow externalId equals ``external_id`` exactly (caseExact)."""

    async def insert(self, tenant: str, resource: StoredResource) -> None:
        """Raise DuplicateKey when the backend key is already mapped."""

    async def update(self, tenant: str, resource: StoredResource, *, expected_version: int | None = None) -> bool:
        """Replace the mapping with this id (backend key may change on rename); True when replaced.

        With ``expected_version`` only while the stored mapping still has that version (and never
        by inserting it anew), so a late writer cannot overwrite a newer write.
        """

    async def delete(self, tenant: str, resource_type: str, id: str) -> None: ...

    # Cross-request coordination ----------------------------------------------------

    def lock(self, tenant: str, name: str) -> AbstractAsyncContextManager[None]:
        """Mutual exclusion for ``name`` across every process sharing this store
        (a create per userName, a group's member list)."""

    # Idempotency-Key records ---------------------------------------------------------

    async def idempotency_get(self, tenant: str, key: str, now: float) -> IdempotencyRecord | None:
        """The unexpired record for ``key``, or None."""

    async def idempotency_put(self, tenant: str, record: IdempotencyRecord) -> None:
        """Store (or replace an expired) record."""

    async def idempotency_purge(self, now: float) -> int:
        """Drop expired records; returns how many."""

    # In-flight journal -------------------------------------------------------------

    async def journal_add(self, tenant: str, entry: JournalEntry) -> None: ...

    async def journal_remove(self, tenant: str, entry_id: str) -> None: ...

    async def journal_pending(
        self, tenant: str, resource_type: str | None = None, natural_key: str | None = None
    ) -> list[JournalEntry]:
        """Entries of a tenant, oldest first, optionally only those about one natural key."""


@runtime_checkable
class MappingScanner(Protocol):
    """A store that can walk all mappings of a tenant (for ``scim-gateway reconcile``).

    Kept apart from StateStore so that serving never depends on it.
    """

    async def iter_mappings(
        self, tenant: str, resource_type: str, after_id: str | None, limit: int
    ) -> list[StoredResource]:
        """Up to ``limit`` mappings with ids above ``after_id`` (None: from the start), in id order.

        Keyset paging: a walk stays complete and free of repeats while mappings are added or
        deleted, including by the walker itself.
        """


def encode_entry(entry: JournalEntry) -> bytes:
    """A journal entry as JSON, for stores that keep it in one column."""
    return orjson.dumps(entry)  # orjson serialises (nested) dataclasses natively, and fast


def decode_entry(raw: bytes | str) -> JournalEntry:
    data = orjson.loads(raw)
    data["resource"] = StoredResource(**data["resource"])
    return JournalEntry(**data)
