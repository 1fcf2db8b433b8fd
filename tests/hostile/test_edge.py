"""Edge protection: client networks per tenant, and throttling of failed authentications."""

from __future__ import annotations

from typing import Any

from gateway.http.app import create_app
from gateway.http.edge import MAX_TRACKED_ADDRESSES, EdgeGuard
from tests.conftest import AUTH, BASE, TOKEN, ClientFactory, make_settings

BAD = {"Authorization": "Bearer not-the-token"}


async def _client(aiohttp_client: ClientFactory, **settings: Any) -> Any:
    return await aiohttp_client(create_app(make_settings(**settings)))


async def test_addresses_outside_the_allowed_networks_get_403_before_authentication(aiohttp_client: ClientFactory
                                                                                     ) -> None:
    client = await _client(aiohttp_client, allowed_networks=["10.0.0.0/8", "2001:db8::/32"])
    for headers in (AUTH, BAD, {}):
        resp = await client.get(f"{BASE}/Users", headers=headers)
        assert resp.status == 403, await resp.text()
        assert (await resp.json())["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert (await client.get("/healthz")).status == 200  # probes are not SCIM clients


async def test_allowed_networks_admit_their_clients(aiohttp_client: ClientFactory) -> None:
    client = await _client(aiohttp_client, allowed_networks=["127.0.0.0/8"])
    assert (await client.get(f"{BASE}/Users", headers=AUTH)).status == 200


async def test_allowed_networks_work_behind_trusted_proxies(aiohttp_client: ClientFactory) -> None:
    client = await _client(aiohttp_client, allowed_networks=["203.0.113.0/24"], trusted_proxies=["127.0.0.1"])
    inside = {**AUTH, "X-Forwarded-For": "203.0.113.77"}
    outside = {**AUTH, "X-Forwarded-For": "198.51.100.1"}
    assert (await client.get(f"{BASE}/Users", headers=inside)).status == 200
    assert (await client.get(f"{BASE}/Users", headers=outside)).status == 403


async def test_repeated_failed_authentications_are_throttled(aiohttp_client: ClientFactory) -> None:
    client = await _client(aiohttp_client, auth_failures_per_minute=5)
    statuses = [(await client.get(f"{BASE}/Users", headers=BAD)).status for _ in range(8)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3
    throttled = await client.get(f"{BASE}/Users", headers={"Authorization": f"Bearer {TOKEN}"})
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) >= 1


def test_failed_authentications_are_remembered_with_bounded_memory() -> None:
    edge = EdgeGuard([], failures_per_minute=3)
    for n in range(3 * MAX_TRACKED_ADDRESSES):
        edge.failed(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
    assert len(edge._failures) <= MAX_TRACKED_ADDRESSES
    for _ in range(3):
        edge.failed("192.0.2.1")
    assert edge.lockout("192.0.2.1") is not None
