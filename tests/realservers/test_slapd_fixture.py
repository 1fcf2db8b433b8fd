"""The slapd fixtures themselves: the directory behaves as the LDAP adapter will rely on.

Everything goes through OpenLDAP's command-line tools, so these checks hold whichever Python
client the adapter uses.
"""

from __future__ import annotations

import socket

import pytest

from tests.realservers.slapd import (
    BUSY,
    ENTRY_ALREADY_EXISTS,
    INSUFFICIENT_ACCESS,
    INVALID_CREDENTIALS,
    NO_SUCH_OBJECT,
    OBJECT_CLASS_VIOLATION,
    PERMANENTLY_LOCKED,
    REFINT_PLACEHOLDER,
    SERVER_DOWN,
    UNAVAILABLE,
    LdapToolError,
    Slapd,
)

# An anonymous simple bind (messageID 1), BER-encoded: enough to see whether the server answers at all.
ANONYMOUS_BIND = bytes.fromhex("300c020101600702010304008000")


def _as_service(server: Slapd) -> dict[str, str]:
    return {"bind_dn": server.service_dn, "password": server.service_password}


def _lock(server: Slapd, dn: str, value: str | None) -> None:
    change = "delete: pwdAccountLockedTime\n"
    if value is not None:
        change = f"replace: pwdAccountLockedTime\npwdAccountLockedTime: {value}\n"
    server.modify(f"dn: {dn}\nchangetype: modify\n{change}", **_as_service(server))


def _new_user(server: Slapd, password: str | None = None) -> tuple[str, str]:
    uid = server.fresh_name("user")
    dn = f"uid={uid},{server.users_dn}"
    attributes = {"objectClass": "inetOrgPerson", "uid": uid, "cn": uid, "sn": "Test", "mail": f"{uid}@example.org"}
    server.add(dn, attributes, **_as_service(server))
    if password is not None:
        server.set_password(dn, password, **_as_service(server))
    return dn, uid


def test_admin_and_service_account_bind_and_the_base_entries_exist(slapd: Slapd) -> None:
    assert slapd.bind_ok(slapd.admin_dn, slapd.admin_password)
    assert slapd.bind_ok(slapd.service_dn, slapd.service_password)
    assert not slapd.bind_ok(slapd.service_dn, "wrong")
    found = {entry.dn for entry in slapd.search(scope="one", attributes=["1.1"])}
    assert {slapd.users_dn, slapd.groups_dn} <= found
    assert slapd.url.startswith("ldap://127.0.0.1:")


def test_password_modify_stores_a_hash_and_the_user_can_bind(slapd: Slapd) -> None:
    dn, _ = _new_user(slapd)
    assert not slapd.bind_ok(dn, "Correct-Horse-1")  # no userPassword yet: invalidCredentials

    slapd.set_password(dn, "Correct-Horse-1", **_as_service(slapd))

    stored = slapd.read(dn, ["userPassword"])
    assert stored is not None
    assert stored.get("userPassword")[0].startswith("{SSHA}")
    assert slapd.bind_ok(dn, "Correct-Horse-1")
    assert not slapd.bind_ok(dn, "Correct-Horse-2")


def test_permanent_lock_refuses_the_bind_until_removed(slapd: Slapd) -> None:
    dn, _ = _new_user(slapd, "Locked-Out-1")

    _lock(slapd, dn, PERMANENTLY_LOCKED)
    assert slapd.bind_result(dn, "Locked-Out-1")[0] == INVALID_CREDENTIALS
    # The policy control does not reveal the lock unless the server is configured to (ppolicy_use_lockout).
    code, output = slapd.bind_result(dn, "Locked-Out-1", ppolicy=True)
    assert code == INVALID_CREDENTIALS
    assert "locked" not in output.lower()

    _lock(slapd, dn, None)
    assert slapd.bind_ok(dn, "Locked-Out-1")


def test_a_password_change_silently_removes_the_lock(slapd: Slapd) -> None:
    dn, _ = _new_user(slapd, "Before-Change-1")
    _lock(slapd, dn, PERMANENTLY_LOCKED)

    slapd.set_password(dn, "After-Change-1", **_as_service(slapd))

    entry = slapd.read(dn, ["pwdAccountLockedTime"])
    assert entry is not None and entry.get("pwdAccountLockedTime") == []
    assert slapd.bind_ok(dn, "After-Change-1")


def test_group_of_names_needs_a_member(slapd: Slapd) -> None:
    user_dn, _ = _new_user(slapd)
    name = slapd.fresh_name("list")
    group_dn = f"cn={name},{slapd.groups_dn}"

    with pytest.raises(LdapToolError) as empty:
        slapd.add(group_dn, {"objectClass": "groupOfNames", "cn": name}, **_as_service(slapd))
    assert empty.value.result_code == OBJECT_CLASS_VIOLATION

    slapd.add(group_dn, {"objectClass": "groupOfNames", "cn": name, "member": user_dn}, **_as_service(slapd))
    members = slapd.search(slapd.groups_dn, f"(member={user_dn})", ["member"])
    assert [entry.dn for entry in members] == [group_dn]

    with pytest.raises(LdapToolError) as again:
        slapd.add(group_dn, {"objectClass": "groupOfNames", "cn": name, "member": user_dn}, **_as_service(slapd))
    assert again.value.result_code == ENTRY_ALREADY_EXISTS


def test_mail_equality_ignores_case(slapd: Slapd) -> None:
    dn, uid = _new_user(slapd)
    found = slapd.search(slapd.users_dn, f"(mail={uid.upper()}@EXAMPLE.ORG)", ["mail"])
    assert [entry.dn for entry in found] == [dn]
    assert found[0].first("mail") == f"{uid}@example.org"  # stored as written


def test_service_account_writes_only_below_its_two_units(slapd: Slapd) -> None:
    dn, _ = _new_user(slapd, "Secret-Pass-1")
    outside = f"cn={slapd.fresh_name('role')},ou=services,{slapd.base_dn}"

    with pytest.raises(LdapToolError) as refused:
        slapd.add(outside, {"objectClass": "organizationalRole", "cn": outside[3:].split(",")[0]}, **_as_service(slapd))
    assert refused.value.result_code == INSUFFICIENT_ACCESS
    with pytest.raises(LdapToolError) as unit:
        slapd.delete(slapd.groups_dn, **_as_service(slapd))
    assert unit.value.result_code == INSUFFICIENT_ACCESS

    seen = slapd.search(dn, attributes=["userPassword", "mail"], scope="base", **_as_service(slapd))
    assert seen[0].get("userPassword") == []
    assert seen[0].get("mail") != []
    with pytest.raises(LdapToolError) as missing:
        slapd.delete(f"uid={slapd.fresh_name('ghost')},{slapd.users_dn}", **_as_service(slapd))
    assert missing.value.result_code == NO_SUCH_OBJECT


@pytest.mark.parametrize("variant", ["slapd", "slapd_refint"])
def test_deleting_a_member_with_and_without_refint(variant: str, request: pytest.FixtureRequest) -> None:
    server: Slapd = request.getfixturevalue(variant)
    first, _ = _new_user(server)
    second, _ = _new_user(server)
    name = server.fresh_name("list")
    group_dn = f"cn={name},{server.groups_dn}"
    server.add(group_dn, {"objectClass": "groupOfNames", "cn": name, "member": [first, second]}, **_as_service(server))

    server.delete(first, **_as_service(server))
    after_first = server.read(group_dn, ["member"])
    server.delete(second, **_as_service(server))
    after_both = server.read(group_dn, ["member"])

    assert after_first is not None and after_both is not None
    if server.options.refint:
        assert after_first.get("member") == [second]
        assert after_both.get("member") == [REFINT_PLACEHOLDER]
    else:
        assert sorted(after_both.get("member")) == sorted([first, second])  # dangling


def test_refint_variant_follows_renames_and_maintains_member_of(slapd_refint: Slapd) -> None:
    server = slapd_refint
    dn, uid = _new_user(server)
    name = server.fresh_name("list")
    group_dn = f"cn={name},{server.groups_dn}"
    server.add(group_dn, {"objectClass": "groupOfNames", "cn": name, "member": dn}, **_as_service(server))
    before = server.read(dn)
    assert before is not None and before.get("memberOf") == [group_dn]

    server.modify(f"dn: {dn}\nchangetype: modrdn\nnewrdn: uid={uid}-renamed\ndeleteoldrdn: 1\n", **_as_service(server))

    renamed_dn = f"uid={uid}-renamed,{server.users_dn}"
    group = server.read(group_dn, ["member"])
    renamed = server.read(renamed_dn)
    assert group is not None and group.get("member") == [renamed_dn]
    assert renamed is not None and renamed.first("entryUUID") == before.first("entryUUID")


def test_restart_keeps_data_and_port(slapd: Slapd) -> None:
    dn, _ = _new_user(slapd, "Survives-Restart-1")
    port, pid = slapd.port, slapd.pid

    slapd.restart()

    assert slapd.port == port and slapd.pid not in (None, pid)
    assert slapd.bind_ok(dn, "Survives-Restart-1")


def test_stopped_refuses_connections_then_comes_back(slapd: Slapd) -> None:
    with slapd.stopped():
        assert slapd.bind_result(slapd.admin_dn, slapd.admin_password)[0] == SERVER_DOWN
    assert slapd.bind_ok(slapd.admin_dn, slapd.admin_password)


def test_paused_server_accepts_but_does_not_answer(slapd: Slapd) -> None:
    with socket.create_connection(("127.0.0.1", slapd.port), timeout=5) as connection:
        with slapd.paused():
            connection.sendall(ANONYMOUS_BIND)
            connection.settimeout(0.5)
            with pytest.raises(TimeoutError):
                connection.recv(64)
        connection.settimeout(5)
        assert connection.recv(64)[:1] == b"\x30"  # the queued bind is answered once resumed


def test_canned_faults_answer_busy_and_unavailable(slapd: Slapd) -> None:
    for name, code in (("busy", BUSY), ("unavailable", UNAVAILABLE)):
        with pytest.raises(LdapToolError) as fault:
            slapd.search(slapd.fault_dn(name), scope="base")
        assert fault.value.result_code == code
    # The virtual subtree is invisible to ordinary searches.
    assert all("ou=faults" not in entry.dn for entry in slapd.search(attributes=["1.1"]))


def test_tls_variant_offers_starttls_and_ldaps(slapd_tls: Slapd) -> None:
    assert slapd_tls.ca_file is not None and slapd_tls.ca_file.exists()
    admin = (slapd_tls.admin_dn, slapd_tls.admin_password)
    assert slapd_tls.bind_result(*admin, starttls=True)[0] == 0
    assert slapd_tls.bind_result(*admin, url=slapd_tls.ldaps_url)[0] == 0
