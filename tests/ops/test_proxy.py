"""Behind a reverse proxy: response URLs name the proxy's scheme and host, only when trusted."""

from __future__ import annotations

import ipaddress
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.http.proxy import TrustedProxies, parse_address
from tests.conftest import BASE
from tests.ops.conftest import GatewayFactory, user

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "scim.example.com, gw-internal:8080"}


async def test_forwarded_scheme_and_host_build_locations_when_trusted(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway(trusted_proxies=["127.0.0.0/8"])
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


async def test_forwarded_headers_from_a_peer_that_is_no_trusted_proxy_are_ignored(make_gateway: GatewayFactory
                                                                                  ) -> None:
    # The test client connects from 127.0.0.1; only 10.0.0.0/8 hosts the proxies.
    scim = await make_gateway(trusted_proxies=["10.0.0.0/8", "192.0.2.7"])
    reply = await scim.post(f"{BASE}/Users", json=user("p5@example.ch"), headers=FORWARDED)
    assert reply.headers["Location"].startswith(f"http://{scim.host}:{scim.port}/scim/v2/Users/")


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "evil.example/path"},
    {"X-Forwarded-Proto": "", "X-Forwarded-Host": "a b"},
    {"X-Forwarded-Host": "@evil.example"},
])
async def test_malformed_forwarded_values_are_ignored(make_gateway: GatewayFactory, headers: dict[str, str]) -> None:
    scim = await make_gateway(trusted_proxies=["127.0.0.0/8"])
    reply = await scim.post(f"{BASE}/Users", json=user("p3@example.ch"), headers=headers)
    assert reply.headers["Location"].startswith(f"http://{scim.host}:{scim.port}/scim/v2/Users/")


async def test_only_the_scheme_may_be_forwarded(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway(trusted_proxies=["127.0.0.0/8"])
    reply = await scim.post(f"{BASE}/Users", json=user("p4@example.ch"), headers={"X-Forwarded-Proto": "HTTPS"})
    assert reply.headers["Location"].startswith(f"https://{scim.host}:{scim.port}/scim/v2/Users/")


def _request(peer: str, forwarded_for: list[str]) -> web.Request:
    headers = CIMultiDict(("X-Forwarded-For", v) for v in forwarded_for)
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 4711) if name == "peername" else default
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # not a proxy: its header is a claim, not a fact
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["198.51.100.66, 198.51.100.1, 10.0.0.3"], "198.51.100.1"),  # a client cannot forge past hops
        ("10.0.0.2", ["198.51.100.66", "198.51.100.1"], "198.51.100.1"),  # headers repeated instead of joined
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["garbage, 198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["198.51.100.1, garbage"], "10.0.0.2"),
        ("::ffff:10.0.0.2", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_client_address_through_trusted_proxies(peer: str, forwarded_for: list[str], client: str) -> None:
    proxies = TrustedProxies([ipaddress.ip_network("10.0.0.0/8")])
    assert str(proxies.client(_request(peer, forwarded_for), parse_address(peer))) == client
