"""Pooled connections to the PostfixAdmin database, and when a failed call may be tried again.

PostgreSQL goes through asyncpg, MariaDB/MySQL through asyncmy (``mysql://`` DSNs). SQL is
written once with ``%s`` parameters; PostgreSQL gets ``$n``.

Three ways to run work, by what a lost answer means:

* ``read``: no transaction; retried on any transient failure.
* ``atomic``: one write that travels in one round trip (PostgreSQL: one statement, e.g.
  data-modifying CTEs; MariaDB: ``START TRANSACTION; …; COMMIT`` as one multi-statement
  query). Once it is sent, a lost answer means it may have been applied: retried only when
  the caller says the write is safe to repeat, else ``Unavailable(may_apply=True)`` at once.
* ``transaction``: an interactive transaction (row locks, read-modify-write). Any failure
  before COMMIT is sent rolls it back on the server (a dropped connection included), so it is
  retried; a lost answer to the COMMIT itself is treated as a lost atomic write.

Transient means: the connection could not be made or was lost, an attempt ran out of time,
or the server rolled the work back on its own (deadlock, serialization failure, lock wait).
Everything else is an answer and is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import asyncmy
import asyncpg  # type: ignore[import-untyped]
from asyncmy.constants import CLIENT
from asyncmy.cursors import DictCursor

from adapters.base import BackendError, Rejected, Unavailable
from adapters.postfixadmin.schema import Dialect
from adapters.retry import RetryPolicy
from adapters.telemetry import note_retry, spend

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, Any]
Statement = tuple[str, Sequence[Any]]

_PG_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
_MY_TRANSPORT_CODES = frozenset({2003, 2006, 2013, 2055, 1040, 1053, 1927, 4031})
_MY_ROLLED_BACK_CODES = frozenset({1205, 1213})
_MY_DENIED_CODES = frozenset({1044, 1045, 1142, 1143, 1227})


class UniqueViolation(Exception):
    """A row with that key exists already (the database's own answer)."""


class SchemaProblem(Unavailable):
    """A table or column the gateway needs is missing: the database is not (this) PostfixAdmin schema."""


DEFAULT_POLICY = RetryPolicy(backoff_initial=0.1, backoff_max=2.0)


@dataclass
class Stats:
    calls: int = 0
    round_trips: int = 0
    retries: int = 0
    timeouts: int = 0
    ambiguous: int = 0
    failures: int = 0
    connections_opened: int = 0
    database_us: int = 0
    """Time spent waiting for the database's answers (round trips), in microseconds."""

    def waited(self, started: float) -> None:
        self.round_trips += 1
        self.database_us += int((time.perf_counter() - started) * 1e6)


class _Transient(Exception):
    def __init__(self, detail: str, *, after_send: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.after_send = after_send


@dataclass
class Attempt:
    """What the work of one attempt may want to know."""

    after_ambiguous: bool = False
    """An earlier attempt's write was sent and its answer lost: it may be in place already."""
    sent: bool = field(default=False, repr=False)


class Session(Protocol):
    """One connection, inside one unit of work."""

    attempt: Attempt

    async def control(self, sql: str) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; the number of rows it changed."""


@dataclass(frozen=True)
class Target:
    """Where the database is, from a ``postgresql://`` or ``mysql://`` DSN."""

    dialect: Dialect
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_dsn(cls, dsn: str) -> Target:
        parts = urlsplit(dsn)
        scheme = parts.scheme.lower().partition("+")[0]
        if scheme in ("postgresql", "postgres"):
            dialect: Dialect = "postgresql"
        elif scheme in ("mysql", "mariadb"):
            dialect = "mysql"
        else:
            raise ValueError("the DSN must start with postgresql:// or mysql:// (MariaDB and MySQL)")
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ValueError("the DSN must name the PostfixAdmin database (…/DBNAME)")
        return cls(dialect=dialect, host=parts.hostname or "127.0.0.1",
                   port=parts.port or (5432 if dialect == "postgresql" else 3306),
                   user=unquote(parts.username or ""), password=unquote(parts.password or ""), database=database)

    @property
    def location(self) -> str:
        scheme = "postgresql" if self.dialect == "postgresql" else "mysql"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.database}"


def _pg_sql(sql: str, cache: dict[str, str] = {}) -> str:  # noqa: B006 - a deliberate memo
    converted = cache.get(sql)
    if converted is None:
        counter = iter(range(1, 10_000))
        converted = cache[sql] = re.sub(r"%s", lambda _: f"${next(counter)}", sql)
    return converted


# --- one connection per driver --------------------------------------------------------------


class _PgSession:
    def __init__(self, conn: Any, attempt: Attempt, stats: Stats) -> None:
        self.conn = conn
        self.attempt = attempt
        self.stats = stats

    async def control(self, sql: str) -> None:
        """BEGIN, COMMIT, ROLLBACK: part of the work's statements, not counted against a request's budget."""
        started = time.perf_counter()
        try:
            await self.conn.execute(sql)
        finally:
            self.stats.waited(started)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        spend()
        started = time.perf_counter()
        try:
            rows = await self.conn.fetch(_pg_sql(sql), *args)
        finally:
            self.stats.waited(started)
        return [dict(r) for r in rows]

    async def execute(self, sql: str, *args: Any) -> int:
        spend()
        started = time.perf_counter()
        try:
            status = await self.conn.execute(_pg_sql(sql), *args)
        finally:
            self.stats.waited(started)
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


class _MySession:
    def __init__(self, conn: Any, attempt: Attempt, stats: Stats) -> None:
        self.conn = conn
        self.attempt = attempt
        self.stats = stats

    async def control(self, sql: str) -> None:
        started = time.perf_counter()
        try:
            async with self.conn.cursor() as cursor:
                await cursor.execute(sql)
        finally:
            self.stats.waited(started)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        spend()
        started = time.perf_counter()
        try:
            async with self.conn.cursor(DictCursor) as cursor:
                await cursor.execute(sql, args or None)
                return list(await cursor.fetchall() or [])
        finally:
            self.stats.waited(started)

    async def execute(self, sql: str, *args: Any) -> int:
        spend()
        started = time.perf_counter()
        try:
            async with self.conn.cursor() as cursor:
                await cursor.execute(sql, args or None)
                return int(cursor.rowcount or 0)
        finally:
            self.stats.waited(started)

    async def script(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """The statements in one transaction, sent as one multi-statement query."""
        sql = ";\n".join(["START TRANSACTION", *(s for s, _ in statements), "COMMIT"])
        args = [a for _, stmt_args in statements for a in stmt_args]
        results: list[list[Row]] = []
        spend()
        started = time.perf_counter()
        try:
            async with self.conn.cursor(DictCursor) as cursor:
                self.attempt.sent = True
                await cursor.execute(sql, args or None)
                while True:
                    results.append(list(await cursor.fetchall() or []))
                    if not await cursor.nextset():
                        break
        finally:
            self.stats.waited(started)
        return results[1:-1]


# --- the pool ---------------------------------------------------------------------------------


class Database:
    """A small connection pool over one driver, and the three ways of running work on it."""

    def __init__(self, target: Target, *, pool_size: int = 10, policy: RetryPolicy | None = None,
                 idle_timeout: float = 300.0, rng: random.Random | None = None) -> None:
        self.target = target
        self.dialect = target.dialect
        self.policy = policy or DEFAULT_POLICY
        self.stats = Stats()
        self._idle: list[tuple[float, Any]] = []
        self._slots = asyncio.Semaphore(pool_size)
        self._idle_timeout = idle_timeout
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"Database({self.target.location!r})"

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, conn in idle:
            await self._close(conn)

    # -- connections --

    async def _connect(self, wait_s: float) -> Any:
        t = self.target
        self.stats.connections_opened += 1
        if self.dialect == "postgresql":
            return await asyncpg.connect(host=t.host, port=t.port, user=t.user, password=t.password or None,
                                         database=t.database, timeout=wait_s, statement_cache_size=256,
                                         server_settings={"application_name": "scim-gateway"})
        return await asyncio.wait_for(asyncmy.connect(
            host=t.host, port=t.port, user=t.user, password=t.password, database=t.database, autocommit=True,
            charset="utf8mb4", client_flag=CLIENT.MULTI_STATEMENTS, connect_timeout=max(1, round(wait_s)),
        ), wait_s)

    async def _close(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            if self.dialect == "postgresql":
                conn.terminate()
            else:
                conn.close()

    async def _acquire(self, wait_s: float) -> Any:
        now = time.monotonic()
        while self._idle:
            since, conn = self._idle.pop()
            if now - since < self._idle_timeout and not _is_closed(conn, self.dialect):
                return conn
            await self._close(conn)
        return await self._connect(wait_s)

    def _release(self, conn: Any) -> None:
        self._idle.append((time.monotonic(), conn))

    def _session(self, conn: Any, attempt: Attempt) -> Session:
        if self.dialect == "postgresql":
            return _PgSession(conn, attempt, self.stats)
        return _MySession(conn, attempt, self.stats)

    # -- running work --

    async def read(self, work: Callable[[Session], Awaitable[T]]) -> T:
        return await self._run(work, transaction=False, retry_safe=True)

    async def transaction(self, work: Callable[[Session], Awaitable[T]], *, retry_safe: bool = False) -> T:
        """``work`` in one transaction; ``retry_safe`` when running it twice leaves the same result."""
        return await self._run(work, transaction=True, retry_safe=retry_safe)

    async def atomic(self, postgresql: Statement | None, mysql: Sequence[Statement] | None, *,
                     retry_safe: bool = False) -> list[list[Row]]:
        """One write in one round trip: PostgreSQL's single statement, or MariaDB's statements in one
        transaction. The rows of each statement."""
        async def work(session: Session) -> list[list[Row]]:
            if isinstance(session, _MySession):
                assert mysql is not None
                return await session.script(mysql)
            assert postgresql is not None
            session.attempt.sent = True
            return [await session.fetch(postgresql[0], *postgresql[1])]

        return await self._run(work, transaction=False, retry_safe=retry_safe)

    async def _run(self, work: Callable[[Session], Awaitable[T]], *, transaction: bool, retry_safe: bool) -> T:
        policy = self.policy
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.deadline
        self.stats.calls += 1
        maybe_applied = False
        number = 0
        while True:
            number += 1
            attempt = Attempt(after_ambiguous=maybe_applied)
            try:
                return await self._attempt(work, attempt, transaction, deadline)
            except _Transient as failure:
                if failure.after_send:
                    if not retry_safe:
                        self.stats.ambiguous += 1
                        self.stats.failures += 1
                        raise Unavailable(f"{failure.detail}; the write may have been applied",
                                          retry_after=1.0, may_apply=True) from None
                    maybe_applied = True
                wait = min(policy.backoff_max, policy.backoff_initial * 2 ** (number - 1)) * self._rng.random()
                if number >= policy.max_attempts or loop.time() + wait + 0.05 > deadline:
                    self.stats.failures += 1
                    raise Unavailable(f"the PostfixAdmin database is unavailable: {failure.detail}",
                                      retry_after=1.0, may_apply=maybe_applied) from None
                self.stats.retries += 1
                note_retry()
                log.info("postfixadmin database: %s; attempt %d in %.2fs", failure.detail, number + 1, wait)
                await asyncio.sleep(wait)
            except Exception:
                self.stats.failures += 1
                raise

    async def _attempt(self, work: Callable[[Session], Awaitable[T]], attempt: Attempt, transaction: bool,
                       deadline: float) -> T:
        loop = asyncio.get_running_loop()
        budget = max(0.05, min(self.policy.attempt_timeout, deadline - loop.time()))
        async with self._slots:
            try:
                conn = await self._acquire(min(self.policy.connect_timeout, budget))
            except Exception as exc:
                raise self._classify(exc, attempt) from exc
            healthy = False
            try:
                async with asyncio.timeout(budget):
                    result = await self._in_connection(conn, work, attempt, transaction)
                healthy = True
                return result
            except TimeoutError:
                self.stats.timeouts += 1
                raise _Transient(f"no answer within {budget:.1f}s", after_send=attempt.sent) from None
            except Exception as exc:
                healthy = _answered(exc) and not _is_closed(conn, self.dialect)
                raise self._classify(exc, attempt) from exc
            finally:
                if healthy:
                    self._release(conn)
                else:
                    await self._close(conn)

    async def _in_connection(self, conn: Any, work: Callable[[Session], Awaitable[T]], attempt: Attempt,
                             transaction: bool) -> T:
        session = self._session(conn, attempt)
        if not transaction:
            try:
                return await work(session)
            except Exception as exc:
                if self.dialect == "mysql" and attempt.sent and _answered(exc):
                    # A failed statement of a multi-statement write leaves its transaction open.
                    await session.control("ROLLBACK")
                raise
        await session.control("BEGIN" if self.dialect == "postgresql" else "START TRANSACTION")
        try:
            result = await work(session)
        except Exception as exc:
            # Only a connection that answered can roll back; any other is closed, which rolls back too.
            if _answered(exc):
                await session.control("ROLLBACK")
            raise
        attempt.sent = True
        await session.control("COMMIT")
        return result

    def _classify(self, exc: BaseException, attempt: Attempt) -> Exception:
        """The error one failed attempt stands for: ``_Transient`` to try again, or what the adapter sees."""
        if isinstance(exc, UniqueViolation | BackendError):
            return exc
        if self.dialect == "postgresql":
            return _classify_pg(exc, attempt)
        return _classify_my(exc, attempt)


def _is_closed(conn: Any, dialect: Dialect) -> bool:
    if dialect == "postgresql":
        return bool(conn.is_closed())
    return not conn.connected


def _answered(exc: BaseException) -> bool:
    """Whether ``exc`` came with the connection in order: the server's answer, or the adapter's own verdict."""
    return isinstance(exc, UniqueViolation | BackendError) or _server_answered(exc)


def _server_answered(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        return not isinstance(exc, asyncpg.exceptions.PostgresConnectionError | asyncpg.exceptions.AdminShutdownError)
    if isinstance(exc, asyncmy.errors.Error) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0] not in _MY_TRANSPORT_CODES and exc.args[0] < 2000
    return False


def _classify_pg(exc: BaseException, attempt: Attempt) -> Exception:
    state = str(getattr(exc, "sqlstate", "") or "")
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if state == "23505":
        return UniqueViolation(message)
    if state in _PG_TRANSIENT_STATES or state.startswith("08"):
        return _Transient(f"{type(exc).__name__}: {message}", after_send=attempt.sent and not state.startswith("40"))
    if state in ("42P01", "42703"):
        return SchemaProblem(f"the database lacks PostfixAdmin's tables or columns ({message}): point the DSN at a "
                             "PostfixAdmin database, or create the schema with scim-gateway postfixadmin-schema")
    if state == "42501" or state.startswith("28"):
        return Unavailable(f"the database refused the gateway's login or a privilege ({message}): see the README's "
                           "GRANT statements")
    if state.startswith(("22", "23")):
        return Rejected(f"the PostfixAdmin database refused the value: {message}")
    if isinstance(exc, OSError | ConnectionError | asyncpg.exceptions.InterfaceError | asyncio.IncompleteReadError):
        return _Transient(f"{type(exc).__name__}: {message}", after_send=attempt.sent)
    if isinstance(exc, TimeoutError):
        return _Transient("no answer in time", after_send=attempt.sent)
    if isinstance(exc, asyncpg.PostgresError):
        return Unavailable(f"the PostfixAdmin database answered an error: {message}")
    return _Transient(f"{type(exc).__name__}: {message}", after_send=attempt.sent)


def _classify_my(exc: BaseException, attempt: Attempt) -> Exception:
    code = exc.args[0] if isinstance(exc, asyncmy.errors.Error) and exc.args and isinstance(exc.args[0], int) else 0
    message = str(exc.args[1]) if isinstance(exc, asyncmy.errors.Error) and len(exc.args) > 1 else str(exc)
    if code == 1062:
        return UniqueViolation(message)
    if code in _MY_ROLLED_BACK_CODES:
        return _Transient(f"MariaDB error {code}: {message}", after_send=False)
    if code in _MY_TRANSPORT_CODES:
        return _Transient(f"MariaDB error {code}: {message}", after_send=attempt.sent)
    if code in (1146, 1054):
        return SchemaProblem(f"the database lacks PostfixAdmin's tables or columns ({message}): point the DSN at a "
                             "PostfixAdmin database, or create the schema with scim-gateway postfixadmin-schema")
    if code in _MY_DENIED_CODES:
        return Unavailable(f"the database refused the gateway's login or a privilege ({message}): see the README's "
                           "GRANT statements")
    if isinstance(exc, asyncmy.errors.DataError | asyncmy.errors.IntegrityError) or code in (1366, 1406, 1048):
        return Rejected(f"the PostfixAdmin database refused the value: {message}")
    if isinstance(exc, asyncmy.errors.Error) and code and code < 2000:
        return Unavailable(f"the PostfixAdmin database answered an error: {message}")
    if isinstance(exc, TimeoutError):
        return _Transient("no answer in time", after_send=attempt.sent)
    return _Transient(f"{type(exc).__name__}: {exc}", after_send=attempt.sent)
