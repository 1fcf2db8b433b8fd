"""MemoryStore specifics beyond the store contract: its compact records and indexes."""

from __future__ import annotations

import orjson
import pytest

from gateway.store.base import IdempotencyRecord, StoredResource
from gateway.store.memory import MemoryStore
from tests.memory_support import bytes_per_call


def _res(id: str, key: str, external_id: str | None = None, **fields: object) -> StoredResource:
    shadow = {"externalId": external_id} if external_id is not None else {}
    return StoredResource(id=id, resource_type="User", backend_key=key, shadow=shadow, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("fields", [
    {},
    {"version": 7, "created": "2026-01-01T00:00:00.000Z", "last_modified": "2026-01-01T00:00:00.000Z"},
    {"version": 3, "created": "2026-01-01T00:00:00.000Z", "last_modified": "2026-02-03T04:05:06.789Z",
     "sent": {"userName": "A@X.CH", "name.givenName": "Ann"}},
])
async def test_every_field_reads_back_as_written(fields: dict[str, object]) -> None:
    store = MemoryStore()
    written = _res("id-1", "a@x.ch", "ext", **fields)
    written.shadow.update({"emails": [{"value": "a@x.ch", "primary": True}], "title": None, "n": 1.5})
    await store.insert("t1", written)
    assert await store.get("t1", "User", "id-1") == written
    assert await store.iter_mappings("t1", "User", None, 5) == [written]


async def test_external_id_shared_by_several_mappings() -> None:
    store = MemoryStore()
    for id in ("id-3", "id-1", "id-2"):
        await store.insert("t1", _res(id, f"{id}@x.ch", "shared"))

    async def holders(external_id: str) -> list[str]:
        return [r.id for r in await store.find_by_external_id("t1", "User", external_id)]

    assert await holders("shared") == ["id-1", "id-2", "id-3"]  # id order, as before
    await store.delete("t1", "User", "id-2")
    assert await holders("shared") == ["id-1", "id-3"]
    await store.update("t1", _res("id-1", "id-1@x.ch", "other"))
    assert await holders("shared") == ["id-3"]
    assert await holders("other") == ["id-1"]
    await store.update("t1", _res("id-3", "id-3@x.ch"))  # externalId cleared
    assert await holders("shared") == []
    await store.update("t1", _res("id-3", "id-3@x.ch", "other"))
    assert await holders("other") == ["id-1", "id-3"]


async def test_a_record_orjson_refuses_leaves_the_store_as_it_was() -> None:
    store = MemoryStore()
    await store.insert("t1", _res("id-1", "a@x.ch", "ext"))
    bad = _res("id-1", "b@x.ch", "new")
    bad.shadow["when"] = object()
    with pytest.raises(TypeError):
        await store.update("t1", bad)
    bad.resource_type, bad.id = "User", "id-2"
    with pytest.raises(TypeError):
        await store.insert("t1", bad)
    got = await store.get_by_key("t1", "User", "a@x.ch")
    assert got is not None and got.id == "id-1" and got.external_id == "ext"
    assert [r.id for r in await store.find_by_external_id("t1", "User", "ext")] == ["id-1"]
    assert await store.get_by_key("t1", "User", "b@x.ch") is None
    assert await store.get("t1", "User", "id-2") is None


async def test_records_are_kept_compactly() -> None:
    # orjson.dumps returns its whole (4 KiB+) write buffer: keeping that per record was
    # several times the size of everything else.
    store = MemoryStore()
    per_record = await bytes_per_call(500, lambda i: store.insert("t1", _res(
        f"id-{i:04d}", f"user{i}@x.ch", f"ext-{i}", created="2026-01-01T00:00:00.000Z",
        sent={"userName": f"User{i}@x.ch"})))
    assert per_record < 800


async def test_idempotency_body_is_kept_right_sized() -> None:
    store = MemoryStore()
    per_record = await bytes_per_call(50, lambda i: store.idempotency_put("t1", IdempotencyRecord(
        key=f"k{i}", fingerprint="f", status=201, headers={"ETag": 'W/"1"'},
        body=orjson.dumps({"id": f"id-{i}"}), expires=100.0)))
    assert per_record < 2000
    got = await store.idempotency_get("t1", "k7", 0.0)
    assert got is not None and got.body == b'{"id":"id-7"}' and got.headers == {"ETag": 'W/"1"'}
