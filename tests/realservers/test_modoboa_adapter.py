"""The Modoboa adapter against a real Modoboa 2.12: each of the API's quirks, and what the adapter makes of it.

Every test checks Modoboa's own view through its API, not only what the adapter says.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from adapters.base import AlreadyExists, NotFound, Rejected, Unavailable
from adapters.contract.kit import eq
from adapters.modoboa.adapter import EMPTY_LIST_RECIPIENT, ModoboaAdapter
from adapters.modoboa.mapping import LIST_MARKER
from tests.realservers.matrix_modoboa import modoboa_adapter
from tests.realservers.modoboa import ModoboaInstance, ModoboaServer

DOMAIN = "example.com"
LISTS = "lists.example.com"
PASSWORD = "Xk9-pRt7-Lm2q"


@pytest.fixture
async def adapter(modoboa: ModoboaServer) -> AsyncIterator[ModoboaAdapter]:
    modoboa.create_domain(DOMAIN)
    modoboa.create_domain(LISTS)
    adapter = modoboa_adapter(modoboa, list_domain=LISTS, create_domains=False)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.close()


PasswordCheck = Callable[[str, str], bool]

VERIFY = """
import sys
from passlib.hash import sha512_crypt
stored, password = sys.stdin.read().split("\\n", 1)
scheme, _, digest = stored.partition("}")
assert scheme == "{SHA512-CRYPT", scheme
print(sha512_crypt.verify(password, digest))
"""


@pytest.fixture
def modoboa_password(modoboa_instance: ModoboaInstance) -> PasswordCheck:
    """Whether an account's stored password is ``password`` (checked with Modoboa's own passlib)."""

    def check(address: str, password: str) -> bool:
        stored = modoboa_instance.postgres.run(
            "psql", "-X", "-At", "-d", modoboa_instance.database, "-c",
            f"SELECT password FROM core_user WHERE username = '{address}'").strip()
        assert stored, f"no account {address}"
        result = subprocess.run([str(modoboa_instance.install.python), "-c", VERIFY], input=f"{stored}\n{password}",
                                capture_output=True, text=True, timeout=60, check=True)
        return result.stdout.strip() == "True"

    return check


def account(modoboa: ModoboaServer, address: str) -> dict[str, Any]:
    """Modoboa's own record of the account named ``address`` (exact match)."""
    rows = [a for a in modoboa.list_all(f"/api/v2/accounts/?search={address}") if a["username"] == address]
    assert len(rows) == 1, f"{address}: {rows}"
    return rows[0]


def alias(modoboa: ModoboaServer, address: str) -> dict[str, Any]:
    rows = [a for a in modoboa.list_all(f"/api/v2/aliases/?search={address}") if a["address"] == address]
    assert len(rows) == 1, f"{address}: {rows}"
    return rows[0]


def user(address: str, **extra: Any) -> dict[str, Any]:
    return {"userName": address, "active": True, **extra}


# --- accounts -----------------------------------------------------------------------------------


async def test_fuzzy_search_yields_exact_matches_only(modoboa: ModoboaServer, adapter: ModoboaAdapter) -> None:
    for address, first in (("ann@example.com", "Ann"), ("joann@example.com", "Jo"), ("annabel@example.com", "Bel"),
                           ("bob@example.com", "ann@example.com")):
        await adapter.create_user(user(address, name={"givenName": first}))
    fuzzy = modoboa.list_all("/api/v2/accounts/?search=ann@example.com")
    assert {a["username"] for a in fuzzy} == {"ann@example.com", "joann@example.com", "bob@example.com"}
    page = await adapter.find_users(eq("userName", "ANN@example.com"), 0, 10)
    assert [r.key for r in page.items] == ["ann@example.com"]
    assert (await adapter.get_user("ann@example.com")).attributes["name"] == {"givenName": "Ann"}
    # Modoboa ignores filters it does not know: ?username= lists everyone.
    assert len(modoboa.list_all("/api/v2/accounts/?username=ann@example.com")) == 5


async def test_a_create_without_password_gets_a_random_one_and_a_sent_one_is_set(
        modoboa: ModoboaServer, adapter: ModoboaAdapter, modoboa_password: PasswordCheck) -> None:
    await adapter.create_user(user("entra@example.com"))
    await adapter.create_user(user("okta@example.com", password=PASSWORD))
    assert modoboa_password("okta@example.com", PASSWORD)
    assert not modoboa_password("entra@example.com", "ChangeMe1!")  # not Modoboa's default password either
    record = await adapter.get_user("okta@example.com")
    await adapter.update_user(record, {"password": "Another-Pass-42"})
    assert modoboa_password("okta@example.com", "Another-Pass-42")
    with pytest.raises(Rejected) as weak:
        await adapter.update_user(record, {"password": "short"})
    assert "password: This password is too short" in weak.value.reason


async def test_write_answers_lack_fields_yet_records_are_complete(modoboa: ModoboaServer,
                                                                  adapter: ModoboaAdapter) -> None:
    created = await adapter.create_user(user("cat@example.com", name={"givenName": "Cat", "familyName": "Ng"}))
    assert "aliases" not in created.state and "full_address" not in created.state["mailbox"]
    assert created.attributes == {"userName": "cat@example.com", "active": True,
                                  "name": {"givenName": "Cat", "familyName": "Ng"}}
    group = await adapter.create_group({"displayName": "Cats"}, [created.key])
    # Deleting from the create's own record needs the account's lists, which the answer lacked.
    await adapter.delete_user(created)
    assert (await adapter.get_group(group.key)).member_keys == []
    assert alias(modoboa, group.key)["recipients"] == [EMPTY_LIST_RECIPIENT]


async def test_rename_moves_the_mailbox_and_its_list_memberships(modoboa: ModoboaServer,
                                                                 adapter: ModoboaAdapter) -> None:
    modoboa.create_domain("example.org")
    record = await adapter.create_user(user("dan@example.com"))
    group = await adapter.create_group({"displayName": "Team"}, [record.key])
    renamed = await adapter.update_user(await adapter.get_user(record.key), {"userName": "Daniel@Example.org"})
    assert renamed.key == "daniel@example.org"
    assert account(modoboa, "daniel@example.org")["mailbox"]["full_address"] == "daniel@example.org"
    assert alias(modoboa, group.key)["recipients"] == ["daniel@example.org"]
    other = await adapter.create_user(user("eve@example.com"))
    with pytest.raises(AlreadyExists):
        await adapter.update_user(await adapter.get_user(other.key), {"userName": "daniel@example.org"})


async def test_unknown_domain_is_404_on_accounts_400_on_aliases_and_both_say_so(
        modoboa: ModoboaServer, adapter: ModoboaAdapter) -> None:
    status, body = modoboa.api("POST", "/api/v2/accounts/", {"username": "x@nowhere.example", "password": PASSWORD,
                                                              "role": "SimpleUsers"})
    assert (status, body) == (404, {"detail": "No Domain matches the given query."})
    status, body = modoboa.api("POST", "/api/v2/aliases/", {"address": "x@nowhere.example",
                                                             "recipients": ["a@b.example"]})
    assert (status, body) == (400, {"address": ["Domain not found."]})
    with pytest.raises(Rejected) as on_account:
        await adapter.create_user(user("fay@nowhere.example"))
    assert "mail domain nowhere.example does not exist in Modoboa" in on_account.value.reason
    lists_elsewhere = modoboa_adapter(modoboa, list_domain="lists.nowhere.example", create_domains=False)
    try:
        with pytest.raises(Rejected) as on_alias:
            await lists_elsewhere.create_group({"displayName": "Sales"}, [])
    finally:
        await lists_elsewhere.close()
    assert "mail domain lists.nowhere.example does not exist in Modoboa" in on_alias.value.reason


async def test_missing_domains_are_created_when_allowed(modoboa: ModoboaServer) -> None:
    adapter = modoboa_adapter(modoboa, list_domain="lists.new.example", create_domains=True)
    try:
        await adapter.create_user(user("gus@new.example"))
        await adapter.create_group({"displayName": "New"}, ["gus@new.example"])
    finally:
        await adapter.close()
    assert {d["name"] for d in modoboa.list_all("/api/v2/domains/")} == {"new.example", "lists.new.example"}
    assert alias(modoboa, "new@lists.new.example")["recipients"] == ["gus@new.example"]


async def test_the_domain_filter_is_a_key_for_accounts_and_a_name_for_aliases(modoboa: ModoboaServer) -> None:
    pk = modoboa.create_domain("a.example")
    modoboa.create_domain("b.example")
    for address in ("ann@a.example", "bob@b.example"):
        modoboa.expect(201, "POST", "/api/v2/accounts/", {"username": address, "password": PASSWORD,
                                                          "role": "SimpleUsers"})
    assert modoboa.api("GET", "/api/v2/accounts/?domain=a.example")[0] == 400
    assert [a["username"] for a in modoboa.list_all(f"/api/v2/accounts/?domain={pk}")] == ["ann@a.example"]
    assert modoboa.api("GET", f"/api/v2/aliases/?domain={pk}")[0] == 400
    scoped = modoboa_adapter(modoboa, list_domain="a.example", domains=frozenset({"a.example"}))
    try:
        group = await scoped.create_group({"displayName": "A Team"}, ["ann@a.example"])
        page = await scoped.find_users(None, 0, 10)
        groups = await scoped.find_groups(None, 0, 10)
        with pytest.raises(NotFound):
            await scoped.get_user("bob@b.example")
    finally:
        await scoped.close()
    assert ([r.key for r in page.items], page.total) == (["ann@a.example"], 1)
    assert [g.key for g in groups.items] == [group.key] == ["a-team@a.example"]


async def test_paging_reads_the_window_asked_for(modoboa: ModoboaServer, adapter: ModoboaAdapter) -> None:
    names = [f"p{n:02d}@example.com" for n in range(7)]
    for name in names:
        await adapter.create_user(user(name))
    assert [r.key for r in (await adapter.find_users(None, 2, 3)).items] == names[2:5]
    window = await adapter.find_users(None, 5, 3)
    assert ([r.key for r in window.items], window.total) == (names[5:], 7)
    beyond = await adapter.find_users(None, 30, 3)
    assert (beyond.items, beyond.total) == ([], 7)


async def test_administrators_are_never_users(modoboa: ModoboaServer, adapter: ModoboaAdapter) -> None:
    modoboa.expect(201, "POST", "/api/v2/accounts/", {"username": "boss@example.com", "password": PASSWORD,
                                                      "role": "DomainAdmins"})
    assert (await adapter.find_users(eq("userName", "boss@example.com"), 0, 10)).items == []
    assert all(r.key != "admin" for r in (await adapter.find_users(None, 0, 100)).items)
    with pytest.raises(Rejected) as taken:
        await adapter.create_user(user("boss@example.com"))
    assert taken.value.status == 409 and "role DomainAdmins" in taken.value.reason


# --- aliases --------------------------------------------------------------------------------------


async def test_every_alias_patch_carries_the_whole_recipient_list(modoboa: ModoboaServer,
                                                                  adapter: ModoboaAdapter) -> None:
    a = await adapter.create_user(user("ann@example.com"))
    b = await adapter.create_user(user("bob@example.com"))
    group = await adapter.create_group({"displayName": "Sales"}, [a.key, b.key])
    pk = alias(modoboa, group.key)["pk"]
    status, page = modoboa.api("PATCH", f"/api/v2/aliases/{pk}/", {"description": "no recipients"})
    assert status == 500 and "<html" in page.lower()  # Modoboa's own bug, answered with an HTML page
    renamed = await adapter.update_group(await adapter.get_group(group.key), {"displayName": "Sales EMEA"})
    assert renamed.key == group.key  # the address stays: mail already sent keeps arriving
    after = alias(modoboa, group.key)
    assert (after["description"], after["recipients"], after["enabled"]) == (
        LIST_MARKER + "Sales EMEA", ["ann@example.com", "bob@example.com"], True)


async def test_a_server_error_page_is_unavailable(modoboa: ModoboaServer, adapter: ModoboaAdapter) -> None:
    member = await adapter.create_user(user("ann@example.com"))
    group = await adapter.create_group({"displayName": "Ops"}, [member.key])
    pk = alias(modoboa, group.key)["pk"]
    with pytest.raises(Unavailable) as failed:
        await adapter.client.request("PATCH", ("aliases", str(pk)), body={"enabled": False}, deadline=2.0)
    assert "HTTP 500 (an HTML error page)" in failed.value.detail


async def test_recipients_are_stored_in_lower_case_so_they_stay_linked(modoboa: ModoboaServer,
                                                                       adapter: ModoboaAdapter) -> None:
    await adapter.create_user(user("ann@example.com"))
    assert modoboa.api("POST", "/api/v2/aliases/", {"address": "x@lists.example.com",
                                                    "recipients": ["ANN@example.com"]})[0] == 404
    group = await adapter.create_group({"displayName": "Mixed"}, ["ANN@Example.com"])
    assert alias(modoboa, group.key)["recipients"] == ["ann@example.com"]
    assert account(modoboa, "ann@example.com")["aliases"] == [group.key]


async def test_an_empty_group_is_a_disabled_alias_with_a_stand_in(modoboa: ModoboaServer,
                                                                 adapter: ModoboaAdapter) -> None:
    group = await adapter.create_group({"displayName": "Nobody Yet"}, [])
    row = alias(modoboa, "nobody-yet@lists.example.com")
    assert (row["recipients"], row["enabled"]) == ([EMPTY_LIST_RECIPIENT], False)
    assert (await adapter.get_group(group.key)).member_keys == []
    member = await adapter.create_user(user("ann@example.com"))
    await adapter.add_members(await adapter.get_group(group.key), [member.key])
    row = alias(modoboa, group.key)
    assert (row["recipients"], row["enabled"]) == (["ann@example.com"], True)
    await adapter.remove_members(await adapter.get_group(group.key), [member.key])
    row = alias(modoboa, group.key)
    assert (row["recipients"], row["enabled"]) == ([EMPTY_LIST_RECIPIENT], False)


async def test_a_list_outlives_the_deletion_of_its_last_member(modoboa: ModoboaServer,
                                                               adapter: ModoboaAdapter) -> None:
    member = await adapter.create_user(user("ann@example.com"))
    group = await adapter.create_group({"displayName": "Solo"}, [member.key])
    # What Modoboa does on its own: deleting the only recipient deletes the alias.
    bare = modoboa.expect(201, "POST", "/api/v2/aliases/", {"address": "bare@lists.example.com",
                                                            "recipients": ["ann@example.com"]})
    await adapter.delete_user(await adapter.get_user(member.key))
    assert modoboa.api("GET", f"/api/v2/aliases/{bare['pk']}/")[0] == 404
    row = alias(modoboa, group.key)
    assert (row["recipients"], row["enabled"]) == ([EMPTY_LIST_RECIPIENT], False)
    assert (await adapter.get_group(group.key)).member_keys == []


async def test_names_and_addresses_of_lists_are_unique(modoboa: ModoboaServer, adapter: ModoboaAdapter) -> None:
    mailbox = await adapter.create_user(user("sales@lists.example.com"))
    with pytest.raises(Rejected) as on_mailbox:
        await adapter.create_group({"displayName": "Sales"}, [])
    assert on_mailbox.value.status == 409 and "is a mailbox in Modoboa" in on_mailbox.value.reason
    await adapter.delete_user(mailbox)
    modoboa.expect(201, "POST", "/api/v2/aliases/", {"address": "info@lists.example.com",
                                                     "recipients": ["someone@elsewhere.example"]})
    with pytest.raises(Rejected) as on_alias:
        await adapter.create_group({"displayName": "Info"}, [])
    assert "an alias that the gateway does not manage" in on_alias.value.reason
    first = await adapter.create_group({"displayName": "Sales"}, [])
    renamed = await adapter.update_group(first, {"displayName": "Marketing"})
    with pytest.raises(AlreadyExists):
        await adapter.create_group({"displayName": "MARKETING"}, [])
    with pytest.raises(Rejected) as on_group:
        await adapter.create_group({"displayName": "sales"}, [])
    assert "already used by the group 'Marketing'" in on_group.value.reason
    assert [g.key for g in (await adapter.find_groups(eq("displayName", "marketing"), 0, 10)).items] == [renamed.key]
    # The operator's own alias is not a group.
    assert [g.attributes["displayName"] for g in (await adapter.find_groups(None, 0, 10)).items] == ["Marketing"]


# --- is_active ----------------------------------------------------------------------------------


async def test_reenabling_an_account_reenables_the_lists_modoboa_disabled_with_it(
        modoboa: ModoboaServer, adapter: ModoboaAdapter) -> None:
    ann = await adapter.create_user(user("ann@example.com"))
    bob = await adapter.create_user(user("bob@example.com"))
    solo = await adapter.create_group({"displayName": "Solo"}, [ann.key])
    pair = await adapter.create_group({"displayName": "Pair"}, [ann.key, bob.key])
    await adapter.update_user(await adapter.get_user(ann.key), {"active": False})
    assert account(modoboa, ann.key)["is_active"] is False
    # Modoboa disables the aliases whose only recipient is the disabled account …
    assert (alias(modoboa, solo.key)["enabled"], alias(modoboa, pair.key)["enabled"]) == (False, True)
    # … and does not enable them again with the account; the adapter does.
    modoboa.expect(200, "PATCH", f"/api/v2/accounts/{account(modoboa, ann.key)['pk']}/", {"is_active": False})
    await adapter.update_user(await adapter.get_user(ann.key), {"active": True})
    assert account(modoboa, ann.key)["is_active"] is True
    assert (alias(modoboa, solo.key)["enabled"], alias(modoboa, pair.key)["enabled"]) == (True, True)
    assert alias(modoboa, solo.key)["recipients"] == ["ann@example.com"]


async def test_reenabling_through_the_create_answer_reads_the_lists_first(modoboa: ModoboaServer,
                                                                          adapter: ModoboaAdapter) -> None:
    created = await adapter.create_user(user("ann@example.com", active=False))
    assert account(modoboa, "ann@example.com")["is_active"] is False
    group = await adapter.create_group({"displayName": "Late"}, [created.key])
    modoboa.expect(200, "PATCH", f"/api/v2/accounts/{created.state['pk']}/", {"is_active": False})
    assert alias(modoboa, group.key)["enabled"] is False
    await adapter.update_user(created, {"active": True})  # the create's answer has no "aliases"
    assert alias(modoboa, group.key)["enabled"] is True


# --- least privilege --------------------------------------------------------------------------------


def domain_admin_token(modoboa: ModoboaServer, instance: ModoboaInstance, address: str, domains: list[str]) -> str:
    """A DomainAdmins account administering ``domains``, its limits raised, and an API token for it.

    Modoboa's web interface hands tokens to super administrators only; an operator makes one
    for another account with ``manage.py drf_create_token``, which is this row.
    """
    account = modoboa.expect(201, "POST", "/api/v2/accounts/", {"username": address, "password": PASSWORD,
                                                                "role": "DomainAdmins"})
    for name in domains:
        pk = next(d["pk"] for d in modoboa.list_all("/api/v2/domains/") if d["name"] == name)
        modoboa.expect(200, "POST", f"/api/v2/domains/{pk}/administrators/add/", {"account": account["pk"]})
    modoboa.expect(200, "PATCH", f"/api/v2/accounts/{account['pk']}/", {"resources": [
        {"name": "mailboxes", "max_value": -1}, {"name": "mailbox_aliases", "max_value": -1}]})
    key = secrets.token_hex(20)
    instance.postgres.run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", instance.database, "-c",
                          f"INSERT INTO authtoken_token (key, created, user_id) VALUES ('{key}', now(), "
                          f"{account['pk']})")
    return key


async def test_a_domain_administrators_token_is_enough(modoboa: ModoboaServer, modoboa_instance: ModoboaInstance,
                                                       adapter: ModoboaAdapter) -> None:
    modoboa.create_domain("other.example")
    outsider = await adapter.create_user(user("zed@other.example"))
    token = domain_admin_token(modoboa, modoboa_instance, "gateway@example.com", [DOMAIN, LISTS])
    limited = modoboa_adapter(modoboa, token=token, list_domain=LISTS, create_domains=True)
    try:
        ann = await limited.create_user(user("ann@example.com", name={"givenName": "Ann"}))
        await limited.update_user(await limited.get_user(ann.key), {"active": False, "name.familyName": "Lee"})
        group = await limited.create_group({"displayName": "Team"}, [ann.key])
        await limited.update_user(await limited.get_user(ann.key), {"active": True})
        listed = await limited.find_users(None, 0, 10)
        with pytest.raises(NotFound):
            await limited.get_user(outsider.key)  # not one of its domains: Modoboa does not show it
        with pytest.raises(Rejected) as no_domains:
            await limited.create_user(user("bob@new.example"))
        await limited.delete_group(await limited.get_group(group.key))
        await limited.delete_user(await limited.get_user(ann.key))
    finally:
        await limited.close()
    assert [r.key for r in listed.items] == ["ann@example.com"]  # neither itself nor the outsider
    assert no_domains.value.status == 403 and "may not create domains" in no_domains.value.reason
    assert not any(a["username"] == "ann@example.com" for a in modoboa.list_all("/api/v2/accounts/"))
