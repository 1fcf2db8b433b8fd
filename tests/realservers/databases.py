"""PostgreSQL and MariaDB for the real-server tests: where they are, throwaway databases, plain SQL.

The calls are synchronous so that both sync fixtures and async tests can use them: each runs
its driver (asyncpg, asyncmy) on a private event loop in a worker thread. Parameters are
written ``%s`` in either flavour (``%%`` for a literal percent sign when parameters are given).
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit

import asyncmy
import asyncpg  # type: ignore[import-untyped]
from asyncmy.cursors import DictCursor

from adapters.postfixadmin.schema import Dialect
from tests.realservers.support import unavailable

Flavour = Literal["postgresql", "mariadb"]
FLAVOURS: tuple[Flavour, ...] = ("postgresql", "mariadb")
DIALECTS: dict[Flavour, Dialect] = {"postgresql": "postgresql", "mariadb": "mysql"}

SERVER_URLS: dict[Flavour, str] = {
    "postgresql": os.environ.get("SCIM_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("SCIM_GATEWAY_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test"),
}
CONNECT_TIMEOUT_S = 5.0

T = TypeVar("T")
_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="realservers-sql")


@dataclass(frozen=True)
class Login:
    """Where and as whom to connect: one database on one server."""

    flavour: Flavour
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_url(cls, flavour: Flavour, url: str) -> Login:
        parts = urlsplit(url)
        default_port = 5432 if flavour == "postgresql" else 3306
        return cls(
            flavour=flavour,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or default_port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/"),
        )

    @property
    def dsn(self) -> str:
        scheme = "postgresql" if self.flavour == "postgresql" else "mysql"
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return f"{scheme}://{quote(self.user, safe='')}{secret}@{self.host}:{self.port}/{self.database}"

    def to(self, *, database: str | None = None, user: str | None = None, password: str | None = None) -> Login:
        return replace(
            self,
            database=self.database if database is None else database,
            user=self.user if user is None else user,
            password=self.password if password is None else password,
        )


def server_login(flavour: Flavour) -> Login:
    """The administrator's login to the server's default database; skip/fail if it is unreachable."""
    login = Login.from_url(flavour, SERVER_URLS[flavour])
    try:
        fetch(login, "SELECT 1 AS one")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncmy.errors.Error) as exc:
        env = "SCIM_GATEWAY_TEST_POSTGRES" if flavour == "postgresql" else "SCIM_GATEWAY_TEST_MARIADB"
        unavailable(f"{flavour} at {login.host}:{login.port}", f"{type(exc).__name__}: {exc} (set {env})")
    return login


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _blocking(work: Callable[[], Awaitable[T]]) -> T:
    async def run() -> T:
        return await work()

    return _worker.submit(asyncio.run, run()).result()


def _pg_placeholders(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return re.sub(r"%(s|%)", lambda m: "%" if m.group(1) == "%" else f"${next(counter)}", sql)


async def _pg_connect(login: Login) -> Any:
    # UTC sessions: a timestamp default such as '2000-01-01' is read in the session's zone, and
    # the schema tests compare defaults with a reference recorded in UTC.
    return await asyncpg.connect(
        host=login.host, port=login.port, user=login.user, password=login.password or None,
        database=login.database, timeout=CONNECT_TIMEOUT_S, server_settings={"timezone": "UTC"},
    )


async def _my_connect(login: Login) -> Any:
    return await asyncmy.connect(
        host=login.host, port=login.port, user=login.user, password=login.password,
        database=login.database or None, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
    )


async def _run(login: Login, statements: list[tuple[str, tuple[Any, ...]]], transaction: bool) -> list[dict[str, Any]]:
    """Run the statements on one connection; the rows of the last one."""
    rows: list[dict[str, Any]] = []
    if login.flavour == "postgresql":
        conn = await _pg_connect(login)
        try:
            tx = conn.transaction() if transaction else None
            if tx is not None:
                await tx.start()
            try:
                for sql, args in statements:
                    if args:
                        rows = [dict(r) for r in await conn.fetch(_pg_placeholders(sql), *args)]
                    else:
                        rows = [dict(r) for r in await conn.fetch(sql)]
            except BaseException:
                if tx is not None:
                    await tx.rollback()
                raise
            if tx is not None:
                await tx.commit()
        finally:
            await conn.close()
        return rows
    conn = await _my_connect(login)
    try:
        if transaction:
            await conn.begin()
        try:
            async with conn.cursor(DictCursor) as cursor:
                for sql, args in statements:
                    await cursor.execute(sql, args or None)
                    rows = list(await cursor.fetchall() or [])
        except BaseException:
            if transaction:
                await conn.rollback()
            raise
        if transaction:
            await conn.commit()
    finally:
        await conn.ensure_closed()
    return rows


def fetch(login: Login, sql: str, *args: Any) -> list[dict[str, Any]]:
    """The rows of one statement, as dicts."""
    return _blocking(lambda: _run(login, [(sql, args)], transaction=False))


def execute(login: Login, sql: str, *args: Any) -> None:
    _blocking(lambda: _run(login, [(sql, args)], transaction=False))


def execute_all(login: Login, statements: Iterable[str | tuple[str, tuple[Any, ...]]], *, transaction: bool) -> None:
    """Run the statements in order on one connection (in one transaction if asked)."""
    batch = [(item, ()) if isinstance(item, str) else item for item in statements]
    _blocking(lambda: _run(login, batch, transaction=transaction))

