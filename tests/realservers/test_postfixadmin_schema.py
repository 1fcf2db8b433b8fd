"""The schema module creates what PostfixAdmin's own upgrade.php creates, on both databases.

The reference (data/postfixadmin_schemas.json) is the catalog of databases that the real
``public/upgrade.php`` of each release built on empty PostgreSQL and MariaDB databases: every
column's type, nullability, default, character set and collation, every key, index, foreign
key and table comment, and the recorded schema version.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.postfixadmin.schema import RELEASES, Release, drop_statements, schema_statements
from tests.realservers.databases import (
    DIALECTS,
    FLAVOURS,
    Flavour,
    Login,
    execute,
    execute_all,
    fetch,
    server_login,
    unique_name,
)
from tests.realservers.schema_snapshot import describe, reference


def _differences(created: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    found = []
    for part, expected in recorded.items():
        actual = created.get(part)
        if actual == expected:
            continue
        if isinstance(expected, list) and isinstance(actual, list):
            missing = [row for row in expected if row not in actual]
            extra = [row for row in actual if row not in expected]
            found += [f"{part}: missing {row}" for row in missing] + [f"{part}: unexpected {row}" for row in extra]
            if not missing and not extra:
                found.append(f"{part}: same rows in another order")
        else:
            found.append(f"{part}: {actual!r} instead of {expected!r}")
    return found


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_schema_matches_what_upgrade_php_creates(flavour: Flavour, release: Release) -> None:
    server = server_login(flavour)
    database = unique_name("pfa_schema")
    execute(server, f"CREATE DATABASE {database}")
    try:
        login = server.to(database=database)
        execute_all(login, schema_statements(DIALECTS[flavour], release=release), transaction=flavour == "postgresql")
        differences = _differences(describe(login), reference(release, flavour))
        assert not differences, "\n".join(differences)

        execute_all(login, drop_statements(DIALECTS[flavour]), transaction=False)
        assert table_names(login) == []
    finally:
        execute(server, f"DROP DATABASE {database}")


def table_names(login: Login) -> list[str]:
    if login.flavour == "postgresql":
        rows = fetch(login, "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()")
    else:
        rows = fetch(login, "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    return sorted(row["name"] for row in rows)


def test_unknown_release_or_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="release"):
        schema_statements("postgresql", release="2.3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dialect"):
        schema_statements("sqlite")  # type: ignore[arg-type]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_what_a_writer_of_the_real_schema_must_know(flavour: Flavour) -> None:
    """MariaDB's tables refuse rows without name/maildir/password and match addresses ignoring case."""
    server = server_login(flavour)
    database = unique_name("pfa_schema")
    execute(server, f"CREATE DATABASE {database}")
    try:
        login = server.to(database=database)
        execute_all(login, schema_statements(DIALECTS[flavour]), transaction=flavour == "postgresql")
        execute(login, "INSERT INTO domain (domain, description, transport) VALUES ('example.com', '', 'virtual')")
        sparse_insert = "INSERT INTO mailbox (username, local_part, domain) VALUES (%s, %s, 'example.com')"
        if flavour == "mariadb":
            with pytest.raises(Exception, match="doesn't have a default value"):
                execute(login, sparse_insert, "sparse@example.com", "sparse")
        else:
            execute(login, sparse_insert, "sparse@example.com", "sparse")

        execute(
            login,
            "INSERT INTO mailbox (username, password, name, maildir, local_part, domain)"
            " VALUES ('mixed@example.com', '', '', 'example.com/mixed/', 'mixed', 'example.com')",
        )
        found = fetch(login, "SELECT username FROM mailbox WHERE username = %s", "MIXED@Example.com")
        assert found == ([{"username": "mixed@example.com"}] if flavour == "mariadb" else [])
    finally:
        execute(server, f"DROP DATABASE {database}")
