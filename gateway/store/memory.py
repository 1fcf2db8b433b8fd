"""A process-local state store: for tests, benchmarks and throw-away trials."""

from __future__ import annotations

import copy
import dataclasses
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


def _copy(resource: StoredResource) -> StoredResource:
    # Shadow values are JSON: a round trip through orjson is the fastest deep copy.
    return dataclasses.replace(resource, shadow=orjson.loads(orjson.dumps(resource.shadow)), sent=dict(resource.sent))


class MemoryStore:
    def __init__(self) -> None:
        self._by_id: dict[_Scope, dict[str, StoredResource]] = {}
        self._by_key: dict[_Scope, dict[str, str]] = {}
        self._by_external: dict[_Scope, dict[str, set[str]]] = {}
        self._journal: dict[str, dict[str, JournalEntry]] = {}
        self._idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self._locks = KeyedLocks()

    def lock(self, tenant: str, name: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold((tenant, name))

    async def idempotency_get(self, tenant: str, key: str, now: float) -> IdempotencyRecord | None:
        record = self._idempotency.get((tenant, key))
        return copy.deepcopy(record) if record is not None and record.expires > now else None

    async def idempotency_put(self, tenant: str, record: IdempotencyRecord) -> None:
        self._idempotency[(tenant, record.key)] = copy.deepcopy(record)

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

    def _maps(self, tenant: str, rtype: str) -> tuple[dict[str, StoredResource], dict[str, str], dict[str, set[str]]]:
        scope = (tenant, rtype)
        return (
            self._by_id.setdefault(scope, {}),
            self._by_key.setdefault(scope, {}),
            self._by_external.setdefault(scope, {}),
        )

    async def get(self, tenant: str, resource_type: str, id: str) -> StoredResource | None:
        found = self._maps(tenant, resource_type)[0].get(id)
        return _copy(found) if found is not None else None

    async def get_by_key(self, tenant: str, resource_type: str, key: str) -> StoredResource | None:
        by_id, by_key, _ = self._maps(tenant, resource_type)
        rid = by_key.get(key)
        return _copy(by_id[rid]) if rid is not None else None

    async def get_many_by_keys(
        self, tenant: str, resource_type: str, keys: list[str]
    ) -> dict[str, StoredResource]:
        by_id, by_key, _ = self._maps(tenant, resource_type)
        return {k: _copy(by_id[by_key[k]]) for k in keys if k in by_key}

    async def get_many(self, tenant: str, resource_type: str, ids: list[str]) -> dict[str, StoredResource]:
        by_id = self._maps(tenant, resource_type)[0]
        return {i: _copy(by_id[i]) for i in ids if i in by_id}

    async def find_by_external_id(self, tenant: str, resource_type: str, external_id: str) -> list[StoredResource]:
        by_id, _, by_ext = self._maps(tenant, resource_type)
        return [_copy(by_id[i]) for i in sorted(by_ext.get(external_id, ())) if i in by_id]

    async def insert(self, tenant: str, resource: StoredResource) -> None:
        by_id, by_key, by_ext = self._maps(tenant, resource.resource_type)
        if resource.backend_key in by_key:
            raise DuplicateKey(resource.backend_key)
        by_id[resource.id] = _copy(resource)
        by_key[resource.backend_key] = resource.id
        if resource.external_id is not None:
            by_ext.setdefault(resource.external_id, set()).add(resource.id)

    async def update(self, tenant: str, resource: StoredResource) -> None:
        by_id, by_key, by_ext = self._maps(tenant, resource.resource_type)
        holder = by_key.get(resource.backend_key)
        if holder is not None and holder != resource.id:
            raise DuplicateKey(resource.backend_key)
        old = by_id.get(resource.id)
        if old is not None:
            if by_key.get(old.backend_key) == old.id:
                del by_key[old.backend_key]
            if old.external_id is not None:
                by_ext.get(old.external_id, set()).discard(old.id)
        by_id[resource.id] = _copy(resource)
        by_key[resource.backend_key] = resource.id
        if resource.external_id is not None:
            by_ext.setdefault(resource.external_id, set()).add(resource.id)

    async def delete(self, tenant: str, resource_type: str, id: str) -> None:
        by_id, by_key, by_ext = self._maps(tenant, resource_type)
        old = by_id.pop(id, None)
        if old is None:
            return
        if by_key.get(old.backend_key) == id:
            del by_key[old.backend_key]
        if old.external_id is not None:
            by_ext.get(old.external_id, set()).discard(id)

    async def iter_mappings(
        self, tenant: str, resource_type: str, after_id: str | None, limit: int
    ) -> list[StoredResource]:
        by_id = self._maps(tenant, resource_type)[0]
        ids = sorted(i for i in by_id if after_id is None or i > after_id)[:limit]
        return [_copy(by_id[i]) for i in ids]

    async def journal_add(self, tenant: str, entry: JournalEntry) -> None:
        self._journal.setdefault(tenant, {})[entry.id] = decode_entry(encode_entry(entry))

    async def journal_remove(self, tenant: str, entry_id: str) -> None:
        self._journal.get(tenant, {}).pop(entry_id, None)

    async def journal_pending(
        self, tenant: str, resource_type: str | None = None, natural_key: str | None = None
    ) -> list[JournalEntry]:
        return [
            decode_entry(encode_entry(e)) for e in self._journal.get(tenant, {}).values()
            if (resource_type is None or e.resource_type == resource_type)
            and (natural_key is None or e.natural_key == natural_key)
        ]
