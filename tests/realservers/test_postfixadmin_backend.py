"""The postfixadmin backend against real PostgreSQL and MariaDB: rows, rules, schemas, faults, commands.

Mail delivery itself is proven in test_postfixadmin_mail.py; here the database is enough.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.base import GroupRecord, Rejected, Unavailable
from adapters.contract import TcpFaultProxy
from adapters.postfixadmin.adapter import PostfixAdminAdapter
from adapters.postfixadmin.db import Database, SchemaProblem, Session, Target
from adapters.postfixadmin.schema import RELEASES, Release
from adapters.retry import RetryPolicy
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings
from tests.matrix import LIST_DOMAIN
from tests.realservers.databases import FLAVOURS, Flavour, execute, server_login, unique_name
from tests.realservers.matrix_postfixadmin import make_adapter
from tests.realservers.postfixadmin_db import PostfixAdminDatabase, postfixadmin_database

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
async def adapter(postfixadmin_db: PostfixAdminDatabase) -> Any:
    made = make_adapter(postfixadmin_db.dsn(), create_domains=False, list_domain=postfixadmin_db.domains[1])
    await made.start()
    yield made
    await made.close()


# --- schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_every_release_schema_takes_mailboxes_lists_renames_and_deletes(flavour: Flavour,
                                                                               release: Release) -> None:
    with postfixadmin_database(flavour, release=release) as db:
        adapter = make_adapter(db.dsn(), create_domains=False, list_domain=db.domains[1])
        await adapter.start()
        try:
            user = await adapter.create_user({"userName": "ann@example.com", "displayName": "Ann"})
            group = await adapter.create_group({"displayName": "Team"}, [user.key])
            moved = await adapter.update_user(user, {"userName": "ann.lee@example.org", "active": False})
            assert (await adapter.get_group(group.key)).member_keys == [moved.key]
            assert db.fetch("SELECT username, maildir, domain, active FROM mailbox") == [
                {"username": "ann.lee@example.org", "maildir": "example.com/ann/", "domain": "example.org",
                 "active": False}]
            await adapter.delete_user(moved)
            assert db.fetch("SELECT goto FROM alias WHERE address = %s", group.key) == [{"goto": ""}]
        finally:
            await adapter.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_missing_columns_stop_start_up_and_check_with_what_is_missing(flavour: Flavour) -> None:
    with postfixadmin_database(flavour) as db:
        db.execute("ALTER TABLE mailbox DROP COLUMN local_part")
        db.execute("DROP TABLE alias" + (" CASCADE" if flavour == "postgresql" else ""))
        adapter = make_adapter(db.dsn())
        with pytest.raises(SchemaProblem, match=r"table mailbox lacks column local_part; table alias is missing"):
            await adapter.start()
        await adapter.close()

        env = {"SCIM_GATEWAY_TOKEN": "t" * 32, "SCIM_GATEWAY_BACKEND": "postfixadmin", "SCIM_GATEWAY_STATE": "memory",
               "SCIM_GATEWAY_POSTFIXADMIN_DSN": db.dsn()}
        checked = cli("check", env=env)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert "lacks column local_part" in checked.stdout
        assert db.gateway.password not in checked.stdout + checked.stderr


async def test_an_unreachable_database_does_not_stop_start_up(postfixadmin_db: PostfixAdminDatabase) -> None:
    async with TcpFaultProxy(postfixadmin_db.gateway.host, postfixadmin_db.gateway.port) as proxy:
        await proxy.refuse()
        adapter = make_adapter(postfixadmin_db.dsn(host=proxy.host, port=proxy.port))
        await adapter.start()  # the database may come up later; /readyz says so meanwhile
        with pytest.raises(Unavailable):
            await adapter.check()
        await proxy.heal()
        await adapter.check()
        await adapter.close()


# --- domains ----------------------------------------------------------------------------------


async def test_a_mailbox_needs_an_active_local_domain(adapter: PostfixAdminAdapter,
                                                      postfixadmin_db: PostfixAdminDatabase) -> None:
    tag = uuid.uuid4().hex[:8]
    postfixadmin_db.add_domain(f"off-{tag}.example", active=False)
    postfixadmin_db.add_domain(f"relay-{tag}.example", backupmx=True)
    cases = {f"new-{tag}.example": "does not exist in PostfixAdmin: add it there first",
             f"off-{tag}.example": "is disabled in PostfixAdmin", f"relay-{tag}.example": "backup MX"}
    for domain, detail in cases.items():
        with pytest.raises(Rejected, match=detail):
            await adapter.create_user({"userName": f"ann@{domain}"})
    assert not postfixadmin_db.fetch("SELECT username FROM mailbox WHERE domain LIKE %s", f"%{tag}%")

    adapter.create_domains = True
    created = await adapter.create_user({"userName": f"ann@new-{tag}.example"})
    assert postfixadmin_db.fetch("SELECT transport, active, backupmx FROM domain WHERE domain = %s",
                                 f"new-{tag}.example") == [{"transport": "virtual", "active": True, "backupmx": False}]
    with pytest.raises(Rejected, match="disabled"):
        await adapter.create_user({"userName": f"bob@off-{tag}.example"})
    await adapter.delete_user(created)


# --- rows as PostfixAdmin writes them -------------------------------------------------------------


async def scim_client(aiohttp_client: ClientFactory, adapter: PostfixAdminAdapter, **settings: Any) -> Any:
    app = create_app(make_settings(list_domain=LIST_DOMAIN, **settings), adapter=adapter)
    client: TestClient[Any, Any] = await aiohttp_client(app, headers=AUTH)
    return client


async def test_rows_are_lower_case_and_scim_reads_back_what_was_sent(
    aiohttp_client: ClientFactory, postfixadmin_db: PostfixAdminDatabase
) -> None:
    scim = await scim_client(aiohttp_client, make_adapter(postfixadmin_db.dsn()))
    tag = uuid.uuid4().hex[:6]
    sent = {"schemas": [USER_URN], "userName": f"Joy.Young-{tag}@Example.COM", "displayName": "Joy Young-Ünal",
            "name": {"givenName": "Joy", "familyName": "Young-Ünal", "formatted": "Joy Young-Ünal"},
            "active": True, "title": "Buyer"}
    reply = await scim.post(f"{BASE}/Users", json=sent)
    assert reply.status == 201, await reply.text()
    user = await reply.json()
    address = f"joy.young-{tag}@example.com"
    rows = postfixadmin_db.fetch("SELECT username, local_part, domain, maildir, name, active FROM mailbox"
                                 " WHERE username = %s", address)
    assert rows == [{"username": address, "local_part": f"joy.young-{tag}", "domain": "example.com",
                     "maildir": f"example.com/joy.young-{tag}/", "name": "Joy Young-Ünal", "active": True}]
    assert postfixadmin_db.fetch("SELECT goto, active FROM alias WHERE address = %s", address) == [
        {"goto": address, "active": True}]
    got = await (await scim.get(f"{BASE}/Users/{user['id']}")).json()
    for key in ("userName", "displayName", "name", "title", "active"):
        assert got[key] == sent[key]

    disable = {"schemas": [PATCH_URN], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    assert (await scim.patch(f"{BASE}/Users/{user['id']}", json=disable)).status == 200
    assert postfixadmin_db.fetch("SELECT m.active AS m, a.active AS a FROM mailbox m JOIN alias a"
                                 " ON a.address = m.username WHERE m.username = %s", address) == [
        {"m": False, "a": False}]


async def test_a_group_reads_back_its_exact_name_from_its_address(
    aiohttp_client: ClientFactory, postfixadmin_db: PostfixAdminDatabase
) -> None:
    postfixadmin_db.reset()
    scim = await scim_client(aiohttp_client, make_adapter(postfixadmin_db.dsn()))
    reply = await scim.post(f"{BASE}/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                                    "displayName": "R&D Zürich"})
    assert reply.status == 201, await reply.text()
    group = await reply.json()
    assert postfixadmin_db.fetch("SELECT address FROM alias") == [{"address": f"r=26d.z=c3=bcrich@{LIST_DOMAIN}"}]
    assert (await (await scim.get(f"{BASE}/Groups/{group['id']}")).json())["displayName"] == "R&D Zürich"
    found = await (await scim.get(f"{BASE}/Groups", params={"filter": 'displayName eq "r&d zürich"'})).json()
    assert [g["id"] for g in found["Resources"]] == [group["id"]]


async def test_a_password_is_never_kept_logged_or_returned(
    aiohttp_client: ClientFactory, postfixadmin_db: PostfixAdminDatabase, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = tmp_path / "state.sqlite3"
    scim = await scim_client(aiohttp_client, make_adapter(postfixadmin_db.dsn()), state=f"sqlite:///{state}",
                             log_level="debug")
    first, second = f"First-{uuid.uuid4().hex}", f"Second-{uuid.uuid4().hex}"
    address = postfixadmin_db.unique_address("secret")
    reply = await scim.post(f"{BASE}/Users", json={"schemas": [USER_URN], "userName": address, "password": first})
    assert reply.status == 201
    user = await reply.json()
    change = {"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "password", "value": second}]}
    patched = await scim.patch(f"{BASE}/Users/{user['id']}", json=change)
    replaced = await scim.put(f"{BASE}/Users/{user['id']}",
                              json={"schemas": [USER_URN], "userName": address, "password": second})
    got = await scim.get(f"{BASE}/Users/{user['id']}")
    answers = [await r.text() for r in (reply, patched, replaced, got)]
    stored = postfixadmin_db.fetch("SELECT password FROM mailbox WHERE username = %s", address)[0]["password"]
    assert stored.startswith("{BLF-CRYPT}$2b$")
    await scim.close()
    kept = await asyncio.to_thread(lambda: b"".join(p.read_bytes() for p in tmp_path.iterdir()))
    logged = capsys.readouterr()
    for secret in (first, second):
        assert secret.encode() not in kept
        assert secret not in logged.out + logged.err
        assert all(secret not in answer for answer in answers)


# --- concurrency and lost answers -----------------------------------------------------------------


async def test_concurrent_member_changes_never_lose_one_another(postfixadmin_db: PostfixAdminDatabase) -> None:
    writers = [make_adapter(postfixadmin_db.dsn(), list_domain=postfixadmin_db.domains[1]) for _ in range(3)]
    first = writers[0]
    users = [await first.create_user({"userName": postfixadmin_db.unique_address(f"m{i}")}) for i in range(12)]
    group = await first.create_group({"displayName": f"Busy {uuid.uuid4().hex[:6]}"}, [users[0].key])
    stale = GroupRecord(group.key, group.attributes, list(group.member_keys))

    async def add(writer: PostfixAdminAdapter, keys: list[str]) -> None:
        for key in keys:
            await writer.add_members(stale, [key])

    await asyncio.gather(*(add(w, [u.key for u in users[1 + i::3]]) for i, w in enumerate(writers)))
    assert sorted((await first.get_group(group.key)).member_keys) == sorted(u.key for u in users)
    await asyncio.gather(*(w.remove_members(stale, [users[i].key]) for i, w in enumerate(writers)))
    assert sorted((await first.get_group(group.key)).member_keys) == sorted(u.key for u in users[3:])
    for writer in writers:
        await writer.close()


@pytest.mark.parametrize("retry_safe", [False, True])
async def test_a_lost_commit_answer_may_have_applied_a_failure_before_it_did_not(
    postfixadmin_db: PostfixAdminDatabase, retry_safe: bool
) -> None:
    login = postfixadmin_db.gateway
    async with TcpFaultProxy(login.host, login.port) as proxy:
        policy = RetryPolicy(attempt_timeout=0.5, connect_timeout=0.3, deadline=1.5, backoff_initial=0.01)
        db = Database(Target.from_dsn(postfixadmin_db.dsn(host=proxy.host, port=proxy.port)), policy=policy)
        domain = f"lost-{uuid.uuid4().hex[:8]}.example"

        async def then_lose_commit(session: Session) -> None:
            await session.execute(*insert_domain(domain))
            await proxy.lose_answers()

        with pytest.raises(Unavailable) as lost:
            await db.transaction(then_lose_commit, retry_safe=retry_safe)
        assert lost.value.may_apply
        await proxy.heal()
        await db.close()

        async def lose_first(session: Session) -> None:
            await proxy.lose_answers()
            await session.execute(*insert_domain(f"never-{domain}"))

        with pytest.raises(Unavailable) as failed:
            await db.transaction(lose_first)
        assert not failed.value.may_apply
        await proxy.heal()
        await db.close()
    assert postfixadmin_db.fetch("SELECT domain FROM domain WHERE domain LIKE %s", f"%{domain}") == [
        {"domain": domain}]


def insert_domain(domain: str) -> tuple[str, str, str]:
    return ("INSERT INTO domain (domain, description, transport, created, modified) VALUES (%s, %s, 'virtual',"
            " NOW(), NOW())", domain, "lost answers")


# --- commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_postfixadmin_schema_builds_a_new_database_and_refuses_an_existing_one(flavour: Flavour) -> None:
    server = server_login(flavour)
    name = unique_name("pfa_cli")
    execute(server, f"CREATE DATABASE {name}")
    try:
        dsn = server.to(database=name).dsn
        printed = cli("postfixadmin-schema", "--dsn", dsn, "--release", "3.3.16", "--print", "--grant-to", "gw")
        assert printed.returncode == 0 and "CREATE TABLE" in printed.stdout and "GRANT SELECT" in printed.stdout
        built = cli("postfixadmin-schema", "--dsn", dsn, "--release", "3.3.16")
        assert built.returncode == 0, built.stderr
        assert "created PostfixAdmin 3.3.16 tables" in built.stdout
        again = cli("postfixadmin-schema", "--dsn", dsn)
        assert again.returncode == 2
        assert "already has PostfixAdmin tables" in again.stderr
    finally:
        force = " WITH (FORCE)" if flavour == "postgresql" else ""
        execute(server, f"DROP DATABASE IF EXISTS {name}{force}")


def test_verify_backend_passes_against_a_postfixadmin_database(postfixadmin_db: PostfixAdminDatabase) -> None:
    env = {"SCIM_GATEWAY_TOKEN": "t" * 32, "SCIM_GATEWAY_BACKEND": "postfixadmin", "SCIM_GATEWAY_STATE": "memory",
           "SCIM_GATEWAY_POSTFIXADMIN_DSN": postfixadmin_db.dsn(),
           "SCIM_GATEWAY_LIST_DOMAIN": postfixadmin_db.domains[1],
           "SCIM_GATEWAY_POSTFIXADMIN_ATTEMPT_TIMEOUT": "1", "SCIM_GATEWAY_POSTFIXADMIN_DEADLINE": "3"}
    result = cli("verify-backend", "--domain", postfixadmin_db.domains[0], "--i-accept-side-effects", env=env)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1].startswith("verify-backend: ") and lines[-1].endswith(" passed, 0 failed")
    assert not any(line.startswith("SKIP") for line in lines), result.stdout
    assert not postfixadmin_db.fetch("SELECT username FROM mailbox WHERE username LIKE %s", "kit-%")
