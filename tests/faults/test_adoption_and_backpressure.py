"""Mailboxes that predate the gateway are adopted; a full concurrency budget answers 429."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientSession

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import create_mock_app
from gateway.http.app import create_app
from tests.conftest import AUTH, make_settings
from tests.faults.test_fault_soak import DOMAIN, ServerFactory

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_existing_mailbox_is_adopted_with_a_stable_id(aiohttp_server: ServerFactory) -> None:
    mock = await aiohttp_server(create_mock_app("k", None, True, domains=[DOMAIN]))
    adapter = CleanmailAdapter(str(mock.make_url("/")), "k", default_domain=DOMAIN)
    gateway = await aiohttp_server(create_app(make_settings(), adapter=adapter))
    base = gateway.make_url("/scim/v2")
    async with ClientSession(headers=AUTH) as session:
        # Created on the platform by hand, before the gateway was deployed.
        async with session.post(mock.make_url("/api/v1/mailboxes"), headers={"X-API-Key": "k"},
                                json={"address": f"legacy@{DOMAIN}", "first_name": "Leg", "last_name": "Acy"}) as r:
            assert r.status in (200, 201), await r.text()
        # Entra's create would collide; Entra first matches by filter, and the gateway adopts.
        async with session.get(f'{base}/Users?filter=userName eq "Legacy@{DOMAIN}"') as r:
            body = await r.json()
        assert body["totalResults"] == 1
        adopted = body["Resources"][0]
        assert adopted["name"] == {"givenName": "Leg", "familyName": "Acy"}
        async with session.get(f'{base}/Users?filter=userName eq "legacy@{DOMAIN}"') as r:
            assert (await r.json())["Resources"][0]["id"] == adopted["id"]
        patch = {"schemas": [PATCH_OP], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "externalId", "value": "legacy"}]}
        async with session.patch(f"{base}/Users/{adopted['id']}", json=patch) as r:
            assert r.status == 200, await r.text()
        async with session.get(f'{base}/Users?filter=externalId eq "legacy"') as r:
            assert [u["id"] for u in (await r.json())["Resources"]] == [adopted["id"]]
        async with session.get(mock.make_url("/__mock__/state")) as r:
            [box] = (await r.json())["mailboxes"]
        assert box["status"] == "disabled"
        # A POST for it is a conflict, not a second mailbox.
        async with session.post(f"{base}/Users", json={"userName": f"legacy@{DOMAIN}"}) as r:
            assert r.status == 409
            assert (await r.json())["scimType"] == "uniqueness"


async def test_full_concurrency_budget_answers_429(aiohttp_server: ServerFactory) -> None:
    mock = await aiohttp_server(create_mock_app("k", None, True, domains=[DOMAIN]))
    adapter = CleanmailAdapter(str(mock.make_url("/")), "k", default_domain=DOMAIN, attempt_timeout=5)
    settings = make_settings(backend_concurrency=1, backend_queue_timeout=0.1)
    gateway = await aiohttp_server(create_app(settings, adapter=adapter))
    async with ClientSession(headers=AUTH) as session:
        await session.post(mock.make_url("/__mock__/faults"), json={"latency_ms": 600, "seed": 1})

        async def probe(i: int) -> tuple[int, str | None]:
            url = gateway.make_url(f'/scim/v2/Users?filter=userName eq "p{i}@{DOMAIN}"')
            async with session.get(url) as r:
                return r.status, r.headers.get("Retry-After")

        results = await asyncio.gather(*[probe(i) for i in range(4)])
    statuses = sorted(s for s, _ in results)
    assert statuses[0] == 200
    assert 429 in statuses
    assert all(int(ra) >= 1 for s, ra in results if s == 429 and ra is not None)


async def test_recreated_mailbox_gets_a_new_id(aiohttp_server: ServerFactory) -> None:
    mock = await aiohttp_server(create_mock_app("k", None, True, domains=[DOMAIN]))
    adapter = CleanmailAdapter(str(mock.make_url("/")), "k", default_domain=DOMAIN)
    gateway = await aiohttp_server(create_app(make_settings(), adapter=adapter))
    base = gateway.make_url("/scim/v2")
    async with ClientSession(headers=AUTH) as session:
        async with session.post(f"{base}/Users", json={"userName": f"gone@{DOMAIN}", "title": "Old"}) as r:
            old = await r.json()
        # Deleted on the platform by hand; the gateway still has the mapping.
        async with session.delete(mock.make_url(f"/api/v1/mailboxes/gone@{DOMAIN}"), headers={"X-API-Key": "k"}):
            pass
        async with session.post(f"{base}/Users", json={"userName": f"gone@{DOMAIN}"}) as r:
            assert r.status == 201, await r.text()
            new = await r.json()
        assert new["id"] != old["id"]
        assert "title" not in new
        async with session.get(f"{base}/Users/{old['id']}") as r:
            assert r.status == 404


async def test_a_busy_state_store_answers_503(aiohttp_client: Any) -> None:
    import contextlib
    from collections.abc import AsyncIterator

    from gateway.store.base import StoreBusy
    from gateway.store.memory import MemoryStore

    class BusyStore(MemoryStore):
        @contextlib.asynccontextmanager
        async def _busy(self) -> AsyncIterator[None]:
            raise StoreBusy("lock held elsewhere")
            yield

        def lock(self, tenant: str, name: str) -> Any:
            return self._busy()

    client = await aiohttp_client(create_app(make_settings(), store=BusyStore()), headers=AUTH)
    resp = await client.post("/scim/v2/Users", json={"userName": "busy@x.example"})
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["status"] == "503"
