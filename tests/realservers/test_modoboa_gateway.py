"""The gateway on a real Modoboa, driven over SCIM as Entra drives it, with Modoboa's own view checked.

* A lifecycle: after every SCIM step, Modoboa's API shows the account (present, names,
  ``is_active``) and the list (address, recipients, enabled) the step should have left.
* A burst under Modoboa's default throttle (about 5 writes/s per URL, 300 requests/min):
  thirty users created at once and then changed, every request retried the way Entra
  does on 429/503; all of it gets through, with no account lost or made twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.modoboa.adapter import EMPTY_LIST_RECIPIENT, ModoboaAdapter
from adapters.modoboa.mapping import LIST_MARKER
from adapters.retry import RetryPolicy
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings
from tests.entra.helpers import (
    ENTERPRISE,
    USER_URN,
    call,
    create_group,
    create_user,
    get_user,
    minimal_group,
    patch_body,
    patch_group,
    patch_user,
)
from tests.realservers.matrix_modoboa import modoboa_adapter
from tests.realservers.modoboa import ModoboaServer

DOMAIN = "contoso.com"
LISTS = "lists.contoso.com"
Client = TestClient[Any, Any]


async def gateway(aiohttp_client: ClientFactory, adapter: ModoboaAdapter) -> Client:
    return await aiohttp_client(create_app(make_settings(), adapter=adapter), headers=AUTH)


def accounts(modoboa: ModoboaServer) -> dict[str, dict[str, Any]]:
    """Modoboa's users by address, as its own API lists them."""
    return {a["username"]: a for a in modoboa.list_all("/api/v2/accounts/?role=SimpleUsers")}


def aliases(modoboa: ModoboaServer) -> dict[str, dict[str, Any]]:
    return {a["address"]: a for a in modoboa.list_all("/api/v2/aliases/")}


def entra_user(user_name: str, given: str, family: str) -> dict[str, Any]:
    return {"schemas": [USER_URN, ENTERPRISE], "externalId": given.lower(), "userName": user_name, "active": True,
            "displayName": f"{given} {family}", "name": {"givenName": given, "familyName": family},
            "emails": [{"primary": True, "type": "work", "value": user_name}],
            ENTERPRISE: {"department": "Sales"}}


@pytest.fixture
async def adapter(modoboa: ModoboaServer) -> AsyncIterator[ModoboaAdapter]:
    modoboa.create_domain(DOMAIN)
    adapter = modoboa_adapter(modoboa, list_domain=LISTS, create_domains=True)
    yield adapter
    await adapter.close()


async def test_lifecycle_as_modoboa_sees_it(aiohttp_client: ClientFactory, modoboa: ModoboaServer,
                                            adapter: ModoboaAdapter) -> None:
    scim = await gateway(aiohttp_client, adapter)

    ann = await create_user(scim, entra_user("Ann.Lee@contoso.com", "Ann", "Lee"))
    mine = accounts(modoboa)["ann.lee@contoso.com"]
    assert (mine["first_name"], mine["last_name"], mine["is_active"], mine["role"]) == ("Ann", "Lee", True,
                                                                                         "SimpleUsers")
    assert mine["mailbox"]["full_address"] == "ann.lee@contoso.com"
    assert (ann["userName"], ann["displayName"]) == ("Ann.Lee@contoso.com", "Ann Lee")  # as sent, case and all

    bob = await create_user(scim, entra_user("bob@contoso.com", "Bob", "Ray"))
    sales = await create_group(scim, minimal_group("Sales Team", members=[{"value": ann["id"]}]))
    lists = aliases(modoboa)
    assert lists["sales-team@lists.contoso.com"]["recipients"] == ["ann.lee@contoso.com"]
    assert lists["sales-team@lists.contoso.com"]["description"] == LIST_MARKER + "Sales Team"
    assert lists["sales-team@lists.contoso.com"]["enabled"] is True

    after = await patch_user(scim, ann["id"], patch_body({"op": "Replace", "path": "active", "value": "False"}))
    assert after["active"] is False
    assert accounts(modoboa)["ann.lee@contoso.com"]["is_active"] is False
    assert aliases(modoboa)["sales-team@lists.contoso.com"]["enabled"] is False  # Modoboa's doing

    after = await patch_user(scim, ann["id"], patch_body({"op": "Replace", "path": "active", "value": "True"}))
    assert after["active"] is True
    assert accounts(modoboa)["ann.lee@contoso.com"]["is_active"] is True
    assert aliases(modoboa)["sales-team@lists.contoso.com"]["enabled"] is True  # the gateway's

    after = await patch_user(scim, ann["id"], patch_body(
        {"op": "Replace", "path": "name.familyName", "value": "Lee-Smith"},
        {"op": "Replace", "path": "displayName", "value": "Ann Lee-Smith"}))
    assert (after["name"]["familyName"], after["displayName"]) == ("Lee-Smith", "Ann Lee-Smith")
    assert accounts(modoboa)["ann.lee@contoso.com"]["last_name"] == "Lee-Smith"

    after = await patch_user(scim, ann["id"], patch_body(
        {"op": "Replace", "path": "userName", "value": "ann.smith@contoso.com"}))
    assert after["userName"] == "ann.smith@contoso.com"
    assert set(accounts(modoboa)) == {"ann.smith@contoso.com", "bob@contoso.com"}
    assert aliases(modoboa)["sales-team@lists.contoso.com"]["recipients"] == ["ann.smith@contoso.com"]

    await patch_group(scim, sales["id"], patch_body(
        {"op": "Add", "path": "members", "value": [{"value": bob["id"]}]},
        {"op": "Replace", "path": "displayName", "value": "Sales EMEA"}))
    row = aliases(modoboa)["sales-team@lists.contoso.com"]
    assert (row["recipients"], row["description"]) == (["ann.smith@contoso.com", "bob@contoso.com"],
                                                       LIST_MARKER + "Sales EMEA")

    await patch_group(scim, sales["id"], patch_body(
        {"op": "Remove", "path": f'members[value eq "{bob["id"]}"]'}))
    assert aliases(modoboa)["sales-team@lists.contoso.com"]["recipients"] == ["ann.smith@contoso.com"]

    await call(scim, "DELETE", f"{BASE}/Users/{ann['id']}", expect=204)
    assert set(accounts(modoboa)) == {"bob@contoso.com"}
    row = aliases(modoboa)["sales-team@lists.contoso.com"]  # the list outlived its last member
    assert (row["recipients"], row["enabled"]) == ([EMPTY_LIST_RECIPIENT], False)
    group = (await call(scim, "GET", f"{BASE}/Groups/{sales['id']}", expect=200)).json
    assert (group["displayName"], group.get("members", [])) == ("Sales EMEA", [])

    await call(scim, "DELETE", f"{BASE}/Groups/{sales['id']}", expect=204)
    assert "sales-team@lists.contoso.com" not in aliases(modoboa)
    assert (await get_user(scim, bob["id"]))["name"] == {"givenName": "Bob", "familyName": "Ray"}


# --- a burst under Modoboa's default throttle -------------------------------------------------------

BURST = 30


async def like_entra(send: Callable[[], Awaitable[Any]], retries: list[int]) -> Any:
    """Send until the answer is not 429/503, waiting the Retry-After the gateway gives, as Entra does."""
    while True:
        reply = await send()
        if reply.status not in (429, 503):
            return reply
        retries.append(reply.status)
        await asyncio.sleep(float(reply.headers.get("Retry-After", "1")) + random.uniform(0, 0.5))


async def provision(scim: Client, user_name: str, retries: list[int]) -> str:
    """Entra's create: filter by userName, POST when nothing matches; a 409 means match again."""
    path = f'{BASE}/Users?filter=userName+eq+%22{user_name}%22'
    body = entra_user(user_name, user_name.split("@")[0].title(), "Burst")
    while True:
        found = await like_entra(lambda: call(scim, "GET", path), retries)
        assert found.status == 200, found.text
        if found.json["totalResults"]:
            return str(found.json["Resources"][0]["id"])
        created = await like_entra(lambda: call(scim, "POST", f"{BASE}/Users", body), retries)
        if created.status == 201:
            return str(created.json["id"])
        assert created.status == 409, created.text


async def test_a_burst_gets_through_modoboas_default_throttle(aiohttp_client: ClientFactory,
                                                              modoboa_default_throttle: ModoboaServer) -> None:
    modoboa = modoboa_default_throttle
    modoboa.create_domain(DOMAIN)
    # Modoboa's default rates, which are also the adapter's defaults; a call waits at most
    # 4 s for its turn, so that some answers are 429 + Retry-After for Entra to come back.
    policy = RetryPolicy(attempt_timeout=4.0, deadline=8.0)
    adapter = ModoboaAdapter(modoboa.url, modoboa.token, list_domain=LISTS, policy=policy)
    scim = await gateway(aiohttp_client, adapter)
    retries: list[int] = []
    names = [f"burst{n:02d}@contoso.com" for n in range(BURST)]
    try:
        ids = await asyncio.gather(*(provision(scim, name, retries) for name in names))
        patch = patch_body({"op": "Replace", "path": "name.familyName", "value": "Changed"})
        replies = await asyncio.gather(*(like_entra(lambda uid=uid: call(scim, "PATCH", f"{BASE}/Users/{uid}", patch),
                                                    retries) for uid in ids))
    finally:
        await adapter.close()
    assert [r.status for r in replies] == [200] * BURST
    assert len(set(ids)) == BURST
    listed = modoboa.list_all("/api/v2/accounts/?role=SimpleUsers")
    assert sorted(a["username"] for a in listed) == names  # each exactly once
    assert {(a["first_name"], a["last_name"]) for a in listed} == {(n.split("@")[0].title(), "Changed")
                                                                    for n in names}
    stats = adapter.statistics()
    # Paced, not throttled: Modoboa hardly ever had to say 429; the gateway said it instead.
    assert stats["paced"] > 0
    assert stats["rate_limited"] <= 2, stats
    assert stats["ambiguous"] == 0, stats
    assert 429 in retries
    print(f"burst of {BURST}: {stats}, SCIM retries {len(retries)}")


async def test_modoboas_refusals_reach_the_scim_client_with_its_reason(aiohttp_client: ClientFactory,
                                                                       modoboa: ModoboaServer) -> None:
    modoboa.create_domain(DOMAIN)
    adapter = modoboa_adapter(modoboa, list_domain=LISTS, create_domains=False)
    scim = await gateway(aiohttp_client, adapter)
    try:
        weak = await call(scim, "POST", f"{BASE}/Users", {**entra_user("okta@contoso.com", "Ok", "Ta"),
                                                          "password": "short"})
        elsewhere = await call(scim, "POST", f"{BASE}/Users", entra_user("ann@fabrikam.com", "Ann", "Lee"))
    finally:
        await adapter.close()
    assert weak.status == 400
    assert "password: This password is too short" in weak.json["detail"]
    assert elsewhere.status == 400
    assert "mail domain fabrikam.com does not exist in Modoboa" in elsewhere.json["detail"]
    assert set(accounts(modoboa)) == set()
