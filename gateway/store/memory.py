"""A process-local state store: for tests, benchmarks and throw-away trials.

Each mapping is kept as one orjson blob rather than a StoredResource with its dicts: a
bytes object is a fraction of the size, is invisible to the cyclic GC (shorter pauses
with 100k users held), and decoding it on read is the deep copy callers need anyway.
"""

from __future__ import annotations

import copy
from contextlib import AbstractAsyncContextManager

import orjson

from gateway.store.base import (
    DuplicateKey,
    IdempotencyRecord,
    JournalEntry,
    StoredResource,
    decode_entry,
    encode_entry,
)
from gateway.store.locks import KeyedLocks

_Scope = tuple[str, str]


def _trimmed(raw: bytes) -> bytes:
    # orjson hands back its whole write buffer (4 KiB or more, whatever the length): a copy
    # sized to the content is what should be kept long-term.
    return bytes(memoryview(raw))


def _pack(resource: StoredResource) -> bytes:
    # id and resource_type are the keys the blob is filed under: not repeated inside it.
    # A never-modified record (most of them) stores its timestamp once.
    modified = None if resource.last_modified == resource.created else resource.last_modified
    return _trimmed(orjson.dumps((resource.backend_key, resource.version, resource.created, modified,
                                  resource.shadow, resource.sent, resource.notes or None)))


def _unpack(id: str, resource_type: str, blob: bytes) -> StoredResource:
    key, version, created, modified, shadow, sent, notes = orjson.loads(blob)
    return StoredResource(id=id, resource_type=resource_type, backend_key=key, shadow=shadow, version=version,
                          created=created, last_modified=created if modified is None else modified, sent=sent,
                          notes=notes or {})


class _Table:
    """The mappings of one (tenant, resource type) and their indexes."""

    __slots__ = ("by_external", "by_id", "by_key", "rtype")

    def __init__(self, rtype: str) -> None:
        self.rtype = rtype
        self.by_id: dict[str, bytes] = {}
        self.by_key: dict[str, str] = {}
        # The id itself, or a sorted tuple of ids in the rare case several share an externalId:
        # no per-entry container for the common case.
        self.by_external: dict[str, str | tuple[str, ...]] = {}

    def load(self, id: str) -> StoredResource:
        return _unpack(id, self.rtype, self.by_id[id])

    def external_ids(self, external_id: str) -> tuple[str, ...]:
        held = self.by_external.get(external_id, ())
        return (held,) if isinstance(held, str) else held

    def _set_external(self, external_id: str, ids: tuple[str, ...]) -> None:
        if not ids:
            self.by_external.pop(external_id, None)
        else:
            self.by_external[external_id] = ids[0] if len(ids) == 1 else ids

    def store(self, resource: StoredResource, blob: bytes) -> None:
        self.by_id[resource.id] = blob
        self.by_key[resource.backend_key] = resource.id
        external_id = resource.external_id
        if external_id is not None:
            ids = self.external_ids(external_id)
            if resource.id not in ids:
                self._set_external(external_id, tuple(sorted((*ids, resource.id))))

    def unindex(self, old: StoredResource) -> None:
        if self.by_key.get(old.backend_key) == old.id:
            del self.by_key[old.backend_key]
        external_id = old.external_id
        if external_id is not None:
            self._set_external(external_id, tuple(i for i in self.external_ids(external_id) if i != old.id))


class MemoryStore:
    def __init__(self) -> None:
        self._tables: dict[_Scope, _Table] = {}
        # Journal entries are in flight only briefly: kept encoded, with what journal_pending filters on.
        self._journal: dict[str, dict[str, tuple[str, str, bytes]]] = {}
        self._idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self._locks = KeyedLocks()

    def lock(self, tenant: str, name: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold((tenant, name))

    async def idempotency_get(self, tenant: str, key: str, now: float) -> IdempotencyRecord | None:
        record = self._idempotency.get((tenant, key))
        return copy.deepcopy(record) if record is not None and record.expires > now else None

    async def idempotency_put(self, tenant: str, record: IdempotencyRecord) -> None:
        stored = copy.deepcopy(record)
        stored.body = _trimmed(stored.body)  # a response body straight from orjson.dumps
        self._idempotency[(tenant, record.key)] = stored

    async def idempotency_purge(self, now: float) -> int:
        expired = [k for k, r in self._idempotency.items() if r.expires <= now]
        for k in expired:
            del self._idempotency[k]
        return len(expired)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        return None

    def _table(self, tenant: str, rtype: str) -> _Table:
        table = self._tables.get((tenant, rtype))
        if table is None:
            table = self._tables[(tenant, rtype)] = _Table(rtype)
        return table

    async def get(self, tenant: str, resource_type: str, id: str) -> StoredResource | None:
        table = self._table(tenant, resource_type)
        return table.load(id) if id in table.by_id else None

    async def get_by_key(self, tenant: str, resource_type: str, key: str) -> StoredResource | None:
        table = self._table(tenant, resource_type)
        rid = table.by_key.get(key)
        return table.load(rid) if rid is not None else None

    async def get_many_by_keys(
        self, tenant: str, resource_type: str, keys: list[str]
    ) -> dict[str, StoredResource]:
        table = self._table(tenant, resource_type)
        return {k: table.load(table.by_key[k]) for k in keys if k in table.by_key}

    async def ids_by_keys(self, tenant: str, resource_type: str, keys: list[str]) -> dict[str, str]:
        by_key = self._table(tenant, resource_type).by_key
        return {k: by_key[k] for k in keys if k in by_key}

    async def get_many(self, tenant: str, resource_type: str, ids: list[str]) -> dict[str, StoredResource]:
        table = self._table(tenant, resource_type)
        return {i: table.load(i) for i in ids if i in table.by_id}

    async def find_by_external_id(self, tenant: str, resource_type: str, external_id: str) -> list[StoredResource]:
        table = self._table(tenant, resource_type)
        return [table.load(i) for i in table.external_ids(external_id) if i in table.by_id]

    async def insert(self, tenant: str, resource: StoredResource) -> None:
        table = self._table(tenant, resource.resource_type)
        if resource.backend_key in table.by_key:
            raise DuplicateKey(resource.backend_key)
        table.store(resource, _pack(resource))

    async def update(self, tenant: str, resource: StoredResource, *, expected_version: int | None = None) -> bool:
        table = self._table(tenant, resource.resource_type)
        if expected_version is not None and (
            resource.id not in table.by_id or table.load(resource.id).version != expected_version
        ):
            return False
        holder = table.by_key.get(resource.backend_key)
        if holder is not None and holder != resource.id:
            raise DuplicateKey(resource.backend_key)
        blob = _pack(resource)  # before unindexing: a shadow orjson refuses leaves the table as it was
        if resource.id in table.by_id:
            table.unindex(table.load(resource.id))
        table.store(resource, blob)
        return True

    async def delete(self, tenant: str, resource_type: str, id: str) -> None:
        table = self._table(tenant, resource_type)
        if id not in table.by_id:
            return
        old = table.load(id)
        del table.by_id[id]
        table.unindex(old)

    async def iter_mappings(
        self, tenant: str, resource_type: str, after_id: str | None, limit: int
    ) -> list[StoredResource]:
        table = self._table(tenant, resource_type)
        ids = sorted(i for i in table.by_id if after_id is None or i > after_id)[:limit]
        return [table.load(i) for i in ids]

    async def journal_add(self, tenant: str, entry: JournalEntry) -> None:
        self._journal.setdefault(tenant, {})[entry.id] = (entry.resource_type, entry.natural_key, encode_entry(entry))

    async def journal_remove(self, tenant: str, entry_id: str) -> None:
        self._journal.get(tenant, {}).pop(entry_id, None)

    async def journal_pending(
        self, tenant: str, resource_type: str | None = None, natural_key: str | None = None
    ) -> list[JournalEntry]:
        return [
            decode_entry(raw) for rtype, key, raw in self._journal.get(tenant, {}).values()
            if (resource_type is None or rtype == resource_type) and (natural_key is None or key == natural_key)
        ]
