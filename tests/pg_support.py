"""PostgreSQL for tests: where it is, whether a test may skip without it, and throw-away schemas.

A developer laptop without the server skips these tests; CI must not, or a broken
PostgreSQL set-up would turn the whole multi-replica suite green by skipping it. So
with ``CI=true`` or ``REQUIRE_POSTGRES=1`` an unreachable server fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest

POSTGRES_DSN = os.environ.get("SCIM_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CONNECT_TIMEOUT = 3.0

_reachable: dict[str, str | None] = {}
"""DSN → None when reachable, else why not (asked once per test session)."""


def postgres_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("REQUIRE_POSTGRES", "") == "1"


async def _probe(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def _unavailable(dsn: str, reason: str) -> None:
    message = f"PostgreSQL at {dsn} is unreachable ({reason})"
    if postgres_required():
        pytest.fail(f"{message}; CI=true or REQUIRE_POSTGRES=1 demands it", pytrace=False)
    pytest.skip(f"{message}; set SCIM_GATEWAY_TEST_POSTGRES to test against PostgreSQL")


async def require_postgres(dsn: str = POSTGRES_DSN) -> str:
    """The DSN, or skip (fail when PostgreSQL is required) if the server cannot be reached."""
    if dsn not in _reachable:
        _reachable[dsn] = await _probe(dsn)
    reason = _reachable[dsn]
    if reason is not None:
        _unavailable(dsn, reason)
    return dsn


def require_postgres_sync(dsn: str = POSTGRES_DSN) -> str:
    """``require_postgres`` for synchronous (e.g. module-scoped) fixtures, outside any event loop."""
    if dsn not in _reachable:
        _reachable[dsn] = asyncio.run(_probe(dsn))
    reason = _reachable[dsn]
    if reason is not None:
        _unavailable(dsn, reason)
    return dsn


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def fresh_schema(dsn: str = POSTGRES_DSN) -> AsyncIterator[str]:
    """The name of a schema that does not exist yet, dropped (with anything in it) afterwards."""
    dsn = await require_postgres(dsn)
    name = unique_name("scim_test")
    try:
        yield name
    finally:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()


def dsn_with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(prefix: str, dsn: str = POSTGRES_DSN) -> Iterator[str]:
    """A DSN for a new, empty database, dropped afterwards (for gateways run as subprocesses).

    Synchronous so that module-scoped fixtures can use it without an event loop of their own.
    """
    dsn = require_postgres_sync(dsn)
    name = unique_name(prefix)
    asyncio.run(_admin(dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield dsn_with_database(dsn, name)
    finally:
        # FORCE: a gateway killed mid-request may leave a backend connection behind for a moment.
        asyncio.run(_admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
