"""A group rename follows the same steps as a user rename: name lock, uniqueness, journal.

The platform here, like several legacy mail-admin APIs, does not itself refuse a second list
with the same display name, so only the gateway's own check keeps names unique.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from adapters.base import Attributes, GroupRecord
from adapters.memory import MemoryAdapter
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class PermissiveLists(MemoryAdapter):
    """Renames a list to any display name, even one another list has, and takes its time."""

    async def update_group(self, record: GroupRecord, changes: Attributes) -> GroupRecord:
        await asyncio.sleep(0.05)
        group = self._groups[record.key]
        self._group_by_name.pop(str(group.attributes.get("displayName", "")).lower(), None)
        group.attributes.update(changes)
        self._group_by_name[str(group.attributes["displayName"]).lower()] = record.key
        return self._copy_group(group)


async def _client(aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(make_settings(), adapter=PermissiveLists()), headers=AUTH)


def _rename(name: str) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "displayName", "value": name}]}


async def _group(client: TestClient[Any, Any], name: str) -> str:
    resp = await client.post(f"{BASE}/Groups", json={"displayName": name})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def test_rename_onto_a_taken_name_is_a_uniqueness_conflict(aiohttp_client: ClientFactory) -> None:
    client = await _client(aiohttp_client)
    await _group(client, "Sales")
    other = await _group(client, "Marketing")
    resp = await client.patch(f"{BASE}/Groups/{other}", json=_rename("SALES"))
    assert resp.status == 409, await resp.text()
    body = await resp.json()
    assert body["scimType"] == "uniqueness"
    assert "already taken" in body["detail"]
    listing = await (await client.get(f'{BASE}/Groups?filter=displayName eq "sales"')).json()
    assert listing["totalResults"] == 1


async def test_concurrent_renames_onto_one_name_let_exactly_one_through(aiohttp_client: ClientFactory) -> None:
    client = await _client(aiohttp_client)
    ids = [await _group(client, f"Team {n}") for n in range(4)]
    replies = await asyncio.gather(*(client.patch(f"{BASE}/Groups/{i}", json=_rename("Board")) for i in ids))
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 409, 409, 409], statuses
    listing = await (await client.get(f'{BASE}/Groups?filter=displayName eq "Board"')).json()
    assert listing["totalResults"] == 1
