"""Dry-run tenants: Entra gets the usual answers, the mail platform gets no write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from adapters.base import AlreadyExists, NotFound, UserRecord
from adapters.cleanmail.mock import MOCK_KEY, create_mock_app
from adapters.dryrun import DryRunAdapter
from adapters.memory import MemoryAdapter
from gateway.http.app import create_app
from gateway.scim.filter_ast import AttrPath, Compare
from tests.conftest import AUTH, BASE, make_settings
from tests.entra.helpers import PATCH_URN, call, create_group, create_user, find_one, patch_group, patch_user, search

API_KEY = "dry-run-api-key"
DOMAIN = "example.ch"
WRITES = ("POST", "PUT", "DELETE", "PATCH")


def _eq(attr: str, value: Any) -> Compare:
    return Compare(AttrPath(attr), "eq", value)


@pytest.fixture
async def mock_server(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    app = create_mock_app(API_KEY, None, True, domains=[DOMAIN])
    mock = app[MOCK_KEY]
    # Seeded in-process so the call statistics start empty.
    mock.store.create_mailbox({"address": f"existing@{DOMAIN}", "status": "active", "display_name": "Existing One"})
    mock.store.create_list({"address": f"staff@{DOMAIN}", "display_name": "Staff", "members": [f"existing@{DOMAIN}"]})
    return await aiohttp_server(app)


async def test_entra_sequence_answers_normally_and_writes_nothing(
    mock_server: TestServer, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    mock = mock_server.app[MOCK_KEY]
    before = mock.store.snapshot()
    settings = make_settings(
        backend="cleanmail", backend_options={"url": str(mock_server.make_url("/")), "api_key": API_KEY},
        list_domain=DOMAIN, dry_run=True,
    )
    with structlog.testing.capture_logs() as logs:
        scim = await aiohttp_client(create_app(settings), headers=AUTH)
        new_name = f"new.user@{DOMAIN}"

        miss = await search(scim, "Users", f'userName eq "{new_name}"')
        assert miss["totalResults"] == 0
        user = await create_user(scim, {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": new_name, "active": True,
            "externalId": "ext-1", "name": {"givenName": "New", "familyName": "User"}, "displayName": "New User",
        })
        assert (await find_one(scim, "Users", f'userName eq "{new_name}"'))["id"] == user["id"]
        assert (await find_one(scim, "Users", 'externalId eq "ext-1"'))["id"] == user["id"]

        patched = await patch_user(scim, user["id"], {"schemas": [PATCH_URN], "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Renamed User"},
            {"op": "Replace", "path": "active", "value": "False"},
        ]})
        assert patched["displayName"] == "Renamed User" and patched["active"] is False
        assert (await find_one(scim, "Users", f'userName eq "{new_name}"'))["displayName"] == "Renamed User"

        existing = await find_one(scim, "Users", f'userName eq "existing@{DOMAIN}"')
        changed = await patch_user(scim, existing["id"], {"schemas": [PATCH_URN], "Operations": [
            {"op": "replace", "value": {"displayName": "Changed Name"}},
        ]})
        assert changed["displayName"] == "Changed Name"

        group = await create_group(scim, {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Trial Team",
            "members": [{"value": user["id"]}],
        })
        assert [m["value"] for m in group["members"]] == [user["id"]]
        assert (await find_one(scim, "Groups", 'displayName eq "Trial Team"'))["id"] == group["id"]
        after_add = await patch_group(scim, group["id"], {"schemas": [PATCH_URN], "Operations": [
            {"op": "Add", "path": "members", "value": [{"value": existing["id"]}]},
        ]})
        assert {m["value"] for m in after_add["members"]} == {user["id"], existing["id"]}
        staff = await find_one(scim, "Groups", 'displayName eq "Staff"')
        await patch_group(scim, staff["id"], {"schemas": [PATCH_URN], "Operations": [
            {"op": "Add", "path": "members", "value": [{"value": user["id"]}]},
        ]})

        await call(scim, "DELETE", f"{BASE}/Users/{user['id']}", expect=204)
        await call(scim, "GET", f"{BASE}/Users/{user['id']}", expect=404)
        assert (await search(scim, "Users", f'userName eq "{new_name}"'))["totalResults"] == 0
        members = (await call(scim, "GET", f"{BASE}/Groups/{group['id']}", expect=200)).json["members"]
        assert [m["value"] for m in members] == [existing["id"]]
        await call(scim, "DELETE", f"{BASE}/Users/{existing['id']}", expect=204)
        staff_after = (await call(scim, "GET", f"{BASE}/Groups/{staff['id']}", expect=200)).json
        assert staff_after.get("members", []) == []
        await call(scim, "DELETE", f"{BASE}/Groups/{group['id']}", expect=204)
        assert (await search(scim, "Groups", 'displayName eq "Trial Team"'))["totalResults"] == 0

    assert mock.store.snapshot() == before
    state = await (await scim.session.get(mock_server.make_url("/__mock__/state"))).json()
    assert state["mailboxes"] == before["mailboxes"] and state["lists"] == before["lists"]
    stats = await (await scim.session.get(mock_server.make_url("/__mock__/stats"))).json()
    writes = {call_name: n for call_name, n in stats["calls"].items() if call_name.split()[0] in WRITES}
    assert writes == {}
    assert stats["total"] > 0, "reads must reach the real backend"

    skipped = [(e["event"].removeprefix("dry-run: would "), e.get("key")) for e in logs
               if e["event"].startswith("dry-run: would ")]
    simulated_list = skipped[4][1]
    assert simulated_list.startswith("dry-run:")
    assert skipped == [
        ("create_user", None),
        ("update_user", new_name),
        ("update_user", f"existing@{DOMAIN}"),
        ("create_group", None),
        ("add_members", simulated_list),
        ("add_members", f"staff@{DOMAIN}"),
        ("delete_user", new_name),
        ("delete_user", f"existing@{DOMAIN}"),
        ("delete_group", simulated_list),
    ]
    create = next(e for e in logs if e["event"] == "dry-run: would create_user")
    assert create["attributes"]["userName"] == new_name and create["tenant"] == "default"
    update = next(e for e in logs if e["event"] == "dry-run: would update_user")
    assert update["changes"] == {"displayName": "Renamed User", "active": False}


async def test_writes_are_logged_without_secrets() -> None:
    adapter = DryRunAdapter(MemoryAdapter(), tenant="t1")
    with structlog.testing.capture_logs() as logs:
        await adapter.create_user({"userName": "a@x.ch", "password": "hunter2", "x": {"secret": "s"}})
    assert logs[0]["attributes"] == {"userName": "a@x.ch", "password": "[redacted]", "x": {"secret": "[redacted]"}}
    assert "hunter2" not in repr(logs)


async def _real_backend() -> MemoryAdapter:
    real = MemoryAdapter()
    for name in ("a", "b", "c", "d", "e"):
        await real.create_user({"userName": f"{name}@x.ch", "displayName": name.upper()})
    await real.create_group({"displayName": "All"}, ["a@x.ch", "b@x.ch", "c@x.ch"])
    return real


async def _all_keys(adapter: DryRunAdapter, size: int) -> list[str]:
    keys: list[str] = []
    while True:
        page = await adapter.find_users(None, len(keys), size)
        keys.extend(r.key for r in page.items)
        if not page.items or len(keys) >= page.total:
            assert len(keys) == page.total
            return keys


async def test_paging_stays_consistent_with_simulated_writes() -> None:
    real = await _real_backend()
    adapter = DryRunAdapter(real)
    await adapter.create_user({"userName": "z@x.ch"})
    await adapter.create_user({"userName": "y@x.ch"})
    for size in (1, 2, 3, 10):
        assert await _all_keys(adapter, size) == ["a@x.ch", "b@x.ch", "c@x.ch", "d@x.ch", "e@x.ch", "y@x.ch", "z@x.ch"]
    await adapter.delete_user(UserRecord("b@x.ch", {}))
    await adapter.update_user(UserRecord("d@x.ch", {}), {"displayName": "Dee"})
    await adapter.update_user(UserRecord("a@x.ch", {}), {"userName": "q@x.ch"})
    for size in (1, 2, 4, 10):
        assert await _all_keys(adapter, size) == ["c@x.ch", "d@x.ch", "e@x.ch", "q@x.ch", "y@x.ch", "z@x.ch"]
    assert (await adapter.get_user("d@x.ch")).attributes["displayName"] == "Dee"
    hits = await adapter.find_users(_eq("displayName", "dee"), 0, 10)
    assert [r.key for r in hits.items] == ["d@x.ch"] and hits.total == 1
    with pytest.raises(NotFound):
        await adapter.get_user("b@x.ch")
    with pytest.raises(AlreadyExists):
        await adapter.create_user({"userName": "C@x.ch"})
    assert real.calls.get("create_user") == 5 and "delete_user" not in real.calls and "update_user" not in real.calls


async def test_real_lists_follow_simulated_renames_and_deletes() -> None:
    real = await _real_backend()
    adapter = DryRunAdapter(real)
    await adapter.update_user(UserRecord("a@x.ch", {}), {"userName": "q@x.ch"})
    await adapter.delete_user(UserRecord("b@x.ch", {}))
    group = (await adapter.find_groups(_eq("displayName", "all"), 0, 10)).items[0]
    assert group.member_keys == ["q@x.ch", "c@x.ch"]
    # A new mailbox at a deleted address is another mailbox: it does not inherit memberships.
    await adapter.create_user({"userName": "b@x.ch"})
    assert (await adapter.get_group(group.key)).member_keys == ["q@x.ch", "c@x.ch"]
    await adapter.add_members(group, ["b@x.ch"])
    await adapter.update_user(UserRecord("q@x.ch", {}), {"userName": "a2@x.ch"})
    assert (await adapter.get_group(group.key)).member_keys == ["a2@x.ch", "c@x.ch", "b@x.ch"]
    with pytest.raises(AlreadyExists):
        await adapter.create_group({"displayName": "ALL"}, [])
    await adapter.delete_group(group)
    assert (await adapter.find_groups(None, 0, 10)).total == 0
    assert (await real.get_group(group.key)).member_keys == ["a@x.ch", "b@x.ch", "c@x.ch"]


def test_only_tenants_in_dry_run_are_wrapped() -> None:
    from gateway.config import Settings, TenantSettings
    from gateway.http.middleware import REGISTRY_KEY

    settings = Settings(state="memory", tenants={
        "pilot": TenantSettings(token_hashes=["a" * 64], dry_run=True),
        "live": TenantSettings(token_hashes=["b" * 64]),
    })
    tenants = create_app(settings)[REGISTRY_KEY].tenants
    assert isinstance(tenants["pilot"].adapter, DryRunAdapter)
    assert isinstance(tenants["pilot"].adapter.inner, MemoryAdapter)
    assert isinstance(tenants["live"].adapter, MemoryAdapter)
