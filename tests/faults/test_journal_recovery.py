"""A write interrupted by a crash is finished or rolled back on the next touch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from adapters.memory import MemoryAdapter
from gateway.http.app import STORE_KEY, create_app
from gateway.http.middleware import REGISTRY_KEY
from gateway.store.base import JournalEntry, StoredResource
from gateway.store.sqlite import SqliteStore
from tests.conftest import AUTH, BASE, ClientFactory, make_settings

STAMP = "2026-01-01T00:00:00.000Z"


def _entry(op: str, name: str, resource: StoredResource, changes: dict[str, Any] | None = None) -> JournalEntry:
    return JournalEntry(id=f"j-{op}-{name}", resource_type=resource.resource_type, op=op, natural_key=name.lower(),
                        resource=resource, changes=changes or {}, created=STAMP)


async def _gateway(aiohttp_client: ClientFactory, path: Path, adapter: MemoryAdapter) -> Any:
    app = create_app(make_settings(state=f"sqlite:///{path}"), adapter=adapter)
    return await aiohttp_client(app, headers=AUTH)


async def test_create_that_reached_the_backend_is_finished(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    adapter = MemoryAdapter()
    # The crash: the mailbox exists, the journal says we created it, the mapping was never written.
    await adapter.create_user({"userName": "crash@x.example", "active": True})
    store = SqliteStore(str(db))
    await store.open()
    intended = StoredResource(id="id-from-before-the-crash", resource_type="User", backend_key="",
                              shadow={"externalId": "crash", "title": "Engineer"}, created=STAMP, last_modified=STAMP,
                              sent={"userName": "Crash@X.example"})
    await store.journal_add("default", _entry("create", "Crash@X.example", intended))
    await store.close()

    client = await _gateway(aiohttp_client, db, adapter)
    resp = await client.get(f'{BASE}/Users?filter=userName eq "Crash@X.example"')
    body = await resp.json()
    assert body["totalResults"] == 1
    user = body["Resources"][0]
    # The id Entra may already have been given, and the attributes only the gateway keeps.
    assert user["id"] == "id-from-before-the-crash"
    assert user["title"] == "Engineer"
    assert user["userName"] == "Crash@X.example"
    assert adapter.calls.get("create_user", 0) == 1


async def test_create_that_never_reached_the_backend_is_dropped(aiohttp_client: ClientFactory,
                                                              tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    store = SqliteStore(str(db))
    await store.open()
    intended = StoredResource(id="never", resource_type="User", backend_key="", created=STAMP, last_modified=STAMP)
    await store.journal_add("default", _entry("create", "ghost@x.example", intended))
    await store.close()
    adapter = MemoryAdapter()
    client = await _gateway(aiohttp_client, db, adapter)
    resp = await client.get(f'{BASE}/Users?filter=userName eq "ghost@x.example"')
    assert (await resp.json())["totalResults"] == 0
    # Entra's POST that follows creates it once, with a fresh id.
    created = await client.post(f"{BASE}/Users", json={"userName": "ghost@x.example"})
    assert created.status == 201
    assert (await created.json())["id"] != "never"
    again = SqliteStore(str(db))
    await again.open()
    assert await again.journal_pending("default") == []
    await again.close()


async def test_update_that_reached_the_backend_is_finished(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    adapter = MemoryAdapter()
    client = await _gateway(aiohttp_client, db, adapter)
    user = await (await client.post(f"{BASE}/Users", json={"userName": "upd@x.example", "title": "Old"})).json()
    # The crash: the backend took the disable, the store never heard of the new version and title.
    await adapter.update_user(await adapter.get_user("upd@x.example"), {"active": False})
    store = SqliteStore(str(db))
    await store.open()
    current = await store.get("default", "User", user["id"])
    assert current is not None
    target = StoredResource(**{**current.__dict__, "version": current.version + 1, "shadow": {"title": "New"}})
    await store.journal_add("default", _entry("update", "upd@x.example", target, {"active": False}))
    await store.close()
    fresh = await _gateway(aiohttp_client, db, adapter)
    resp = await fresh.get(f'{BASE}/Users?filter=userName eq "upd@x.example"')
    [found] = (await resp.json())["Resources"]
    assert found["active"] is False
    assert found["title"] == "New"
    assert found["meta"]["version"] == f'W/"{current.version + 1}"'


class _HeldRead(MemoryAdapter):
    """Holds the next read of one mailbox until released, to interleave two writers deterministically."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()

    async def get_user(self, key: str) -> Any:
        record = await super().get_user(key)
        if self.hold is not None:
            release, self.hold = self.hold, None
            self.held.set()
            await release.wait()
        return record


async def test_a_sweep_never_overwrites_a_newer_write(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    adapter = _HeldRead()
    client = await _gateway(aiohttp_client, db, adapter)
    user = await (await client.post(f"{BASE}/Users", json={"userName": "race@x.example", "title": "Old"})).json()
    # A crash left this behind: the backend took the disable, the store never heard of it.
    await adapter.update_user(await adapter.get_user("race@x.example"), {"active": False})
    store = client.app[STORE_KEY]
    current = await store.get("default", "User", user["id"])
    assert current is not None
    stale = StoredResource(**{**current.__dict__, "version": current.version + 1})
    await store.journal_add("default", _entry("update", "race@x.example", stale, {"active": False}))

    # The sweep reads the mapping, then waits on the platform; meanwhile Entra's PATCH commits.
    release = asyncio.Event()
    adapter.hold = release
    sweep = asyncio.ensure_future(client.app[REGISTRY_KEY].tenants["default"].users.recover())
    await adapter.held.wait()
    patched = await client.patch(f"{BASE}/Users/{user['id']}", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "title", "value": "New"}]})
    assert patched.status == 200, await patched.text()
    release.set()
    assert await sweep == 1

    after = await (await client.get(f"{BASE}/Users/{user['id']}")).json()
    assert after["title"] == "New", "the sweep wrote the interrupted update over the newer PATCH"
    assert after["active"] is False
