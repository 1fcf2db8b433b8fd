"""``scim-gateway reconcile``: drift planted on the platform behind the gateway's back is found; --fix repairs it."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.cli import main
from gateway.config import load_settings
from gateway.http.app import create_app
from gateway.ops import reconcile
from gateway.store.base import MappingScanner, StoredResource
from gateway.store.memory import MemoryStore
from gateway.store.sqlite import SqliteStore
from gateway.tenants import hash_token
from tests.ops.live_mock import DOMAIN, LiveMock, acme_tenant_toml, dead_port, live_mock
from tests.pg_support import POSTGRES_DSN, fresh_schema

__all__ = ["live_mock"]

TOKEN = "acme-provisioning-token"
WRITES = ("POST", "PUT", "DELETE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOKEN", "BACKEND", "CONFIG", "STATE"):
        monkeypatch.delenv(f"SCIM_GATEWAY_{name}", raising=False)


def write_config(tmp_path: Path, backend_url: str, state: str | None = None) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[gateway]
state = "{state or f'sqlite:///{tmp_path / "state.sqlite3"}'}"
{acme_tenant_toml(hash_token(TOKEN), backend_url)}""")
    return config


async def _with_gateway(config: Path, action: Callable[[TestClient[Any, Any]], Any]) -> Any:
    app = create_app(load_settings(config))
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        return await action(client)


def gateway(config: Path, action: Callable[[TestClient[Any, Any]], Any]) -> Any:
    """Run ``action`` against a gateway serving ``config``, then stop it (its store stays)."""
    return asyncio.run(_with_gateway(config, action))


async def _post(client: TestClient[Any, Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with client.post(f"/scim/v2/{path}", json=body) as resp:
        assert resp.status == 201, await resp.text()
        result: dict[str, Any] = await resp.json(content_type=None)
        return result


async def _provision(client: TestClient[Any, Any]) -> dict[str, str]:
    ids = {}
    for name in ("alice", "bob", "carol"):
        user = await _post(client, "Users", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"{name}@{DOMAIN}",
            "displayName": f"{name.title()} Cee", "name": {"givenName": name.title(), "familyName": "Cee"},
        })
        ids[name] = user["id"]
    for name in ("Sales", "Support"):
        group = await _post(client, "Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                               "displayName": name, "members": [{"value": ids["alice"]}]})
        ids[name] = group["id"]
    return ids


def plant_drift(mock: LiveMock) -> None:
    """What administrators do on the platform directly, unseen by the gateway."""
    mock.call("POST", "/api/v1/mailboxes", {"address": f"stray@{DOMAIN}", "display_name": "Stray"})
    mock.call("POST", "/api/v1/lists", {"address": f"direct@{DOMAIN}", "display_name": "Direct", "members": []})
    mock.call("DELETE", f"/api/v1/mailboxes/bob@{DOMAIN}")
    mock.call("DELETE", f"/api/v1/lists/support@{DOMAIN}")
    carol = mock.call("GET", f"/api/v1/mailboxes/carol@{DOMAIN}")
    fields = {k: v for k, v in carol.items() if k not in ("id", "address", "domain")}
    mock.call("PUT", f"/api/v1/mailboxes/carol@{DOMAIN}", {**fields, "display_name": "Carol Changed"})


def writes(mock: LiveMock) -> dict[str, int]:
    calls: dict[str, int] = mock.call("GET", "/__mock__/stats")["calls"]
    return {k: v for k, v in calls.items() if k.split()[0] in WRITES}


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["reconcile", *args, "--json"])
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, document


def kinds(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(d["kind"], d["resource_type"], d["key"]) for d in document["drift"]}


@pytest.mark.parametrize("page_size", [2, 200])
def test_finds_planted_drift_and_fix_repairs_it(
    live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    page_size: int,
) -> None:
    monkeypatch.setattr(reconcile, "PAGE_SIZE", page_size)
    config = write_config(tmp_path, live_mock.url)
    ids = gateway(config, _provision)
    plant_drift(live_mock)
    written = writes(live_mock)
    capsys.readouterr()  # the gateway's own log lines
    args = ["--tenant", "acme", "--config", str(config)]

    assert main(["reconcile", *args]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"tenant acme: backend cleanmail, state sqlite:///{tmp_path / 'state.sqlite3'}\n")
    table = {line.split()[2]: line for line in out.splitlines() if line.split()[:1] in (["unknown"], ["dead_mapping"],
                                                                                         ["attribute"])}
    assert set(table) == {f"stray@{DOMAIN}", f"direct@{DOMAIN}", f"bob@{DOMAIN}", f"support@{DOMAIN}",
                          f"carol@{DOMAIN}"}
    assert ids["bob"] in table[f"bob@{DOMAIN}"] and ids["Support"] in table[f"support@{DOMAIN}"]
    assert "displayName: Entra sent 'Carol Cee', the backend has 'Carol Changed'" in table[f"carol@{DOMAIN}"]
    assert "scanned 3 mailboxes against 3 mappings, 2 lists against 2 mappings: 2 unknown, 2 dead mappings, " \
           "1 attribute difference" in out

    code, document = run_json(capsys, *args)
    assert code == 1
    assert {k: document[k] for k in ("tenant", "backend", "fix", "dry_run_tenant")} == {
        "tenant": "acme", "backend": "cleanmail", "fix": False, "dry_run_tenant": False}
    assert document["scanned"] == {"User": {"backend": 3, "mappings": 3}, "Group": {"backend": 2, "mappings": 2}}
    assert document["summary"] == {"unknown": 2, "dead_mapping": 2, "attribute": 1, "skipped_members": 0,
                                   "adopted": 0, "dropped": 0}
    assert kinds(document) == {
        ("unknown", "User", f"stray@{DOMAIN}"), ("unknown", "Group", f"direct@{DOMAIN}"),
        ("dead_mapping", "User", f"bob@{DOMAIN}"), ("dead_mapping", "Group", f"support@{DOMAIN}"),
        ("attribute", "User", f"carol@{DOMAIN}"),
    }
    attribute = next(d for d in document["drift"] if d["kind"] == "attribute")
    assert attribute == {"kind": "attribute", "resource_type": "User", "key": f"carol@{DOMAIN}", "id": ids["carol"],
                         "attribute": "displayName", "store_value": "Carol Cee", "backend_value": "Carol Changed",
                         "action": None}
    dead = next(d for d in document["drift"] if d["key"] == f"bob@{DOMAIN}")
    assert dead["id"] == ids["bob"] and dead["action"] is None

    code, fixed = run_json(capsys, *args, "--fix")
    assert code == 1, "the attribute difference is reported, not repaired"
    assert fixed["summary"] == {"unknown": 2, "dead_mapping": 2, "attribute": 1, "skipped_members": 0,
                                "adopted": 2, "dropped": 2}
    adopted = {d["key"]: d["id"] for d in fixed["drift"] if d["action"] == "adopted"}
    assert set(adopted) == {f"stray@{DOMAIN}", f"direct@{DOMAIN}"}

    code, again = run_json(capsys, *args)
    assert code == 1
    assert again["summary"] == {"unknown": 0, "dead_mapping": 0, "attribute": 1, "skipped_members": 0,
                                "adopted": 0, "dropped": 0}
    assert again["scanned"]["User"] == {"backend": 3, "mappings": 3}
    assert writes(live_mock) == written, "reconcile never writes to the backend"

    async def lookups(client: TestClient[Any, Any]) -> tuple[Any, int]:
        async with client.get("/scim/v2/Users", params={"filter": f'userName eq "stray@{DOMAIN}"'}) as resp:
            found = (await resp.json(content_type=None))["Resources"]
        async with client.get(f"/scim/v2/Users/{ids['bob']}") as resp:
            return found, resp.status

    found, bob_status = gateway(config, lookups)
    assert [u["id"] for u in found] == [adopted[f"stray@{DOMAIN}"]], "the gateway serves the adopted id"
    assert bob_status == 404
    if page_size == 2:
        listings = live_mock.call("GET", "/__mock__/stats")["calls"]["GET /api/v1/mailboxes"]
        assert listings >= 3 * 2, "the backend is read page by page"


def test_in_sync_tenant_exits_zero(live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, live_mock.url)
    gateway(config, _provision)
    capsys.readouterr()
    assert main(["reconcile", "--tenant", "acme", "--config", str(config)]) == 0
    assert "no drift" in capsys.readouterr().out


def test_progress_bar_goes_to_stderr(live_mock: LiveMock, tmp_path: Path) -> None:
    config = write_config(tmp_path, live_mock.url)
    gateway(config, _provision)
    out, err = io.StringIO(), io.StringIO()
    assert reconcile.main("acme", config, out=out, err=err, progress=True) == 0
    bar = err.getvalue()
    assert "\rmailboxes" in bar and "3/3" in bar and "[" + "#" * 30 + "]" in bar
    assert bar.endswith("\n") and "\r" not in out.getvalue()


def test_refuses_what_it_cannot_reconcile(
    live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, live_mock.url)
    assert main(["reconcile", "--tenant", "nobody", "--config", str(config)]) == 2
    assert "use one of: acme" in capsys.readouterr().err
    assert main(["reconcile", "--tenant", "acme", "--config", str(config)]) == 2, "no state file yet"
    assert "does not exist" in capsys.readouterr().err
    memory = write_config(tmp_path, live_mock.url, state="memory")
    assert main(["reconcile", "--tenant", "acme", "--config", str(memory)]) == 2
    assert capsys.readouterr().err.startswith("SCIM_GATEWAY_STATE: 'memory'")
    in_process = write_config(tmp_path, live_mock.url)
    text = in_process.read_text()
    in_process.write_text(text[:text.index("[tenants.acme.backend]")] + '[tenants.acme.backend]\nadapter = "memory"\n')
    assert main(["reconcile", "--tenant", "acme", "--config", str(in_process)]) == 2
    assert capsys.readouterr().err.startswith("tenants.acme.backend.adapter: 'memory'")


def test_fix_keeps_every_mapping_when_the_backend_lists_nothing(
    live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, live_mock.url)
    gateway(config, _provision)
    live_mock.call("POST", "/__mock__/reset")  # as if pointed at another, empty platform
    capsys.readouterr()
    args = ["--tenant", "acme", "--config", str(config)]

    code, document = run_json(capsys, *args, "--fix")

    assert code == 1
    assert document["summary"]["dead_mapping"] == 5 and document["summary"]["dropped"] == 0
    assert all(d["action"].startswith("left alone: the backend lists no") for d in document["drift"])
    assert run_json(capsys, *args)[1]["summary"]["dead_mapping"] == 5


def test_unreachable_backend_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, f"http://127.0.0.1:{dead_port()}")
    asyncio.run(_create_store(tmp_path / "state.sqlite3"))
    assert main(["reconcile", "--tenant", "acme", "--config", str(config)]) == 3
    assert capsys.readouterr().err.startswith("reconcile failed (backend): ")


async def _create_store(path: Path) -> None:
    store = SqliteStore(str(path))
    await store.open()
    await store.close()


# --- the stores' mapping walk ---------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def scanner(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        store = SqliteStore(str(tmp_path / "walk.sqlite3"))
        await store.open()
        yield store
        await store.close()
    else:
        from gateway.store.postgres import PostgresStore

        async with fresh_schema(POSTGRES_DSN) as schema:
            store = PostgresStore(POSTGRES_DSN, schema=schema, max_size=2)
            await store.open()
            yield store
            await store.close()


async def test_iter_mappings_walks_by_id_while_deleting(scanner: Any) -> None:
    for n in range(7):
        await scanner.insert("t1", StoredResource(id=f"id-{n}", resource_type="User", backend_key=f"u{n}@x.ch"))
    await scanner.insert("t2", StoredResource(id="id-other", resource_type="User", backend_key="o@x.ch"))
    await scanner.insert("t1", StoredResource(id="id-group", resource_type="Group", backend_key="g@x.ch"))
    assert isinstance(scanner, MappingScanner)
    walked: list[str] = []
    after = None
    while batch := await scanner.iter_mappings("t1", "User", after, 3):
        assert len(batch) <= 3
        walked.extend(r.id for r in batch)
        # Deleting what was just read must not make the walk skip or repeat anything.
        for stored in batch:
            await scanner.delete("t1", "User", stored.id)
        after = batch[-1].id
    assert walked == [f"id-{n}" for n in range(7)]
    assert await scanner.iter_mappings("t1", "Group", None, 10) == [
        StoredResource(id="id-group", resource_type="Group", backend_key="g@x.ch")]


def test_lists_member_ids_a_group_write_had_to_skip(
    live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, live_mock.url)

    async def nest(client: TestClient[Any, Any]) -> dict[str, str]:
        ids = await _provision(client)
        patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Add", "path": "members", "value": [{"value": ids["Support"]}, {"value": "no-such-user"},
                                                       {"value": ids["bob"]}]}]}
        async with client.patch(f"/scim/v2/Groups/{ids['Sales']}", json=patch) as resp:
            assert resp.status == 200, await resp.text()
        return ids

    ids = gateway(config, nest)
    capsys.readouterr()  # the gateway's own log
    code, document = run_json(capsys, "--tenant", "acme", "--config", str(config))
    assert code == 1
    [skipped] = [d for d in document["drift"] if d["kind"] == "skipped_members"]
    assert skipped["id"] == ids["Sales"]
    assert skipped["member_ids"] == sorted([ids["Support"], "no-such-user"])

    async def drop_them(client: TestClient[Any, Any]) -> None:
        patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Remove", "path": "members", "value": [{"value": ids["Support"]}, {"value": "no-such-user"}]}]}
        async with client.patch(f"/scim/v2/Groups/{ids['Sales']}", json=patch) as resp:
            assert resp.status == 200, await resp.text()

    gateway(config, drop_them)
    capsys.readouterr()
    _, again = run_json(capsys, "--tenant", "acme", "--config", str(config))
    assert again["summary"]["skipped_members"] == 0
