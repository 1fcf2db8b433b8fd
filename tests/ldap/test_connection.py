"""The connection pool against a real slapd that restarts, stops, hangs, is busy, or wants TLS."""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.base import AttrPath, Compare, NotFound, Unavailable
from adapters.ldap.adapter import LdapAdapter
from adapters.ldap.connection import entries
from adapters.ldap.mapping import UserState
from tests.ldap.conftest import AdapterFactory
from tests.realservers.slapd import Slapd


def _appears(server: Slapd, dn: str, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while server.read(dn, ["1.1"]) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _address(server: Slapd) -> str:
    return f"{server.fresh_name('conn')}@example.org"


async def test_a_restart_costs_no_error_and_no_ambiguous_write(slapd: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(slapd, pool_size=2)
    before = await adapter.create_user({"userName": _address(slapd)})
    await adapter.find_users(None, 0, 1)

    slapd.restart()

    # Every pooled connection is dead now; the adapter notices before it sends, so even a create goes through.
    created = await adapter.create_user({"userName": _address(slapd)})
    assert (await adapter.get_user(before.key)).key == before.key
    stats = adapter.statistics()
    assert stats["reconnects"] >= 1 and stats["ambiguous"] == 0 and stats["failures"] == 0
    assert created.key != before.key


async def test_a_stopped_server_is_unavailable_and_nothing_may_have_applied(
    slapd: Slapd, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter(slapd, deadline=2.0)
    with slapd.stopped():
        with pytest.raises(Unavailable) as reading:
            await adapter.get_user(f"uid=nobody,{slapd.users_dn}")
        with pytest.raises(Unavailable) as creating:
            await adapter.create_user({"userName": _address(slapd)})
        with pytest.raises(Unavailable):
            await adapter.check()
    assert not reading.value.may_apply and not creating.value.may_apply
    assert "cannot connect" in creating.value.detail
    await adapter.check()


async def test_a_write_whose_answer_is_lost_is_reported_and_not_repeated(
    slapd: Slapd, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter(slapd, pool_size=1, timeout=0.4, deadline=3.0)
    await adapter.check()  # the one connection is open and bound before the server hangs
    address = _address(slapd)
    dn = f"uid={address},{slapd.users_dn}"
    values = {"objectClass": ["inetOrgPerson"], "uid": [address], "cn": ["c"], "sn": ["s"], "mail": [address]}

    with slapd.paused(), pytest.raises(Unavailable) as lost:
        await adapter.directory.add(dn, values, "create mailbox")
    assert lost.value.may_apply
    assert adapter.statistics()["ambiguous"] == 1

    # The add was queued by the hanging server and lands once it resumes: exactly why it is not resent.
    assert _appears(slapd, dn)
    assert (await adapter.find_users(Compare(AttrPath("userName"), "eq", address), 0, 5)).total == 1


async def test_a_read_whose_answer_is_lost_is_retried(slapd: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(slapd, pool_size=1, timeout=0.3, deadline=1.5)
    await adapter.check()
    with slapd.paused(), pytest.raises(Unavailable) as lost:
        await adapter.find_users(None, 0, 1)
    assert not lost.value.may_apply
    stats = adapter.statistics()
    assert stats["timeouts"] >= 1 and stats["retries"] >= 1 and stats["ambiguous"] == 0
    await adapter.check()


async def test_a_cancelled_call_keeps_its_connection_until_the_thread_is_done(
    slapd: Slapd, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter(slapd, pool_size=1, timeout=2.0)
    await adapter.check()
    with slapd.paused():
        pending = asyncio.create_task(adapter.find_users(None, 0, 1))
        await asyncio.sleep(0.2)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    # The next call waits for the connection instead of sharing it with the abandoned thread.
    assert (await adapter.find_users(None, 0, 1)).total >= 0
    await adapter.check()


async def test_busy_answers_are_retried_then_unavailable(slapd: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(slapd, deadline=2.0)
    for fault in ("busy", "unavailable"):
        with pytest.raises(Unavailable) as refused:
            await adapter.get_user(slapd.fault_dn(fault))
        assert not refused.value.may_apply and fault in refused.value.detail
    assert adapter.statistics()["busy"] >= 4


async def test_wrong_credentials_are_a_configuration_error(slapd: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(slapd, bind_password="not-the-password")
    for _ in range(6):
        with pytest.raises(Unavailable) as refused:
            await adapter.get_user(f"uid=x,{slapd.users_dn}")
        assert "bind_password" in refused.value.detail
    assert adapter.statistics()["retries"] == 0
    # One refused bind, not one per call: the password policy locks an account after five.
    assert slapd.bind_ok(slapd.service_dn, slapd.service_password)


async def test_missing_entries_and_keys_that_are_no_dn(slapd: Slapd, adapter: LdapAdapter) -> None:
    for key in (f"uid=missing,{slapd.users_dn}", "not a dn", slapd.service_dn):
        with pytest.raises(NotFound):
            await adapter.get_user(key)


@pytest.mark.parametrize("mode", ["starttls", "ldaps"])
async def test_tls(slapd_tls: Slapd, make_adapter: AdapterFactory, mode: str) -> None:
    url = slapd_tls.url if mode == "starttls" else slapd_tls.ldaps_url
    adapter = await make_adapter(slapd_tls, url=url, start_tls=mode == "starttls", ca_file=str(slapd_tls.ca_file))
    record = await adapter.create_user({"userName": _address(slapd_tls), "password": "Over-Tls-1"})
    assert isinstance(record.state, UserState)
    assert slapd_tls.bind_ok(record.state.dn, "Over-Tls-1")
    slapd_tls.restart()
    await adapter.check()
    assert adapter.statistics()["reconnects"] >= 1


async def test_tls_with_an_untrusted_certificate_fails(slapd_tls: Slapd, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(slapd_tls, url=slapd_tls.ldaps_url, deadline=1.0)
    with pytest.raises(Unavailable) as refused:
        await adapter.check()
    assert "certificate" in refused.value.detail.lower()


class _TruncatedSearch:
    result = {"result": 4, "description": "sizeLimitExceeded"}
    response = [{"type": "searchResEntry", "dn": "uid=a,dc=x", "attributes": {"mail": ["a@x.org"]}}]


def test_a_truncated_listing_is_not_taken_for_a_whole_one() -> None:
    with pytest.raises(Unavailable) as cut:
        entries(_TruncatedSearch())  # type: ignore[arg-type]
    assert "size=unlimited" in cut.value.detail
