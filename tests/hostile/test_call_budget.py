"""Every SCIM request has a bounded cost on the mail platform: no filter makes 2^n calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import create_mock_app
from gateway.config import DEFAULT_CALL_BUDGET
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, make_settings

DOMAIN = "budget.example"
KEY = "budget-key"
ServerFactory = Callable[..., Any]

# The filter found by the security review: 15 pairs, 805 characters, 32,768 OR-terms once expanded.
EXPLOSIVE = " and ".join(f'(userName eq "u{i}@{DOMAIN}" or active eq true)' for i in range(15))


async def _setup(aiohttp_server: ServerFactory, users: int, **settings: Any) -> tuple[TestServer, TestServer]:
    mock: TestServer = await aiohttp_server(create_mock_app(KEY, None, True, domains=[DOMAIN]))
    async with ClientSession() as session:
        for n in range(users):
            async with session.post(mock.make_url("/api/v1/mailboxes"), headers={"X-API-Key": KEY},
                                    json={"address": f"u{n}@{DOMAIN}", "status": "active"}) as resp:
                assert resp.status in (200, 201), await resp.text()
    adapter = CleanmailAdapter(str(mock.make_url("/")), KEY, default_domain=DOMAIN)
    gateway: TestServer = await aiohttp_server(create_app(make_settings(**settings), adapter=adapter))
    return mock, gateway


async def _calls(session: ClientSession, mock: TestServer) -> int:
    async with session.get(mock.make_url("/__mock__/stats")) as resp:
        return sum((await resp.json())["calls"].values())


async def test_an_exploding_filter_costs_a_handful_of_calls(aiohttp_server: ServerFactory) -> None:
    mock, gateway = await _setup(aiohttp_server, users=20)
    async with ClientSession(headers=AUTH) as session:
        before = await _calls(session, mock)
        async with session.get(gateway.make_url(f"{BASE}/Users"), params={"filter": EXPLOSIVE}) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        spent = await _calls(session, mock) - before
    # Every user is active, so every one matches; the platform saw a few calls, not 32,768.
    assert body["totalResults"] == 20
    assert spent <= DEFAULT_CALL_BUDGET, spent


async def test_a_filter_beyond_the_budget_is_refused_with_the_reason(aiohttp_server: ServerFactory) -> None:
    # 250 mailboxes are 3 pages of the mock's 100: a filter the platform cannot evaluate needs them all.
    mock, gateway = await _setup(aiohttp_server, users=250, backend_call_budget=2)
    async with ClientSession(headers=AUTH) as session:
        before = await _calls(session, mock)
        async with session.get(gateway.make_url(f"{BASE}/Users"), params={"filter": 'title eq "Boss"'}) as resp:
            assert resp.status == 400, await resp.text()
            body = await resp.json()
        spent = await _calls(session, mock) - before
        assert body["scimType"] == "invalidFilter"
        assert "2 calls" in body["detail"] and "userName" in body["detail"]
        assert spent <= 2
        # A request Entra really sends still fits.
        async with session.get(gateway.make_url(f"{BASE}/Users"),
                               params={"filter": f'userName eq "u7@{DOMAIN}"'}) as resp:
            assert resp.status == 200 and (await resp.json())["totalResults"] == 1
