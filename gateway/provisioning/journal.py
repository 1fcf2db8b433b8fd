"""Journalled backend writes: finish or roll back after a crash, never duplicate.

Before a write reaches the backend, an entry records what the store should say once
the write is known to have happened. The entry is removed when the store agrees, or
when the write definitely failed. An entry that survives (crash, lost answer, backend
down while re-reading) is settled on the next touch by re-reading the backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import structlog

from adapters.base import may_have_been_applied
from gateway.clock import now_iso
from gateway.ids import new_hex_id
from gateway.provisioning.errors import Backpressure
from gateway.provisioning.ownership import WRITE_ONLY, get_dotted
from gateway.store.base import DuplicateKey, JournalEntry, StateStore, StoredResource

log = structlog.get_logger("gateway.journal")

# (natural key) → current backend record (key, owned attributes) or None
FindByName = Callable[[str], Awaitable[tuple[str, dict[str, Any]] | None]]
# (backend key) → owned attributes or None when absent
FetchByKey = Callable[[str], Awaitable[dict[str, Any] | None]]


class CreateMayStillLand(Backpressure):
    """An earlier create of this object got no answer and may still be applied: retry shortly."""


class Journal:
    def __init__(self, store: StateStore, tenant: str, resource_type: str, landing_window_s: float = 5.0) -> None:
        self.store = store
        self.tenant = tenant
        self.resource_type = resource_type
        self.landing_window_s = landing_window_s
        """How long a create whose answer was lost may still land on the backend: until then an
        absent object is not proof that the create failed."""

    def write(
        self, op: str, natural_key: str, resource: StoredResource, changes: dict[str, Any] | None = None
    ) -> _JournalledWrite:
        """``async with journal.write(...)``: the entry is recorded on entry and removed on a clean
        exit or a definite failure; it stays when the outcome is unknown.

        The store keeps its own copy of the entry (the store contract), so ``resource`` may be
        changed inside the block, as creates do once the backend key is known.
        """
        # A password is never stored, and an update is recognised as applied by its other changes.
        kept = {path: value for path, value in (changes or {}).items() if path not in WRITE_ONLY}
        entry = JournalEntry(
            id=new_hex_id(), resource_type=self.resource_type, op=op, natural_key=natural_key.lower(),
            resource=resource, changes=kept, created=now_iso(),
        )
        return _JournalledWrite(self, entry)

    async def settle(
        self, find_by_name: FindByName, fetch: FetchByKey, *, natural_key: str | None = None,
        older_than_s: float = 0.0,
    ) -> int:
        """Finish or drop pending entries; returns how many were settled."""
        pending = await self.store.journal_pending(self.tenant, self.resource_type, natural_key)
        cutoff = (datetime.now(UTC) - timedelta(seconds=older_than_s)).isoformat(timespec="milliseconds")
        settled = 0
        for entry in pending:
            if older_than_s and entry.created.replace("Z", "+00:00") > cutoff:
                continue
            await self._settle_one(entry, find_by_name, fetch)
            await self.store.journal_remove(self.tenant, entry.id)
            settled += 1
        return settled

    async def _settle_one(self, entry: JournalEntry, find_by_name: FindByName, fetch: FetchByKey) -> None:
        target = entry.resource
        if entry.op == "create":
            found = await find_by_name(entry.natural_key)
            if found is None:
                age = (datetime.now(UTC) - datetime.fromisoformat(entry.created.replace("Z", "+00:00")))
                wait = self.landing_window_s - age.total_seconds()
                if wait > 0:
                    raise CreateMayStillLand(
                        "An earlier create of this object got no answer from the mail platform and may "
                        "still be applied; retry shortly.", retry_after=wait,
                    )
                log.info("journal: create never reached the backend, dropped", id=target.id)
                return
            key, _ = found
            if await self.store.get_by_key(self.tenant, self.resource_type, key) is None:
                target.backend_key = key
                with contextlib.suppress(DuplicateKey):
                    await self.store.insert(self.tenant, target)
                log.info("journal: create finished after an interruption", id=target.id)
            return
        current = await self.store.get(self.tenant, self.resource_type, target.id)
        if current is None:
            return
        if entry.op == "delete":
            if await fetch(current.backend_key) is None:
                await self.store.delete(self.tenant, self.resource_type, target.id)
                log.info("journal: delete finished after an interruption", id=target.id)
            return
        # An update: applied when the backend shows every change it carried.
        owned = await fetch(current.backend_key)
        key = current.backend_key
        if owned is None and isinstance(entry.changes.get("userName") or entry.changes.get("displayName"), str):
            found = await find_by_name(str(entry.changes.get("userName") or entry.changes.get("displayName")))
            if found is not None:
                key, owned = found
        if owned is None or current.version >= target.version:
            return
        if all(_same(get_dotted(owned, path), value) for path, value in entry.changes.items()):
            target.backend_key = key
            # Conditional: a write that committed while the backend was being read is newer than this one.
            if await self.store.update(self.tenant, target, expected_version=current.version):
                log.info("journal: update finished after an interruption", id=target.id)


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(actual, str) and isinstance(wanted, str):
        return actual.lower() == wanted.lower()
    return bool(actual == wanted)


class _JournalledWrite:
    """A class rather than a generator context manager: every write takes one."""

    __slots__ = ("_entry", "_journal")

    def __init__(self, journal: Journal, entry: JournalEntry) -> None:
        self._journal = journal
        self._entry = entry

    async def __aenter__(self) -> JournalEntry:
        await self._journal.store.journal_add(self._journal.tenant, self._entry)
        return self._entry

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc is None or not may_have_been_applied(exc):
            await self._journal.store.journal_remove(self._journal.tenant, self._entry.id)
