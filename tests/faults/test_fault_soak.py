"""Entra-like provisioning through the gateway into the Cleanmail mock while the mock misbehaves.

The mock fails calls before and after committing them, hangs past the client's timeout,
and rate-limits. The client behaves like Entra's provisioning service: it matches by
filter, creates on a miss, links on 409, and retries 429/5xx later. Whatever the faults,
the platform must end with every mailbox exactly once, with the last values sent, and
every list with exactly its members.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from adapters.cleanmail.adapter import CleanmailAdapter
from adapters.cleanmail.mock import create_mock_app
from gateway.http.app import create_app
from tests.conftest import AUTH, make_settings

ServerFactory = Callable[..., Awaitable[TestServer]]
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DOMAIN = "soak.example"


class EntraLikeClient:
    """Retries what Entra retries (429, 5xx, timeouts) until it gets a settled answer."""

    def __init__(self, session: ClientSession, base: str, patience_s: float = 20.0) -> None:
        self.session = session
        self.base = base
        self.patience_s = patience_s
        self.retries = 0

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        deadline = asyncio.get_running_loop().time() + self.patience_s
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with self.session.request(method, f"{self.base}{path}", json=body, headers=AUTH) as resp:
                    payload = await resp.json(content_type=None) if resp.status != 204 else None
                    if resp.status == 429 or resp.status >= 500:
                        self.retries += 1
                        # Entra waits far longer; a short, bounded wait keeps the test quick.
                        await asyncio.sleep(min(float(resp.headers.get("Retry-After", 0.05)), 0.1))
                        continue
                    return resp.status, payload
            except TimeoutError:
                self.retries += 1
        raise AssertionError(f"{method} {path} never settled")

    async def find_user(self, user_name: str) -> str | None:
        status, body = await self.call("GET", f'/Users?filter=userName eq "{user_name}"')
        assert status == 200, body
        assert body["totalResults"] <= 1, f"duplicate matches for {user_name}: {body}"
        return body["Resources"][0]["id"] if body["Resources"] else None

    async def provision_user(self, user_name: str, given: str) -> str:
        existing = await self.find_user(user_name)
        if existing is not None:
            return existing
        status, body = await self.call("POST", "/Users", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": True,
            "name": {"givenName": given, "familyName": "Soak"}, "externalId": user_name.split("@")[0],
        })
        if status == 409:  # a lost 201: the next cycle matches it
            found = await self.find_user(user_name)
            assert found is not None, f"409 for {user_name} but no match"
            return found
        assert status == 201, body
        return str(body["id"])


async def _start(aiohttp_server: ServerFactory, faults: dict[str, Any],
                 quirks: dict[str, Any] | None = None) -> tuple[TestServer, TestServer]:
    mock = await aiohttp_server(create_mock_app("k", None, True, domains=[DOMAIN]))
    adapter = CleanmailAdapter(
        str(mock.make_url("/")), "k", default_domain=DOMAIN, attempt_timeout=0.3, connect_timeout=0.3,
        deadline=2.0, backoff_initial=0.01, backoff_max=0.05,
    )
    settings = make_settings(backend_queue_timeout=5.0, write_landing_window=1.0)
    gateway = await aiohttp_server(create_app(settings, adapter=adapter))
    async with ClientSession() as session:
        resp = await session.post(mock.make_url("/__mock__/faults"), json=faults)
        assert resp.status == 200, await resp.text()
        if quirks:
            resp = await session.post(mock.make_url("/__mock__/quirks"), json=quirks)
            assert resp.status == 200, await resp.text()
    return mock, gateway


async def _run(aiohttp_server: ServerFactory, users: int, seed: int, quirks: dict[str, Any] | None = None) -> None:
    faults = {"error_rate": 0.15, "error_after_commit_rate": 0.15, "timeout_rate": 0.03,
              "timeout_hang_s": 0.6, "rate_limit_per_s": 400, "seed": seed}
    mock, gateway = await _start(aiohttp_server, faults, quirks)
    rng = random.Random(seed)
    async with ClientSession() as session:
        client = EntraLikeClient(session, str(gateway.make_url("/scim/v2")))
        names = [f"user{i}@{DOMAIN}" for i in range(users)]
        ids = dict(zip(names, await asyncio.gather(*[client.provision_user(n, f"G{i}") for i, n in enumerate(names)]),
                       strict=True))
        # A second cycle: everything matches, nothing is created twice.
        again = await asyncio.gather(*[client.provision_user(n, "ignored") for n in names])
        assert again == [ids[n] for n in names]
        # Updates and disables, each retried until settled.
        disabled = set(rng.sample(names, users // 3))
        renamed_given = {n: f"New{i}" for i, n in enumerate(names) if i % 2 == 0}

        async def update(name: str) -> None:
            ops: list[dict[str, Any]] = []
            if name in renamed_given:
                ops.append({"op": "Replace", "path": "name.givenName", "value": renamed_given[name]})
            if name in disabled:
                ops.append({"op": "Replace", "path": "active", "value": "False"})
            if ops:
                status, body = await client.call("PATCH", f"/Users/{ids[name]}", {"schemas": [PATCH_OP],
                                                                                  "Operations": ops})
                assert status == 200, body

        await asyncio.gather(*[update(n) for n in names])
        # A list with members added in several PATCHes, some retried.
        status, group = await client.call("POST", "/Groups", {"displayName": "Soak List"})
        if status == 409:
            status, found = await client.call("GET", '/Groups?filter=displayName eq "Soak List"')
            group = found["Resources"][0]
        else:
            assert status == 201, group
        members = sorted(rng.sample(names, users // 2))
        chunks = [members[i:i + 5] for i in range(0, len(members), 5)]
        await asyncio.gather(*[
            client.call("PATCH", f"/Groups/{group['id']}", {"schemas": [PATCH_OP], "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": ids[m]} for m in chunk]}]})
            for chunk in chunks
        ])
        assert client.retries > 0, "the faults never fired: the test proves nothing"
        async with session.get(mock.make_url("/__mock__/state")) as resp:
            state = await resp.json()
    mailboxes = state["mailboxes"]
    addresses = [m["address"] for m in mailboxes]
    assert sorted(addresses) == sorted(names), "a mailbox is missing or duplicated"
    for box in mailboxes:
        name = box["address"]
        assert box["status"] == ("disabled" if name in disabled else "active"), name
        assert box["first_name"] == renamed_given.get(name, f"G{names.index(name)}"), name
    [soak_list] = [lst for lst in state["lists"] if lst["display_name"] == "Soak List"]
    assert sorted(soak_list["members"]) == members


async def test_faults_lose_and_duplicate_nothing(aiohttp_server: ServerFactory) -> None:
    await _run(aiohttp_server, users=40, seed=7)


async def test_no_duplicates_even_when_the_platform_accepts_them(aiohttp_server: ServerFactory) -> None:
    # Some legacy APIs create a second mailbox for an existing address: the gateway must not ask twice.
    await _run(aiohttp_server, users=40, seed=11, quirks={"reject_duplicates": False})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_fault_soak_long(aiohttp_server: ServerFactory, seed: int) -> None:
    await _run(aiohttp_server, users=400, seed=seed)


async def test_backend_down_is_503_with_retry_after(aiohttp_server: ServerFactory) -> None:
    adapter = CleanmailAdapter("http://127.0.0.1:9", "k", default_domain=DOMAIN, attempt_timeout=0.2,
                               connect_timeout=0.2, deadline=0.5, backoff_initial=0.01, backoff_max=0.02)
    gateway = await aiohttp_server(create_app(make_settings(), adapter=adapter))
    async with ClientSession() as session:
        resp = await session.get(gateway.make_url('/scim/v2/Users?filter=userName eq "a@soak.example"'),
                                 headers=AUTH)
        body = await resp.json(content_type=None)
    assert resp.status == 503, body
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["status"] == "503"


async def test_backend_rate_limit_is_429(aiohttp_server: ServerFactory) -> None:
    mock = await aiohttp_server(create_mock_app("k", None, True, domains=[DOMAIN]))
    adapter = CleanmailAdapter(str(mock.make_url("/")), "k", default_domain=DOMAIN, deadline=0.3,
                               backoff_initial=0.01, backoff_max=0.02)
    gateway = await aiohttp_server(create_app(make_settings(), adapter=adapter))
    async with ClientSession() as session:
        await session.post(mock.make_url("/__mock__/faults"), json={"rate_limit_per_s": 1, "seed": 1})
        statuses = []
        for _ in range(6):
            async with session.get(gateway.make_url('/scim/v2/Users?filter=userName eq "a@soak.example"'),
                                   headers=AUTH) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) >= 1
    assert 429 in statuses
