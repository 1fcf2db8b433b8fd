"""The mail stack itself: rows written the way PostfixAdmin writes them work in real Postfix and Dovecot.

Every test runs on PostgreSQL and on MariaDB. The rows are written here in plain SQL, as
PostfixAdmin's MailboxHandler/AliasHandler do: a mailbox row plus an alias row pointing at
itself, in one transaction; a distribution list is one alias row with comma-separated targets.
"""

from __future__ import annotations

import secrets
import uuid

import bcrypt
import pytest

from adapters.postfixadmin.schema import SCHEMA_VERSIONS
from tests.realservers.databases import execute
from tests.realservers.mailstack import MailRefused, MailStack

INSERT_MAILBOX = (
    "INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, created, modified, active)"
    " VALUES (%s, %s, %s, %s, 0, %s, %s, NOW(), NOW(), %s)"
)
INSERT_ALIAS = (
    "INSERT INTO alias (address, goto, domain, created, modified, active) VALUES (%s, %s, %s, NOW(), NOW(), %s)"
)


def blf_crypt(password: str) -> str:
    """A bcrypt hash with Dovecot's scheme prefix; cost 6 keeps each login fast."""
    return "{BLF-CRYPT}" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()


def add_mailbox(stack: MailStack, address: str, password_hash: str, *, active: bool = True) -> None:
    local_part, domain = address.split("@")
    stack.transaction(
        (INSERT_MAILBOX, (address, password_hash, "Test User", f"{domain}/{local_part}/", local_part, domain, active)),
        (INSERT_ALIAS, (address, address, domain, active)),
    )


def subject() -> str:
    return f"mailstack {uuid.uuid4().hex}"


def test_mailbox_receives_mail_and_logs_in_with_a_bcrypt_password(mailstack: MailStack) -> None:
    address = mailstack.unique_address()
    add_mailbox(mailstack, address, blf_crypt("Corr3ct-hörse"))

    assert mailstack.smtp_rcpt(address)[0] == 250
    title = subject()
    mailstack.send(address, title)

    assert mailstack.wait_for_subject(address, title, password="Corr3ct-hörse"), mailstack.logs()
    assert not mailstack.imap_login(address, "wrong password")


def test_mailbox_without_a_known_password_receives_mail_but_nobody_logs_in(mailstack: MailStack) -> None:
    # A gateway's create without a password: the hash of a secret nobody keeps.
    address = mailstack.unique_address()
    add_mailbox(mailstack, address, blf_crypt(secrets.token_urlsafe(32)))
    title = subject()
    mailstack.send(address, title)

    assert mailstack.wait_for_subject(address, title), mailstack.logs()
    assert not mailstack.imap_login(address, "")


def test_deactivated_and_unknown_addresses_are_refused(mailstack: MailStack) -> None:
    address = mailstack.unique_address()
    add_mailbox(mailstack, address, blf_crypt("s3cret-pass"))
    assert mailstack.imap_login(address, "s3cret-pass")

    mailstack.transaction(
        ("UPDATE mailbox SET active = FALSE, modified = NOW() WHERE username = %s", (address,)),
        ("UPDATE alias SET active = FALSE, modified = NOW() WHERE address = %s", (address,)),
    )

    code, message = mailstack.smtp_rcpt(address)
    assert 500 <= code < 600, message
    with pytest.raises(MailRefused) as refused:
        mailstack.send(address, subject())
    assert 500 <= refused.value.code < 600
    assert not mailstack.imap_login(address, "s3cret-pass")
    assert not mailstack.user_known(address)
    assert 500 <= mailstack.smtp_rcpt(mailstack.unique_address("nobody"))[0] < 600


def test_distribution_list_reaches_every_member(mailstack: MailStack) -> None:
    members = [mailstack.unique_address("member"), mailstack.unique_address("member", mailstack.domains[1])]
    for member in members:
        add_mailbox(mailstack, member, blf_crypt(secrets.token_urlsafe(16)))
    team = mailstack.unique_address("team")
    # An outside member is delivered too (to the test stack's discard transport).
    mailstack.execute(INSERT_ALIAS, team, ",".join([*members, "partner@partner.invalid"]), mailstack.domains[0], True)

    title = f"Grüße an alle ✓ {subject()}"
    mailstack.send(team, title)

    for member in members:
        assert mailstack.wait_for_subject(member, title), f"{member} missed the list mail\n{mailstack.logs()}"


def test_alias_domain_delivers_to_the_target_domain(mailstack: MailStack) -> None:
    alias_domain = f"alias-{uuid.uuid4().hex[:8]}.example.net"
    target = mailstack.domains[0]
    mailstack.execute(
        "INSERT INTO domain (domain, description, transport, created, modified, active)"
        " VALUES (%s, '', 'virtual', NOW(), NOW(), TRUE)",
        alias_domain,
    )
    mailstack.execute(
        "INSERT INTO alias_domain (alias_domain, target_domain, created, modified, active)"
        " VALUES (%s, %s, NOW(), NOW(), TRUE)",
        alias_domain,
        target,
    )
    address = mailstack.unique_address()
    add_mailbox(mailstack, address, blf_crypt(secrets.token_urlsafe(16)))

    title = subject()
    mailstack.send(address.replace(target, alias_domain), title)

    assert mailstack.wait_for_subject(address, title), mailstack.logs()


def test_each_release_schema_serves_mail(mailstack_release: MailStack) -> None:
    stack = mailstack_release
    assert stack.fetch("SELECT value FROM config WHERE name = 'version'") == [
        {"value": str(SCHEMA_VERSIONS[stack.release])}
    ]
    address = stack.unique_address()
    add_mailbox(stack, address, blf_crypt("pw-" + secrets.token_hex(4)))

    assert stack.smtp_rcpt(address)[0] == 250
    assert stack.user_known(address)


def test_gateway_login_writes_rows_but_cannot_change_the_schema(mailstack: MailStack) -> None:
    address = mailstack.unique_address()
    execute(mailstack.writer, INSERT_ALIAS, address, "someone@partner.invalid", mailstack.domains[0], True)
    execute(mailstack.writer, "DELETE FROM alias WHERE address = %s", address)
    with pytest.raises(Exception, match=r"(?i)denied|must be owner"):
        execute(mailstack.writer, "ALTER TABLE alias ADD COLUMN x integer")
    with pytest.raises(Exception, match=r"(?i)denied"):
        execute(mailstack.reader, "DELETE FROM alias")
