"""Idempotency-Key for POST and PATCH (IETF httpapi idempotency-key draft).

The first request with a key runs and its response is stored; a retry with the same key
and the same request gets the stored response again without touching the backend; the
same key with a different request is refused. Only settled outcomes are stored (2xx and
4xx other than 429): a 5xx or 429 invites a retry, which must run again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.scim.errors import ScimError
from gateway.store.base import IdempotencyRecord, StateStore

MAX_KEY_LENGTH = 255


@dataclass
class StoredReply:
    status: int
    headers: dict[str, str]
    body: bytes
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyKeys:
    def __init__(self, store: StateStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl

    async def run(
        self, tenant: str, key: str, request_fingerprint: str, execute: Callable[[], Awaitable[StoredReply]]
    ) -> StoredReply:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ScimError(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.", "invalidValue")
        # Held across replicas: a concurrent retry waits for the first attempt, then replays it.
        async with self.store.lock(tenant, f"idempotency/{key}"):
            now = time.time()
            record = await self.store.idempotency_get(tenant, key, now)
            if record is not None:
                if record.fingerprint != request_fingerprint:
                    raise ScimError(
                        422, "This Idempotency-Key was already used for a different request; use a new key.",
                    )
                return StoredReply(record.status, dict(record.headers), record.body, replayed=True)
            reply = await execute()
            if 200 <= reply.status < 300 or (400 <= reply.status < 500 and reply.status != 429):
                await self.store.idempotency_put(tenant, IdempotencyRecord(
                    key=key, fingerprint=request_fingerprint, status=reply.status, headers=reply.headers,
                    body=reply.body, expires=now + self.ttl,
                ))
            return reply
