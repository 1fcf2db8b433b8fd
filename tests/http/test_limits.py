"""Configured request limits are enforced by the SCIM layer, whatever the client's spelling."""

from __future__ import annotations

from adapters.memory import MemoryAdapter
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings


async def test_patch_operation_limit_applies_whatever_the_key_case(aiohttp_client: ClientFactory) -> None:
    adapter = MemoryAdapter()
    client = await aiohttp_client(create_app(make_settings(max_patch_operations=2), adapter=adapter), headers=AUTH)
    user = await (await client.post(f"{BASE}/Users", json={"userName": "many@x.example"})).json()
    ops = [{"op": "add", "path": "title", "value": f"t{i}"} for i in range(3)]
    for key in ("Operations", "operations"):
        resp = await client.patch(f"{BASE}/Users/{user['id']}", json={"schemas": [
            "urn:ietf:params:scim:api:messages:2.0:PatchOp"], key: ops})
        assert resp.status == 400, key
        assert (await resp.json())["scimType"] == "tooMany"
    assert adapter.calls.get("update_user", 0) == 0
