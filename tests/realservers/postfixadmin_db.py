"""A throwaway PostfixAdmin database (PostgreSQL or MariaDB) and a gateway login with the README's grants.

For the backend's tests that need the database but not the mail servers (the contract kit,
the Entra suite, the CLI): faster than the mail stack, and each flavour gets its own
database for the session.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.postfixadmin.command import grant_statements
from adapters.postfixadmin.schema import DEFAULT_RELEASE, Release, schema_statements
from tests.realservers.databases import DIALECTS, Flavour, Login, execute, execute_all, fetch, server_login, unique_name

BASE_DOMAINS = ("example.com", "example.org")


@dataclass
class PostfixAdminDatabase:
    flavour: Flavour
    admin: Login
    """The database's owner: set-up and checks."""
    gateway: Login
    """A login with only the grants the README lists (create_domains included)."""
    domains: tuple[str, ...]

    def dsn(self, *, host: str | None = None, port: int | None = None) -> str:
        login = self.gateway
        if host is not None or port is not None:
            login = Login(login.flavour, host or login.host, port or login.port, login.user, login.password,
                          login.database)
        return login.dsn

    def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return fetch(self.admin, sql, *args)

    def execute(self, sql: str, *args: Any) -> None:
        execute(self.admin, sql, *args)

    def reset(self) -> None:
        """Every mailbox and alias gone, and the domains back to the base ones."""
        names = ", ".join(f"'{d}'" for d in self.domains)
        execute_all(self.admin, ["DELETE FROM alias", "DELETE FROM mailbox",
                                 f"DELETE FROM domain WHERE domain NOT IN ({names})"], transaction=True)

    def add_domain(self, domain: str, *, active: bool = True, backupmx: bool = False) -> None:
        self.execute(
            "INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport, backupmx,"
            " created, modified, active) VALUES (%s, '', 0, 0, 0, 0, 'virtual', %s, NOW(), NOW(), %s)",
            domain, backupmx, active,
        )

    def unique_address(self, prefix: str = "user", domain: str | None = None) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}@{domain or self.domains[0]}"


def domain_rows(domains: Sequence[str]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(
        "INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport, backupmx,"
        " created, modified, active) VALUES (%s, %s, 0, 0, 0, 0, 'virtual', FALSE, NOW(), NOW(), TRUE)",
        (domain, f"{domain} (tests)"),
    ) for domain in domains]


@contextlib.contextmanager
def postfixadmin_database(flavour: Flavour, *, release: Release = DEFAULT_RELEASE,
                          domains: Sequence[str] = BASE_DOMAINS) -> Iterator[PostfixAdminDatabase]:
    server = server_login(flavour)
    name = unique_name("pfa")
    user = f"{name}_gw"
    gateway = server.to(database=name, user=user, password=uuid.uuid4().hex)
    with contextlib.ExitStack() as cleanup:
        if flavour == "postgresql":
            execute(server, f"CREATE ROLE {user} LOGIN PASSWORD '{gateway.password}'")
            cleanup.callback(execute, server, f"DROP ROLE IF EXISTS {user}")
        else:
            execute(server, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{gateway.password}'")
            cleanup.callback(execute, server, f"DROP USER IF EXISTS '{user}'@'%'")
        execute(server, f"CREATE DATABASE {name}")
        force = " WITH (FORCE)" if flavour == "postgresql" else ""
        cleanup.callback(execute, server, f"DROP DATABASE IF EXISTS {name}{force}")
        admin = server.to(database=name)
        dialect = DIALECTS[flavour]
        statements: list[str | tuple[str, tuple[Any, ...]]] = [*schema_statements(dialect, release=release)]
        statements += domain_rows(domains)
        statements += grant_statements(dialect, user, name, create_domains=True)
        execute_all(admin, statements, transaction=flavour == "postgresql")
        yield PostfixAdminDatabase(flavour, admin, gateway, tuple(domains))
