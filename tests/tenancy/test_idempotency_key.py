"""Idempotency-Key on POST and PATCH: replay, mismatch, expiry."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from adapters.memory import MemoryAdapter
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings

Client = TestClient[Any, Any]


async def _client(aiohttp_client: ClientFactory, **settings: Any) -> tuple[Client, MemoryAdapter]:
    adapter = MemoryAdapter()
    app = create_app(make_settings(**settings), adapter=adapter)
    return await aiohttp_client(app, headers=AUTH), adapter


async def test_same_key_same_body_replays_without_backend_call(aiohttp_client: ClientFactory) -> None:
    client, adapter = await _client(aiohttp_client)
    body = orjson.dumps({"userName": "idem@x.example"})
    headers = {"Idempotency-Key": "k-1", "Content-Type": "application/scim+json"}
    first = await client.post(f"{BASE}/Users", data=body, headers=headers)
    assert first.status == 201
    created = adapter.calls.get("create_user", 0)
    second = await client.post(f"{BASE}/Users", data=body, headers=headers)
    assert second.status == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await second.json() == await first.json()
    assert second.headers["Location"] == first.headers["Location"]
    assert adapter.calls.get("create_user", 0) == created
    # Without the key the same body is a genuine duplicate.
    third = await client.post(f"{BASE}/Users", data=body, headers={"Content-Type": "application/scim+json"})
    assert third.status == 409


async def test_same_key_different_body_is_422(aiohttp_client: ClientFactory) -> None:
    client, _ = await _client(aiohttp_client)
    headers = {"Idempotency-Key": "k-2"}
    assert (await client.post(f"{BASE}/Users", json={"userName": "a@x.example"}, headers=headers)).status == 201
    other = await client.post(f"{BASE}/Users", json={"userName": "b@x.example"}, headers=headers)
    assert other.status == 422
    assert (await other.json())["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


async def test_patch_replay_and_client_errors_are_remembered(aiohttp_client: ClientFactory) -> None:
    client, adapter = await _client(aiohttp_client)
    user = await (await client.post(f"{BASE}/Users", json={"userName": "p@x.example"})).json()
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    headers = {"Idempotency-Key": "patch-1"}
    first = await client.patch(f"{BASE}/Users/{user['id']}", json=patch, headers=headers)
    updates = adapter.calls.get("update_user", 0)
    again = await client.patch(f"{BASE}/Users/{user['id']}", json=patch, headers=headers)
    assert first.status == again.status == 200
    assert adapter.calls.get("update_user", 0) == updates
    bad = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "explode"}]}
    one = await client.patch(f"{BASE}/Users/{user['id']}", json=bad, headers={"Idempotency-Key": "bad"})
    two = await client.patch(f"{BASE}/Users/{user['id']}", json=bad, headers={"Idempotency-Key": "bad"})
    assert one.status == two.status == 400
    assert two.headers["Idempotent-Replayed"] == "true"


async def test_concurrent_retries_create_once(aiohttp_client: ClientFactory) -> None:
    client, adapter = await _client(aiohttp_client)
    body = {"userName": "race@x.example"}
    replies = await asyncio.gather(*[
        client.post(f"{BASE}/Users", json=body, headers={"Idempotency-Key": "race"}) for _ in range(8)
    ])
    assert [r.status for r in replies] == [201] * 8
    assert adapter.calls["create_user"] == 1
    assert len({(await r.json())["id"] for r in replies}) == 1


async def test_keys_expire(aiohttp_client: ClientFactory) -> None:
    client, _ = await _client(aiohttp_client, idempotency_ttl=0.05)
    headers = {"Idempotency-Key": "short"}
    assert (await client.post(f"{BASE}/Users", json={"userName": "e1@x.example"}, headers=headers)).status == 201
    await asyncio.sleep(0.1)
    # Expired: the key is free for a new request.
    assert (await client.post(f"{BASE}/Users", json={"userName": "e2@x.example"}, headers=headers)).status == 201


async def test_keys_are_per_tenant(aiohttp_client: ClientFactory) -> None:
    from gateway.config import Settings
    from gateway.tenants import hash_token

    app = create_app(Settings(state="memory", tenants={
        "a": {"token_hashes": [hash_token("tok-a")]}, "b": {"token_hashes": [hash_token("tok-b")]},
    }))
    client = await aiohttp_client(app)
    for token, name in (("tok-a", "u@a.example"), ("tok-b", "u@b.example")):
        resp = await client.post(f"{BASE}/Users", json={"userName": name},
                                 headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "shared"})
        assert resp.status == 201, await resp.text()

