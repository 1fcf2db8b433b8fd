"""One behavioural suite for every state store implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store.base import DuplicateKey, StateStore, StoredResource
from gateway.store.memory import MemoryStore
from gateway.store.sqlite import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    impl: StateStore = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "state.db"))
    await impl.open()
    yield impl
    await impl.close()


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
