"""Two gateway processes on one PostgreSQL state store, raced against each other.

Everything runs as it does in production: the mock Cleanmail API and two ``scim-gateway
serve`` processes on their own ports, sharing a fresh database. The mock is told to accept
duplicate mailboxes (as some legacy APIs do) and to answer slowly, so nothing but the
gateways' cross-process locks stands between concurrent requests and a duplicate or a
lost update. Verdicts come from the mock's own state, not from what the gateways say.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest

from gateway.store.postgres import MIGRATIONS
from tests.pg_support import fresh_database

pytestmark = pytest.mark.postgres

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DOMAIN = "example.com"
START_TIMEOUT = 20.0
PER_REPLICA = 10


@dataclass
class Cluster:
    mock: str
    api_key: str
    replicas: list[str]
    token: str
    state_dsn: str
    logs: list[Path]

    def log_tails(self, lines: int = 6, width: int = 400) -> str:
        """The end of each process's log, for failure messages (the full logs stay in the temp dir)."""
        parts = []
        for path in self.logs:
            text = [line[:width] for line in path.read_text(errors="replace").splitlines()[-lines:]]
            parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command() -> list[str]:
    script = Path(sys.executable).parent / "scim-gateway"
    if script.exists():
        return [str(script)]
    found = shutil.which("scim-gateway")
    return [found] if found else [sys.executable, "-m", "gateway.cli"]


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{log.stem} exited with {proc.returncode} before it was healthy:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{log.stem} not healthy at {url} within {START_TIMEOUT}s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        _stop(proc)


def _post_json(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.status == 200, f"POST {url}: {reply.status}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs_dir = tmp_path_factory.mktemp("replicas")
    api_key = secrets.token_urlsafe(16)
    token = secrets.token_urlsafe(24)
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        state_dsn = stack.enter_context(fresh_database("scim_replicas"))
        # Registered after the database: processes stop before it is dropped, gateways before the mock.
        stack.callback(_stop_all, procs)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_GATEWAY_")}
        base_env["PYTHONUNBUFFERED"] = "1"

        def spawn(name: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
            log = logs_dir / f"{name}.log"
            with log.open("wb") as out:  # the child keeps its own descriptor
                proc = subprocess.Popen([*_command(), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
            procs.append(proc)
            return proc, log

        mock_port = _free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        mock, mock_log = spawn("mock", ["mock-cleanmail", "--port", str(mock_port), "--api-key", api_key,
                                        "--control", "--auto-create-domains"], base_env)
        gateway_env = {
            **base_env,
            "SCIM_GATEWAY_TOKEN": token,
            "SCIM_GATEWAY_BACKEND": "cleanmail",
            "SCIM_GATEWAY_CLEANMAIL_URL": mock_url,
            "SCIM_GATEWAY_CLEANMAIL_API_KEY": api_key,
            "SCIM_GATEWAY_CLEANMAIL_DOMAIN": DOMAIN,
            "SCIM_GATEWAY_STATE": state_dsn,
            "SCIM_GATEWAY_LOG_LEVEL": "warning",
        }
        # Both replicas start together on an empty database, so their migrations may overlap.
        replicas: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        for n in (1, 2):
            port = _free_port()
            proc, log = spawn(f"gateway{n}", ["serve", "--port", str(port)], gateway_env)
            replicas.append((f"http://127.0.0.1:{port}", proc, log))
        deadline = time.monotonic() + START_TIMEOUT
        _wait_healthy(mock_url, mock, mock_log, deadline)
        for url, proc, log in replicas:
            _wait_healthy(url, proc, log, deadline)
        # A legacy API that does not refuse a second mailbox with the same address, answering
        # slowly: a missing lock shows up as a duplicate instead of hiding behind the backend.
        _post_json(f"{mock_url}/__mock__/quirks", {"reject_duplicates": False})
        _post_json(f"{mock_url}/__mock__/faults", {"latency_ms": 5, "latency_jitter_ms": 5, "seed": 7})
        yield Cluster(mock_url, api_key, [r[0] for r in replicas], token, state_dsn,
                      [mock_log, *(r[2] for r in replicas)])


@pytest.fixture
async def http(cluster: Cluster) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@dataclass
class Reply:
    status: int
    body: Any
    etag: str | None


async def _call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None,
                headers: dict[str, str] | None = None) -> Reply:
    send = {"Content-Type": "application/scim+json", **(headers or {})}
    data = json.dumps(body) if body is not None else None
    async with http.request(method, url, data=data, headers=send) as resp:
        text = await resp.text()
        return Reply(resp.status, json.loads(text) if text else None, resp.headers.get("ETag"))


def _expect(reply: Reply, status: int, what: str, cluster: Cluster) -> Any:
    assert reply.status == status, (
        f"{what}: expected {status}, got {reply.status}: {reply.body}\n{cluster.log_tails()}"
    )
    return reply.body


async def _mock_state(http: aiohttp.ClientSession, cluster: Cluster) -> dict[str, Any]:
    async with http.get(f"{cluster.mock}/__mock__/state") as resp:
        assert resp.status == 200
        state: dict[str, Any] = await resp.json()
        return state


async def _mock_api(http: aiohttp.ClientSession, cluster: Cluster, method: str, path: str, body: Any) -> Any:
    """Change the mock behind the gateways' backs, as an administrator of the mail platform would."""
    headers = {"X-API-Key": cluster.api_key, "Content-Type": "application/json"}
    async with http.request(method, f"{cluster.mock}/api/v1{path}", data=json.dumps(body), headers=headers) as resp:
        reply = await resp.json(content_type=None)
        assert resp.status in (200, 201) and reply.get("status") != "error", f"{method} {path}: {reply}"
        return reply


def _scim(cluster: Cluster, replica: int, path: str) -> str:
    return f"{cluster.replicas[replica]}/scim/v2{path}"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _search(http: aiohttp.ClientSession, cluster: Cluster, replica: int, kind: str, flt: str) -> list[Any]:
    async with http.get(_scim(cluster, replica, f"/{kind}"), params={"filter": flt}) as resp:
        assert resp.status == 200, await resp.text()
        found: list[Any] = (await resp.json(content_type=None))["Resources"]
        return found


async def _race(http: aiohttp.ClientSession, cluster: Cluster, path: str, body: dict[str, Any]) -> list[Reply]:
    """The same POST, PER_REPLICA times to each replica, all in flight at once."""
    calls = [_call(http, "POST", _scim(cluster, n % 2, path), body) for n in range(2 * PER_REPLICA)]
    return list(await asyncio.gather(*calls))


def _race_verdict(replies: list[Reply], what: str, cluster: Cluster) -> dict[str, Any]:
    statuses = sorted(r.status for r in replies)
    assert statuses.count(201) == 1 and statuses.count(409) == len(replies) - 1, (
        f"{what}: expected one 201 and {len(replies) - 1}×409, got {statuses}\n{cluster.log_tails()}"
    )
    for reply in replies:
        if reply.status == 409:
            assert reply.body.get("scimType") == "uniqueness", reply.body
    created: dict[str, Any] = next(r.body for r in replies if r.status == 201)
    return created


async def test_migrations_ran_once_for_both_replicas(cluster: Cluster) -> None:
    conn = await asyncpg.connect(cluster.state_dsn)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_version ORDER BY version")]
    finally:
        await conn.close()
    assert versions == list(range(1, len(MIGRATIONS) + 1))


async def test_same_user_created_on_both_replicas_at_once(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    address = f"{_unique('race')}@{DOMAIN}"
    body = {"schemas": [USER_URN], "userName": address, "active": True, "externalId": "race-ext"}
    created = _race_verdict(await _race(http, cluster, "/Users", body), f"POST /Users {address}", cluster)
    mailboxes = [m for m in (await _mock_state(http, cluster))["mailboxes"] if m["address"] == address]
    assert len(mailboxes) == 1, f"the mock holds {len(mailboxes)} mailboxes for {address}: {mailboxes}"
    # Both replicas know the user by the id the winner minted: nobody adopted a second one.
    for replica in (0, 1):
        found = await _search(http, cluster, replica, "Users", f'userName eq "{address}"')
        assert [u["id"] for u in found] == [created["id"]], f"replica {replica}: {found}"


async def test_same_group_created_on_both_replicas_at_once(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    name = _unique("Race Team")
    body = {"schemas": [GROUP_URN], "displayName": name}
    created = _race_verdict(await _race(http, cluster, "/Groups", body), f"POST /Groups {name!r}", cluster)
    lists = [d for d in (await _mock_state(http, cluster))["lists"] if (d["display_name"] or "").lower()
             == name.lower()]
    assert len(lists) == 1, f"the mock holds {len(lists)} lists named {name!r}: {lists}"
    for replica in (0, 1):
        found = await _search(http, cluster, replica, "Groups", f'displayName eq "{name}"')
        assert [g["id"] for g in found] == [created["id"]], f"replica {replica}: {found}"


async def test_member_adds_split_across_replicas_are_all_kept(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    prefix = _unique("crowd")
    addresses = [f"{prefix}-{i:02d}@{DOMAIN}" for i in range(20)]
    users = await asyncio.gather(*(
        _call(http, "POST", _scim(cluster, i % 2, "/Users"), {"schemas": [USER_URN], "userName": a, "active": True})
        for i, a in enumerate(addresses)
    ))
    user_ids = [_expect(u, 201, f"POST /Users {a}", cluster)["id"] for u, a in zip(users, addresses, strict=True)]
    group = _expect(await _call(http, "POST", _scim(cluster, 0, "/Groups"),
                                {"schemas": [GROUP_URN], "displayName": prefix}), 201, "POST /Groups", cluster)
    patches = await asyncio.gather(*(
        _call(http, "PATCH", _scim(cluster, i % 2, f"/Groups/{group['id']}"),
              {"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]})
        for i, uid in enumerate(user_ids)
    ))
    for i, reply in enumerate(patches):
        _expect(reply, 200, f"PATCH add member {addresses[i]} via replica {i % 2}", cluster)
    (dist,) = [d for d in (await _mock_state(http, cluster))["lists"] if d["display_name"] == prefix]
    assert sorted(dist["members"]) == addresses, f"members on the mock: {sorted(dist['members'])}"
    # Each PATCH saw the one before it: twenty writes, twenty distinct versions, none reused.
    etags = [r.etag for r in patches]
    assert len(set(etags)) == len(etags), f"two writes produced the same ETag: {sorted(map(str, etags))}"
    final: set[str | None] = set()
    for replica in (0, 1):
        reply = await _call(http, "GET", _scim(cluster, replica, f"/Groups/{group['id']}"))
        got = _expect(reply, 200, f"GET group via replica {replica}", cluster)
        assert sorted(m["value"] for m in got["members"]) == sorted(user_ids)
        final.add(reply.etag)
    assert len(final) == 1 and final <= set(etags), f"replicas disagree on the current version: {final}"


def _rename_display(value: str) -> dict[str, Any]:
    return {"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "displayName", "value": value}]}


async def test_etags_hold_across_replicas(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    address = f"{_unique('etag')}@{DOMAIN}"
    created = _expect(await _call(http, "POST", _scim(cluster, 0, "/Users"),
                                  {"schemas": [USER_URN], "userName": address, "active": True}), 201,
                      "POST /Users", cluster)
    path = f"/Users/{created['id']}"
    read_on_b = await _call(http, "GET", _scim(cluster, 1, path))
    _expect(read_on_b, 200, "GET via replica B", cluster)
    stale = read_on_b.etag
    assert stale is not None and stale == created["meta"]["version"]

    # An ETag read on B is good for a write on A.
    on_a = await _call(http, "PATCH", _scim(cluster, 0, path), _rename_display("Written On A"), {"If-Match": stale})
    _expect(on_a, 200, f"PATCH via A with If-Match {stale} from B", cluster)
    assert on_a.etag is not None and on_a.etag != stale

    # After A's write, B must refuse the version it handed out before.
    refused = await _call(http, "PATCH", _scim(cluster, 1, path), _rename_display("Lost On B"), {"If-Match": stale})
    _expect(refused, 412, f"PATCH via B with stale If-Match {stale} after A wrote {on_a.etag}", cluster)
    again = await _call(http, "GET", _scim(cluster, 1, path))
    assert again.etag == on_a.etag and again.body["displayName"] == "Written On A"

    # The current version works on B, and A then sees B's write.
    on_b = await _call(http, "PATCH", _scim(cluster, 1, path), _rename_display("Written On B"),
                       {"If-Match": on_a.etag})
    _expect(on_b, 200, f"PATCH via B with current If-Match {on_a.etag}", cluster)
    seen_on_a = await _call(http, "GET", _scim(cluster, 0, path))
    assert seen_on_a.etag == on_b.etag and seen_on_a.body["displayName"] == "Written On B"

    (mailbox,) = [m for m in (await _mock_state(http, cluster))["mailboxes"] if m["address"] == address]
    assert mailbox["display_name"] == "Written On B"


async def test_one_if_match_wins_across_replicas(cluster: Cluster, http: aiohttp.ClientSession) -> None:
    address = f"{_unique('ifmatch')}@{DOMAIN}"
    created = _expect(await _call(http, "POST", _scim(cluster, 1, "/Users"),
                                  {"schemas": [USER_URN], "userName": address, "active": True}), 201,
                      "POST /Users", cluster)
    path = f"/Users/{created['id']}"
    version = created["meta"]["version"]
    replies = await asyncio.gather(*(
        _call(http, "PATCH", _scim(cluster, n % 2, path), _rename_display(f"Writer {n}"), {"If-Match": version})
        for n in range(2 * PER_REPLICA)
    ))
    statuses = sorted(r.status for r in replies)
    assert statuses.count(200) == 1 and statuses.count(412) == len(replies) - 1, (
        f"{len(replies)} PATCHes with If-Match {version}: expected one 200 and the rest 412, got {statuses}"
    )
    (winner,) = [n for n, r in enumerate(replies) if r.status == 200]
    (mailbox,) = [m for m in (await _mock_state(http, cluster))["mailboxes"] if m["address"] == address]
    assert mailbox["display_name"] == f"Writer {winner}"


async def _mailboxes_made_outside(http: aiohttp.ClientSession, cluster: Cluster, prefix: str, n: int) -> list[str]:
    addresses = [f"{prefix}-{i}@{DOMAIN}" for i in range(n)]
    for address in addresses:
        await _mock_api(http, cluster, "POST", "/mailboxes", {"address": address})
    return addresses


async def test_mailbox_made_outside_is_adopted_once_across_replicas(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    (address,) = await _mailboxes_made_outside(http, cluster, _unique("legacy"), 1)
    replies = await asyncio.gather(*(
        _call(http, "GET", _scim(cluster, n % 2, "/Users") + f'?filter=userName eq "{address}"')
        for n in range(2 * PER_REPLICA)
    ))
    ids: set[str] = set()
    for n, reply in enumerate(replies):
        body = _expect(reply, 200, f"GET /Users?filter=userName eq {address} via replica {n % 2}", cluster)
        ids.update(u["id"] for u in body["Resources"])
    assert len(ids) == 1, f"replicas adopted {address} under {len(ids)} ids: {ids}"


async def test_members_made_outside_are_adopted_by_concurrent_reads(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    prefix = _unique("outside")
    addresses = await _mailboxes_made_outside(http, cluster, prefix, 12)
    group = _expect(await _call(http, "POST", _scim(cluster, 0, "/Groups"),
                                {"schemas": [GROUP_URN], "displayName": prefix}), 201, "POST /Groups", cluster)
    (dist,) = [d for d in (await _mock_state(http, cluster))["lists"] if d["display_name"] == prefix]
    await _mock_api(http, cluster, "POST", f"/lists/{dist['address']}/members", {"add": addresses})
    # Entra's next cycle reads the group from both replicas at once; each finds unmapped members.
    replies = await asyncio.gather(*(
        _call(http, "GET", _scim(cluster, n % 2, f"/Groups/{group['id']}")) for n in range(2 * PER_REPLICA)
    ))
    member_sets: set[tuple[str, ...]] = set()
    for n, reply in enumerate(replies):
        body = _expect(reply, 200, f"GET /Groups/{group['id']} via replica {n % 2} (members added outside)",
                       cluster)
        member_sets.add(tuple(sorted(m["value"] for m in body["members"])))
    assert len(member_sets) == 1, f"replicas disagree on the members' ids: {member_sets}"
    assert len(next(iter(member_sets))) == len(addresses)
