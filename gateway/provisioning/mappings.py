"""The gateway's mapping of each resource: SCIM id ↔ backend key, shadow attributes, version."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.clock import now_iso
from gateway.ids import new_uuid
from gateway.provisioning.ownership import Ownership, get_dotted
from gateway.store.base import DuplicateKey, StateStore, StoredResource

Resource = dict[str, Any]


def sent_strings(owned: Resource, ownership: Ownership) -> dict[str, str]:
    """Owned strings as the client sent them, by dotted path (never a write-only one)."""
    sent: dict[str, str] = {}
    for path in ownership.kept_paths:
        value = get_dotted(owned, path)
        if isinstance(value, str):
            sent[path] = value
    return sent


def echo_sent(attributes: Resource, sent: dict[str, str]) -> Resource:
    """Give back owned strings in the case the client sent them when the backend only changed case."""
    result = attributes
    for path, value in sent.items():
        actual = get_dotted(result, path)
        if isinstance(actual, str) and actual != value and actual.lower() == value.lower():
            if result is attributes:
                result = dict(attributes)
            head, _, tail = path.partition(".")
            if tail:
                result[head] = {**result[head], tail: value}
            else:
                result[head] = value
    return result


def new_mapping(resource_type: str, owned: Resource, shadow: Resource, ownership: Ownership) -> StoredResource:
    """The mapping of a resource about to be created (its backend key is set once known)."""
    stamp = now_iso()
    return StoredResource(
        id=new_uuid(), resource_type=resource_type, backend_key="", shadow=shadow,
        version=1, created=stamp, last_modified=stamp, sent=sent_strings(owned, ownership),
    )


def next_version(stored: StoredResource, owned: Resource, shadow: Resource, ownership: Ownership) -> StoredResource:
    """The mapping as it will be once a change is written: new shadow, next version."""
    return dataclasses.replace(
        stored, shadow=shadow, version=stored.version + 1, last_modified=now_iso(),
        sent=sent_strings(owned, ownership),
    )


async def adopt(store: StateStore, tenant: str, resource_type: str, key: str) -> StoredResource:
    """A mapping (new id) for a backend object the gateway has never seen."""
    stamp = now_iso()
    stored = StoredResource(id=new_uuid(), resource_type=resource_type, backend_key=key, version=1,
                            created=stamp, last_modified=stamp)
    try:
        await store.insert(tenant, stored)
    except DuplicateKey:
        # Another request (or replica) adopted it at the same moment: use its id.
        existing = await store.get_by_key(tenant, resource_type, key)
        if existing is None:
            raise
        return existing
    return stored


async def insert_created(store: StateStore, tenant: str, stored: StoredResource) -> None:
    """Store the mapping of a resource just created in the backend.

    A mapping that already holds its key belonged to an object deleted behind the
    gateway's back: that id named another resource, which must stay gone (Entra reports
    InvalidAnchor for it), not become this one.
    """
    try:
        await store.insert(tenant, stored)
    except DuplicateKey:
        stale = await store.get_by_key(tenant, stored.resource_type, stored.backend_key)
        if stale is not None:
            await store.delete(tenant, stored.resource_type, stale.id)
        await store.insert(tenant, stored)
