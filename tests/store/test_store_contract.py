"""One behavioural suite for every state store implementation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.base import (
    DuplicateKey,
    IdempotencyRecord,
    JournalEntry,
    MappingScanner,
    StateStore,
    StoredResource,
)
from gateway.store.memory import MemoryStore
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.pg_support import POSTGRES_DSN, fresh_schema

# How long a blocked lock must stay blocked to count as "waits": long enough for a PostgreSQL
# round trip on a loaded CI box, short enough to keep the suite quick.
BLOCKED_FOR = 0.3


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    async with contextlib.AsyncExitStack() as stack:
        impl: StateStore
        if request.param == "memory":
            impl = MemoryStore()
        elif request.param == "sqlite":
            impl = SqliteStore(str(tmp_path / "state.db"))
        else:
            # A schema of its own per test: no test sees another's rows, locks or migrations.
            schema = await stack.enter_async_context(fresh_schema(POSTGRES_DSN))
            impl = PostgresStore(POSTGRES_DSN, schema=schema, max_size=4)
        await impl.open()
        stack.push_async_callback(impl.close)
        yield impl


def _res(id: str, key: str, **shadow: object) -> StoredResource:
    return StoredResource(id=id, resource_type="User", backend_key=key, shadow=dict(shadow), version=1,
                          created="2026-01-01T00:00:00.000Z", last_modified="2026-01-01T00:00:00.000Z",
                          sent={"userName": key.upper()})


async def test_insert_get_by_id_and_key(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch", externalId="ext-1"))
    got = await store.get("t1", "User", "id-1")
    assert got is not None
    assert got.backend_key == "a@x.ch"
    assert got.shadow == {"externalId": "ext-1"}
    assert got.sent == {"userName": "A@X.CH"}
    by_key = await store.get_by_key("t1", "User", "a@x.ch")
    assert by_key is not None and by_key.id == "id-1"


async def test_tenants_and_types_are_isolated(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch"))
    assert await store.get("t2", "User", "id-1") is None
    assert await store.get("t1", "Group", "id-1") is None
    assert await store.get_by_key("t2", "User", "a@x.ch") is None
    # The same key in another tenant is a different mapping.
    await store.insert("t2", _res("id-2", "a@x.ch"))
    got = await store.get_by_key("t2", "User", "a@x.ch")
    assert got is not None and got.id == "id-2"


async def test_duplicate_key_is_refused(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch"))
    with pytest.raises(DuplicateKey):
        await store.insert("t1", _res("id-2", "a@x.ch"))


async def test_update_moves_key_and_external_id(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch", externalId="old"))
    moved = _res("id-1", "b@x.ch", externalId="new")
    moved.version = 2
    await store.update("t1", moved)
    assert await store.get_by_key("t1", "User", "a@x.ch") is None
    got = await store.get_by_key("t1", "User", "b@x.ch")
    assert got is not None and got.version == 2
    assert await store.find_by_external_id("t1", "User", "old") == []
    assert [r.id for r in await store.find_by_external_id("t1", "User", "new")] == ["id-1"]


async def test_conditional_update_needs_the_expected_version(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch", title="first"))
    newer = _res("id-1", "a@x.ch", title="newer")
    newer.version = 2
    assert await store.update("t1", newer) is True
    # A late writer that read version 1 must not overwrite version 2.
    late = _res("id-1", "a@x.ch", title="late")
    late.version = 2
    assert await store.update("t1", late, expected_version=1) is False
    got = await store.get("t1", "User", "id-1")
    assert got is not None and got.shadow == {"title": "newer"}
    late.version = 3
    assert await store.update("t1", late, expected_version=2) is True
    got = await store.get("t1", "User", "id-1")
    assert got is not None and (got.version, got.shadow) == (3, {"title": "late"})
    # Nor does it bring back a mapping deleted meanwhile.
    await store.delete("t1", "User", "id-1")
    assert await store.update("t1", late, expected_version=3) is False
    assert await store.get("t1", "User", "id-1") is None


async def test_update_never_steals_another_mapping(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch"))
    await store.insert("t1", _res("id-2", "b@x.ch"))
    with pytest.raises(DuplicateKey):
        await store.update("t1", _res("id-2", "a@x.ch"))
    first = await store.get("t1", "User", "id-1")
    assert first is not None and first.backend_key == "a@x.ch"


async def test_external_id_is_case_exact(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch", externalId="Joy"))
    assert await store.find_by_external_id("t1", "User", "joy") == []
    assert len(await store.find_by_external_id("t1", "User", "Joy")) == 1


async def test_get_many(store: StateStore) -> None:
    for i in range(3):
        await store.insert("t1", _res(f"id-{i}", f"u{i}@x.ch"))
    by_keys = await store.get_many_by_keys("t1", "User", ["u0@x.ch", "u2@x.ch", "missing"])
    assert sorted(r.id for r in by_keys.values()) == ["id-0", "id-2"]
    by_ids = await store.get_many("t1", "User", ["id-1", "nope"])
    assert list(by_ids) == ["id-1"]
    assert await store.ids_by_keys("t1", "User", ["u0@x.ch", "u2@x.ch", "missing"]) == {
        "u0@x.ch": "id-0", "u2@x.ch": "id-2"}
    assert await store.ids_by_keys("t1", "Group", ["u0@x.ch"]) == {}
    assert await store.ids_by_keys("t2", "User", ["u0@x.ch"]) == {}
    assert await store.ids_by_keys("t1", "User", []) == {}


async def test_delete(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch", externalId="e"))
    await store.delete("t1", "User", "id-1")
    assert await store.get("t1", "User", "id-1") is None
    assert await store.get_by_key("t1", "User", "a@x.ch") is None
    assert await store.find_by_external_id("t1", "User", "e") == []
    await store.delete("t1", "User", "id-1")  # idempotent


async def test_returned_objects_are_copies(store: StateStore) -> None:
    await store.insert("t1", _res("id-1", "a@x.ch", title="x"))
    got = await store.get("t1", "User", "id-1")
    assert got is not None
    got.shadow["title"] = "changed"
    again = await store.get("t1", "User", "id-1")
    assert again is not None and again.shadow["title"] == "x"


async def test_no_mutation_by_a_caller_reaches_the_store(store: StateStore) -> None:
    """Neither the object handed to insert/update nor any object a read returns is shared
    with the store, down to nested values."""
    original = _res("id-1", "a@x.ch", externalId="e", emails=[{"value": "a@x.ch"}], name={"formatted": "A"})
    await store.insert("t1", original)
    original.shadow["emails"][0]["value"] = "inserted object"
    original.sent["userName"] = "inserted object"

    def spoil(got: StoredResource) -> None:
        got.shadow["emails"][0]["value"] = "spoilt"
        got.shadow["name"]["formatted"] = "spoilt"
        got.shadow["externalId"] = "spoilt"
        got.sent["userName"] = "spoilt"
        got.version = 99

    for _ in range(2):
        reads: list[StoredResource | None] = [
            await store.get("t1", "User", "id-1"),
            await store.get_by_key("t1", "User", "a@x.ch"),
            *(await store.get_many("t1", "User", ["id-1"])).values(),
            *(await store.get_many_by_keys("t1", "User", ["a@x.ch"])).values(),
            *await store.find_by_external_id("t1", "User", "e"),
        ]
        if isinstance(store, MappingScanner):
            reads += await store.iter_mappings("t1", "User", None, 10)
        assert len(reads) == (6 if isinstance(store, MappingScanner) else 5)
        for got in reads:
            assert got is not None
            assert got.shadow == {"externalId": "e", "emails": [{"value": "a@x.ch"}], "name": {"formatted": "A"}}
            assert got.sent == {"userName": "A@X.CH"} and got.version == 1
            spoil(got)

    updated = _res("id-1", "a@x.ch", externalId="e", emails=[{"value": "b@x.ch"}])
    await store.update("t1", updated)
    updated.shadow["emails"][0]["value"] = "updated object"
    got = await store.get("t1", "User", "id-1")
    assert got is not None and got.shadow["emails"] == [{"value": "b@x.ch"}]


async def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first = SqliteStore(path)
    await first.open()
    await first.insert("t1", _res("id-1", "a@x.ch", externalId="e"))
    await first.close()
    second = SqliteStore(path)
    await second.open()
    got = await second.get("t1", "User", "id-1")
    await second.close()
    assert got is not None and got.shadow == {"externalId": "e"}


# --- lock() -------------------------------------------------------------------------


class Holder:
    """A task that takes a store lock and keeps it until released or cancelled."""

    def __init__(self, store: StateStore, tenant: str, name: str) -> None:
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(store, tenant, name))

    async def _run(self, store: StateStore, tenant: str, name: str) -> None:
        async with store.lock(tenant, name):
            self.held.set()
            await self.release.wait()

    async def holds_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.held.wait()
        except TimeoutError:
            if self.task.done():
                self.task.result()  # surface an error raised while taking the lock
            return False
        return True

    async def finish(self) -> None:
        self.release.set()
        await asyncio.wait_for(self.task, 5)

    async def cancel(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 5)


async def test_lock_excludes_a_second_holder_until_released(store: StateStore) -> None:
    first = Holder(store, "t1", "User/name/a")
    assert await first.holds_within(5)
    second = Holder(store, "t1", "User/name/a")
    assert not await second.holds_within(BLOCKED_FOR), "a second holder got the lock while the first held it"
    await first.finish()
    assert await second.holds_within(5)
    await second.finish()


async def test_lock_names_and_tenants_are_independent(store: StateStore) -> None:
    holders = [Holder(store, "t1", "Group/id/g1"), Holder(store, "t1", "Group/id/g2"),
               Holder(store, "t2", "Group/id/g1")]
    try:
        for holder in holders:
            assert await holder.holds_within(5)
    finally:
        for holder in holders:
            await holder.finish()


async def test_lock_is_released_when_the_body_raises(store: StateStore) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.lock("t1", "User/id/x"):
            raise RuntimeError("boom")
    again = Holder(store, "t1", "User/id/x")
    assert await again.holds_within(5)
    await again.finish()


async def test_lock_survives_cancelled_holders_and_waiters(store: StateStore) -> None:
    holder = Holder(store, "t1", "User/id/c")
    assert await holder.holds_within(5)
    waiter = Holder(store, "t1", "User/id/c")
    assert not await waiter.holds_within(BLOCKED_FOR)
    await waiter.cancel()
    await holder.cancel()
    after = Holder(store, "t1", "User/id/c")
    assert await after.holds_within(5), "the lock stayed taken after its holder and its waiter were cancelled"
    await after.finish()


async def test_lock_serialises_many_tasks(store: StateStore) -> None:
    inside = 0
    most = 0

    async def worker() -> None:
        nonlocal inside, most
        async with store.lock("t1", "Group/id/crowd"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(20))), 20)
    assert most == 1


# --- Idempotency-Key records ----------------------------------------------------------


def _record(key: str, expires: float, body: bytes = b'{"id":"1"}', status: int = 201) -> IdempotencyRecord:
    return IdempotencyRecord(key=key, fingerprint=f"fp-{key}", status=status,
                             headers={"Location": "/scim/v2/Users/1", "ETag": 'W/"1"'}, body=body, expires=expires)


async def test_idempotency_round_trip(store: StateStore) -> None:
    body = b'{"x":"\\u00e9\\u0000"}\x00\xff'  # arbitrary bytes must come back unchanged
    await store.idempotency_put("t1", _record("k1", 1000.0, body))
    got = await store.idempotency_get("t1", "k1", 999.0)
    assert got == _record("k1", 1000.0, body)
    assert isinstance(got.body, bytes)
    assert await store.idempotency_get("t1", "missing", 999.0) is None
    assert await store.idempotency_get("t2", "k1", 999.0) is None


async def test_idempotency_record_expires(store: StateStore) -> None:
    await store.idempotency_put("t1", _record("k1", 1000.0))
    assert await store.idempotency_get("t1", "k1", 999.999) is not None
    # "expires" is the first instant the key may be reused.
    assert await store.idempotency_get("t1", "k1", 1000.0) is None
    assert await store.idempotency_get("t1", "k1", 5000.0) is None


async def test_idempotency_put_replaces(store: StateStore) -> None:
    await store.idempotency_put("t1", _record("k1", 1000.0, b"old", 201))
    await store.idempotency_put("t1", _record("k1", 2000.0, b"new", 409))
    got = await store.idempotency_get("t1", "k1", 1500.0)
    assert got is not None and (got.body, got.status, got.expires) == (b"new", 409, 2000.0)


async def test_idempotency_purge_drops_only_expired(store: StateStore) -> None:
    await store.idempotency_put("t1", _record("old1", 100.0))
    await store.idempotency_put("t2", _record("old2", 200.0))
    await store.idempotency_put("t1", _record("edge", 300.0))
    await store.idempotency_put("t1", _record("live", 301.0))
    assert await store.idempotency_purge(300.0) == 3
    assert await store.idempotency_purge(300.0) == 0
    assert await store.idempotency_get("t1", "live", 0.0) is not None
    for tenant, key in (("t1", "old1"), ("t2", "old2"), ("t1", "edge")):
        assert await store.idempotency_get(tenant, key, 0.0) is None


# --- in-flight journal ------------------------------------------------------------------


def _entry(n: int, natural_key: str, resource_type: str = "User", op: str = "create") -> JournalEntry:
    resource = _res(f"id-{n}", natural_key, externalId=f"ext-{n}")
    resource.resource_type = resource_type
    return JournalEntry(id=f"entry-{n:02d}", resource_type=resource_type, op=op, natural_key=natural_key,
                        resource=resource, changes={"userName": natural_key, "name.givenName": "Ann"} if op ==
                        "update" else {}, created=f"2026-01-01T00:00:{n:02d}.000Z")


async def test_journal_round_trip_and_remove(store: StateStore) -> None:
    entry = _entry(1, "a@x.ch", op="update")
    await store.journal_add("t1", entry)
    pending = await store.journal_pending("t1")
    assert pending == [entry]
    assert isinstance(pending[0].resource, StoredResource)
    await store.journal_remove("t1", entry.id)
    assert await store.journal_pending("t1") == []
    await store.journal_remove("t1", entry.id)  # idempotent


async def test_journal_keeps_its_own_copy_of_the_entry(store: StateStore) -> None:
    """The journal hands the store the live resource and fills in its backend key afterwards."""
    entry = _entry(1, "a@x.ch", op="update")
    await store.journal_add("t1", entry)
    entry.resource.backend_key = "changed@x.ch"
    entry.resource.shadow["externalId"] = "changed"
    entry.changes["userName"] = "changed"
    (pending,) = await store.journal_pending("t1")
    assert pending == _entry(1, "a@x.ch", op="update")


async def test_journal_pending_filters_and_orders(store: StateStore) -> None:
    entries = [_entry(1, "a@x.ch"), _entry(2, "b@x.ch"), _entry(3, "a@x.ch", op="delete"),
               _entry(4, "a@x.ch", resource_type="Group")]
    for entry in entries:
        await store.journal_add("t1", entry)
    await store.journal_add("t2", _entry(5, "a@x.ch"))
    assert [e.id for e in await store.journal_pending("t1")] == ["entry-01", "entry-02", "entry-03", "entry-04"]
    assert [e.id for e in await store.journal_pending("t1", "User")] == ["entry-01", "entry-02", "entry-03"]
    assert [e.id for e in await store.journal_pending("t1", "User", "a@x.ch")] == ["entry-01", "entry-03"]
    assert [e.id for e in await store.journal_pending("t1", "Group", "a@x.ch")] == ["entry-04"]
    assert await store.journal_pending("t1", "User", "nobody@x.ch") == []
    assert [e.id for e in await store.journal_pending("t2")] == ["entry-05"]
    await store.journal_remove("t1", "entry-01")
    assert [e.id for e in await store.journal_pending("t1", "User", "a@x.ch")] == ["entry-03"]
    # Removing in another tenant touches nothing here.
    await store.journal_remove("t2", "entry-03")
    assert [e.id for e in await store.journal_pending("t1", "User", "a@x.ch")] == ["entry-03"]


async def test_journal_entries_are_copies(store: StateStore) -> None:
    entry = _entry(1, "a@x.ch")
    await store.journal_add("t1", entry)
    entry.resource.shadow["externalId"] = "changed after add"
    got = (await store.journal_pending("t1"))[0]
    got.resource.shadow["externalId"] = "changed after read"
    again = (await store.journal_pending("t1"))[0]
    assert again.resource.shadow["externalId"] == "ext-1"


async def test_sqlite_checkpoints_in_the_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from gateway.store import sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "CHECKPOINT_INTERVAL_S", 0.05)
    calls: list[int] = []
    real = SqliteStore._checkpoint

    def counting(self: SqliteStore) -> None:
        calls.append(1)
        real(self)

    monkeypatch.setattr(SqliteStore, "_checkpoint", counting)
    store = SqliteStore(str(tmp_path / "c.db"))
    await store.open()
    for i in range(50):
        await store.insert("t1", _res(f"id-{i}", f"u{i}@x.ch"))
    await asyncio.sleep(0.3)
    assert calls, "no background checkpoint ran"
    await store.close()
    wal = tmp_path / "c.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "close() leaves the WAL checkpointed and empty"
    reopened = SqliteStore(str(tmp_path / "c.db"))
    await reopened.open()
    assert await reopened.get("t1", "User", "id-49") is not None
    await reopened.close()


async def test_sqlite_journal_written_before_a_restart_is_seen_after_it(tmp_path: Path) -> None:
    """The SQLite store skips its journal query when it knows nothing is pending: what it knows must
    include entries left by an earlier process (a crash between journal and backend) and removals."""
    path = str(tmp_path / "state.sqlite3")
    first = SqliteStore(path)
    await first.open()
    await first.journal_add("t1", _entry(1, "a@x.ch"))
    await first.journal_add("t1", _entry(2, "b@x.ch"))
    await first.journal_remove("t1", "entry-02")
    await first.journal_remove("t1", "entry-02")  # a second removal must not make the count negative
    await first.close()
    second = SqliteStore(path)
    await second.open()
    try:
        assert [e.id for e in await second.journal_pending("t1", "User", "a@x.ch")] == ["entry-01"]
        await second.journal_remove("t1", "entry-01")
        assert await second.journal_pending("t1") == []
        await second.journal_add("t1", _entry(3, "c@x.ch"))
        assert [e.id for e in await second.journal_pending("t1")] == ["entry-03"]
    finally:
        await second.close()
