"""Behind a reverse proxy: response URLs name the proxy's scheme and host, only when trusted."""

from __future__ import annotations

import pytest

from tests.conftest import BASE
from tests.ops.conftest import GatewayFactory, user

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "scim.example.com, gw-internal:8080"}


async def test_forwarded_scheme_and_host_build_locations_when_trusted(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway(trust_proxy=True)
    reply = await scim.post(f"{BASE}/Users", json=user("p1@example.ch"), headers=FORWARDED)
    assert reply.status == 201
    body = await reply.json()
    expected = f"https://scim.example.com/scim/v2/Users/{body['id']}"
    assert reply.headers["Location"] == expected
    assert body["meta"]["location"] == expected
    listed = await (await scim.get(f"{BASE}/Users", headers=FORWARDED)).json()
    assert listed["Resources"][0]["meta"]["location"] == expected
    spc = await (await scim.get(f"{BASE}/ServiceProviderConfig", headers=FORWARDED)).json()
    assert spc["meta"]["location"].startswith("https://scim.example.com/scim/v2/")


async def test_forwarded_headers_are_ignored_by_default(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway()
    reply = await scim.post(f"{BASE}/Users", json=user("p2@example.ch"), headers=FORWARDED)
    assert reply.headers["Location"].startswith(f"http://{scim.host}:{scim.port}/scim/v2/Users/")


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil.example/path"},
    {"X-Forwarded-Proto": "", "X-Forwarded-Host": "a b"},
    {"X-Forwarded-Host": "@evil.example"},
])
async def test_malformed_forwarded_values_are_ignored(make_gateway: GatewayFactory, headers: dict[str, str]) -> None:
    scim = await make_gateway(trust_proxy=True)
    reply = await scim.post(f"{BASE}/Users", json=user("p3@example.ch"), headers=headers)
    assert reply.headers["Location"].startswith(f"http://{scim.host}:{scim.port}/scim/v2/Users/")


async def test_only_the_scheme_may_be_forwarded(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway(trust_proxy=True)
    reply = await scim.post(f"{BASE}/Users", json=user("p4@example.ch"), headers={"X-Forwarded-Proto": "HTTPS"})
    assert reply.headers["Location"].startswith(f"https://{scim.host}:{scim.port}/scim/v2/Users/")
