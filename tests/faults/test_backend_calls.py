"""Backend calls per SCIM operation through the gateway: no wasted round trips to the platform."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import create_mock_app
from gateway.http.app import create_app
from tests.conftest import AUTH, make_settings
from tests.faults.test_fault_soak import DOMAIN, ServerFactory

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_calls_per_entra_operation(aiohttp_server: ServerFactory) -> None:
    mock: TestServer = await aiohttp_server(create_mock_app("k", None, True, domains=[DOMAIN]))
    adapter = CleanmailAdapter(str(mock.make_url("/")), "k", default_domain=DOMAIN)
    gateway = await aiohttp_server(create_app(make_settings(), adapter=adapter))
    base = gateway.make_url("/scim/v2")

    async with ClientSession(headers=AUTH) as session:

        async def calls_of(method: str, path: str, body: Any = None) -> dict[str, int]:
            async with session.get(mock.make_url("/__mock__/stats")) as resp:
                before = (await resp.json())["calls"]
            async with session.request(method, f"{base}{path}", json=body) as resp:
                assert resp.status < 300, await resp.text()
            async with session.get(mock.make_url("/__mock__/stats")) as resp:
                after = (await resp.json())["calls"]
            return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}

        assert await calls_of("GET", f'/Users?filter=userName eq "probe@{DOMAIN}"') == {
            "GET /api/v1/mailboxes/{address}": 1}
        async with session.post(f"{base}/Users", json={"userName": f"a@{DOMAIN}"}) as resp:
            user = await resp.json()
        disable = {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
        assert await calls_of("PATCH", f"/Users/{user['id']}", disable) == {
            "GET /api/v1/mailboxes/{address}": 1, "PUT /api/v1/mailboxes/{address}": 1}
        # The same PATCH again changes nothing: one read, no write.
        assert await calls_of("PATCH", f"/Users/{user['id']}", disable) == {"GET /api/v1/mailboxes/{address}": 1}
        # An attribute the platform does not store: no write either.
        title = {"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "title", "value": "Engineer"}]}
        assert await calls_of("PATCH", f"/Users/{user['id']}", title) == {"GET /api/v1/mailboxes/{address}": 1}
