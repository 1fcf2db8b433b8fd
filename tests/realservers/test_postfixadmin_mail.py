"""The proof: SCIM requests alone, through the gateway on the postfixadmin backend, and real Postfix and Dovecot.

Every test runs on PostgreSQL and on MariaDB (the ``mailstack`` fixture), with fresh addresses
on the session's mail stack. The gateway logs in with the stack's read/write login; Postfix
and Dovecot read the same database with a SELECT-only one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.postfixadmin.passwords import SCHEMES
from gateway.http.app import create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings
from tests.realservers.mailstack import MailRefused, MailStack
from tests.realservers.matrix_postfixadmin import make_adapter

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

Client = TestClient[Any, Any]


def entra_user(address: str) -> dict[str, Any]:
    """A create as Entra sends it: no password."""
    given, family = "Joy", f"Young-{uuid.uuid4().hex[:4]}"
    return {
        "schemas": [USER_URN], "externalId": address.partition("@")[0], "userName": address, "active": True,
        "displayName": f"{given} {family}", "name": {"givenName": given, "familyName": family},
        "emails": [{"type": "work", "value": address, "primary": True}],
    }


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_URN], "Operations": list(operations)}


def subject() -> str:
    return f"scim proof {uuid.uuid4().hex}"


async def gateway(aiohttp_client: ClientFactory, stack: MailStack, scheme: str = "BLF-CRYPT") -> Client:
    adapter = make_adapter(stack.dsn, list_domain=stack.domains[1], create_domains=False, scheme=scheme)
    app = create_app(make_settings(list_domain=stack.domains[1]), adapter=adapter)
    return await aiohttp_client(app, headers=AUTH)


@pytest.fixture
async def scim(aiohttp_client: ClientFactory, mailstack: MailStack) -> AsyncIterator[Client]:
    yield await gateway(aiohttp_client, mailstack)


async def create_user(scim: Client, body: dict[str, Any]) -> dict[str, Any]:
    reply = await scim.post(f"{BASE}/Users", json=body)
    assert reply.status == 201, await reply.text()
    created: dict[str, Any] = await reply.json()
    return created


async def send_patch(scim: Client, path: str, body: dict[str, Any]) -> None:
    reply = await scim.patch(f"{BASE}/{path}", json=body)
    assert reply.status in (200, 204), await reply.text()


def refused(stack: MailStack, address: str) -> bool:
    code, _ = stack.smtp_rcpt(address)
    if not 500 <= code < 600:
        return False
    with pytest.raises(MailRefused) as refusal:
        stack.send(address, subject())
    return 500 <= refusal.value.code < 600


async def test_entra_create_receives_mail_and_a_scim_password_opens_the_mailbox(scim: Client,
                                                                                mailstack: MailStack) -> None:
    address = mailstack.unique_address("joy")
    user = await create_user(scim, entra_user(address))

    assert mailstack.smtp_rcpt(address)[0] == 250
    title = subject()
    mailstack.send(address, title)
    assert mailstack.wait_for_subject(address, title), mailstack.logs()
    assert not mailstack.imap_login(address, "")
    assert not mailstack.imap_login(address, "Corr3ct-hörse")

    await send_patch(scim, f"Users/{user['id']}",
                     patch({"op": "replace", "path": "password", "value": "Corr3ct-hörse"}))
    assert mailstack.imap_login(address, "Corr3ct-hörse")
    assert title in mailstack.imap_subjects(address, "Corr3ct-hörse")
    assert not mailstack.imap_login(address, "wrong")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_okta_create_with_a_password_logs_in_with_each_scheme(
    aiohttp_client: ClientFactory, mailstack: MailStack, scheme: str
) -> None:
    scim = await gateway(aiohttp_client, mailstack, scheme)
    address = mailstack.unique_address("okta")
    await create_user(scim, {**entra_user(address), "password": "Ökta-pass 1"})

    stored = mailstack.fetch("SELECT password FROM mailbox WHERE username = %s", address)[0]["password"]
    assert stored.startswith(f"{{{scheme}}}")
    assert mailstack.imap_login(address, "Ökta-pass 1")
    assert not mailstack.imap_login(address, "Ökta-pass 2")


async def test_disabled_mailbox_is_refused_and_locked_until_enabled_again(scim: Client,
                                                                           mailstack: MailStack) -> None:
    address = mailstack.unique_address("leaver")
    user = await create_user(scim, {**entra_user(address), "password": "s3cret-pass"})
    assert mailstack.imap_login(address, "s3cret-pass")

    await send_patch(scim, f"Users/{user['id']}", patch({"op": "Replace", "path": "active", "value": "False"}))
    assert refused(mailstack, address)
    assert not mailstack.imap_login(address, "s3cret-pass")

    await send_patch(scim, f"Users/{user['id']}", patch({"op": "replace", "path": "active", "value": True}))
    assert mailstack.smtp_rcpt(address)[0] == 250
    title = subject()
    mailstack.send(address, title)
    assert mailstack.wait_for_subject(address, title, password="s3cret-pass"), mailstack.logs()


async def test_renamed_mailbox_receives_at_the_new_address_only(scim: Client, mailstack: MailStack) -> None:
    old = mailstack.unique_address("before")
    user = await create_user(scim, {**entra_user(old), "password": "move-pass"})
    before = subject()
    mailstack.send(old, before)
    assert mailstack.wait_for_subject(old, before, password="move-pass")

    new = mailstack.unique_address("after", mailstack.domains[1])
    await send_patch(scim, f"Users/{user['id']}", patch({"op": "replace", "path": "userName", "value": new}))

    assert refused(mailstack, old)
    after = subject()
    mailstack.send(new, after)
    # The mailbox kept its maildir: the mail from before the rename is still there.
    assert mailstack.wait_for_subject(new, after, password="move-pass"), mailstack.logs()
    assert before in mailstack.imap_subjects(new, "move-pass")
    assert not mailstack.imap_login(old, "move-pass")


async def test_list_reaches_its_members_until_one_is_removed(scim: Client, mailstack: MailStack) -> None:
    stay = await create_user(scim, entra_user(mailstack.unique_address("stay")))
    go = await create_user(scim, entra_user(mailstack.unique_address("go", mailstack.domains[1])))
    name = f"Sales Team {uuid.uuid4().hex[:6]}"
    reply = await scim.post(f"{BASE}/Groups", json={"schemas": [GROUP_URN], "displayName": name, "members": []})
    assert reply.status == 201, await reply.text()
    group = await reply.json()
    rows = mailstack.fetch("SELECT address FROM alias WHERE domain = %s AND address LIKE %s",
                           mailstack.domains[1], "sales.team.%")
    assert len(rows) == 1
    list_address = rows[0]["address"]
    assert refused(mailstack, list_address)  # an empty list bounces nothing into anyone's mailbox

    # Entra's membership sync: one PATCH per added member.
    for member in (stay, go):
        await send_patch(scim, f"Groups/{group['id']}",
                         patch({"op": "Add", "path": "members", "value": [{"value": member["id"]}]}))
    first = subject()
    mailstack.send(list_address, first)
    for member in (stay, go):
        assert mailstack.wait_for_subject(member["userName"], first), mailstack.logs()

    await send_patch(scim, f"Groups/{group['id']}",
                     patch({"op": "Remove", "path": "members", "value": [{"value": go["id"]}]}))
    second = subject()
    mailstack.send(list_address, second)
    assert mailstack.wait_for_subject(stay["userName"], second), mailstack.logs()
    assert second not in mailstack.inbox_subjects(go["userName"])

    reply = await scim.get(f"{BASE}/Groups/{group['id']}")
    assert (await reply.json())["displayName"] == name


async def test_deleted_mailbox_is_refused(scim: Client, mailstack: MailStack) -> None:
    address = mailstack.unique_address("gone")
    user = await create_user(scim, entra_user(address))
    assert mailstack.smtp_rcpt(address)[0] == 250

    reply = await scim.delete(f"{BASE}/Users/{user['id']}")
    assert reply.status == 204
    assert refused(mailstack, address)
    assert not mailstack.user_known(address)
