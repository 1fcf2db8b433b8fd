"""Fixtures for the real-server tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.postfixadmin.schema import DEFAULT_RELEASE, RELEASES
from tests.realservers.databases import FLAVOURS
from tests.realservers.mailstack import MailStack, running_mailstack

# -- Postfix + Dovecot on a PostfixAdmin database (tests/realservers/mailstack.py) -------------


@pytest.fixture(scope="session")
def mailstack_pg() -> Iterator[MailStack]:
    """Postfix and Dovecot reading a PostfixAdmin 4.0.5 database on PostgreSQL, for the whole session."""
    with running_mailstack("postgresql") as stack:
        yield stack


@pytest.fixture(scope="session")
def mailstack_mariadb() -> Iterator[MailStack]:
    """Postfix and Dovecot reading a PostfixAdmin 4.0.5 database on MariaDB, for the whole session."""
    with running_mailstack("mariadb") as stack:
        yield stack


@pytest.fixture(scope="session", params=FLAVOURS)
def mailstack(request: pytest.FixtureRequest) -> MailStack:
    """The mail stack on each database flavour in turn: a test that takes it runs once per flavour.

    The stack is shared by the session: use fresh addresses (``unique_address``) in each test.
    """
    name = "mailstack_pg" if request.param == "postgresql" else "mailstack_mariadb"
    stack: MailStack = request.getfixturevalue(name)
    return stack


@pytest.fixture(params=RELEASES)
def mailstack_release(mailstack: MailStack, request: pytest.FixtureRequest) -> Iterator[MailStack]:
    """The stack with an empty schema of each PostfixAdmin release in turn (4.0.5 again afterwards)."""
    mailstack.reset(request.param)
    try:
        yield mailstack
    finally:
        mailstack.reset(DEFAULT_RELEASE)
