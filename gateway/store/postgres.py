"""PostgreSQL state store: one state shared by every replica of the gateway.

Replicas start, migrate and lock against the same database, so everything that the
single-process stores get from the event loop for free is done by the server here:

* Migrations run at ``open()`` under a session-level advisory lock, one transaction
  each, recorded in ``schema_version``. Replicas starting together queue on the lock,
  and the later ones find nothing left to do.
* ``lock()`` is an in-process ``KeyedLocks`` around a session-level ``pg_advisory_lock``
  held on a connection of its own for as long as the caller holds the lock. The
  in-process lock keeps one process to one server lock (and one connection) per name;
  requests for the same name in the same process queue locally.

JSON columns are ``bytea`` holding orjson output, as in the SQLite store: the bytes come
back exactly as written (``jsonb`` would reorder object keys and drop duplicates, and
shadow attributes must read back as sent), the server never parses them, and asyncpg
needs no per-connection codec. Nothing queries inside them; the one attribute looked up
by value, externalId, has its own column.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg  # type: ignore[import-untyped]  # ships no stubs or py.typed
import orjson
import structlog

from gateway.store.base import (
    DuplicateKey,
    IdempotencyRecord,
    JournalEntry,
    StoreBusy,
    StoredResource,
    decode_entry,
    encode_entry,
)
from gateway.store.locks import KeyedLocks

MIGRATIONS: list[str] = [
    """
    CREATE TABLE resources (
        tenant text NOT NULL,
        resource_type text NOT NULL,
        id text NOT NULL,
        backend_key text NOT NULL,
        external_id text,
        shadow bytea NOT NULL,
        sent bytea NOT NULL,
        version integer NOT NULL,
        created text NOT NULL,
        last_modified text NOT NULL,
        PRIMARY KEY (tenant, resource_type, id)
    );
    CREATE UNIQUE INDEX resources_by_key ON resources (tenant, resource_type, backend_key);
    CREATE INDEX resources_by_external_id ON resources (tenant, resource_type, external_id);
    """,
    """
    CREATE TABLE journal (
        tenant text NOT NULL,
        id text NOT NULL,
        resource_type text NOT NULL,
        natural_key text NOT NULL,
        body bytea NOT NULL,
        created text NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX journal_by_key ON journal (tenant, resource_type, natural_key);
    """,
    """
    CREATE TABLE idempotency (
        tenant text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        status integer NOT NULL,
        headers bytea NOT NULL,
        body bytea NOT NULL,
        expires double precision NOT NULL,
        PRIMARY KEY (tenant, key)
    );
    CREATE INDEX idempotency_by_expiry ON idempotency (expires);
    """,
    # Statistics after a bulk load (an initial cycle, an adoption sweep) instead of after 10% of a
    # large table changed: a planner working from empty-table statistics picks sequential scans.
    """
    ALTER TABLE resources SET (autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 200);
    ALTER TABLE journal SET (autovacuum_analyze_scale_factor = 0.05, autovacuum_analyze_threshold = 100);
    """,
    """
    ALTER TABLE resources ADD COLUMN notes bytea NOT NULL DEFAULT '\\x7b7d'::bytea;
    """,
]

_COLUMNS = "id, resource_type, backend_key, shadow, sent, version, created, last_modified, notes"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
log = structlog.get_logger(__name__)


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit advisory-lock key (Python's hash() differs between processes)."""
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8"), digest_size=8, person=b"scim-gateway").digest()
    return int.from_bytes(digest, "big", signed=True)


def _row(row: asyncpg.Record) -> StoredResource:
    return StoredResource(
        id=row[0], resource_type=row[1], backend_key=row[2], shadow=orjson.loads(row[3]),
        sent=orjson.loads(row[4]), version=row[5], created=row[6], last_modified=row[7],
        notes=orjson.loads(row[8]),
    )


def _affected(status: str) -> int:
    """Rows touched, from a command tag such as ``DELETE 3``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class _GrowthAnalyzer:
    """ANALYZE the mappings table while it grows fast, as during Entra's initial cycle.

    Autovacuum analyses only once per naptime (a minute by default); until then the planner
    sees an empty table and multi-key lookups scan every row of the tenant. Re-analysing after
    every 500 inserts, then every 10% growth, keeps the plans right for the cost of a few
    background ANALYZEs of a small table.
    """

    MIN_INSERTS = 500
    GROWTH = 0.10

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._pending = 0
        self._rows_at_last = 0
        self._task: asyncio.Task[None] | None = None
        self._refused = False

    def inserted(self) -> None:
        self._pending += 1
        if self._refused or (self._task is not None and not self._task.done()):
            return
        if self._pending >= max(self.MIN_INSERTS, self.GROWTH * self._rows_at_last):
            self._task = asyncio.get_running_loop().create_task(self._analyze())

    async def _analyze(self) -> None:
        self._pending = 0
        try:
            async with self._store.pool.acquire() as conn:
                await conn.execute("ANALYZE resources")
                self._rows_at_last = int(await conn.fetchval(
                    "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'resources'::regclass"))
        except asyncpg.InsufficientPrivilegeError:
            self._refused = True  # not the table's owner: autovacuum alone keeps the statistics
            log.warning("cannot ANALYZE the mappings table (not its owner); relying on autovacuum")
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("ANALYZE of the mappings table failed", error=str(exc))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class PostgresStore:
    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 20, schema: str | None = None,
                 lock_wait_s: float = 30.0) -> None:
        """``schema``: keep the tables in this schema (created on open) instead of the DSN's search_path,
        so several gateways (or test runs) can share one database."""
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema {schema!r}: use lower-case letters, digits and underscores")
        self.dsn = dsn
        self.schema = schema
        self.min_size = min_size
        self.max_size = max_size
        self.lock_wait_s = lock_wait_s
        self._pool: asyncpg.Pool | None = None
        # Lock holders get connections of their own: were they drawn from the query pool,
        # max_size requests holding locks would leave no connection for the queries they wait on.
        self._lock_pool: asyncpg.Pool | None = None
        self._local = KeyedLocks()
        self._namespace = ""
        self._growth = _GrowthAnalyzer(self)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open")
        return self._pool

    # --- life cycle ---------------------------------------------------------------

    async def _create_pool(self, min_size: int, max_size: int) -> asyncpg.Pool:
        settings: dict[str, str] = {}
        # asyncpg lets these override the DSN's own query parameters: name the client only when the DSN does not.
        if "application_name" not in parse_qs(urlsplit(self.dsn).query):
            settings["application_name"] = "scim-gateway"
        if self.schema is not None:
            settings["search_path"] = self.schema
        # asyncpg keeps prepared statements per connection; a generic plan made while the tables were
        # nearly empty would be kept after they fill up (a seq scan at 100k rows). Plan per execution.
        settings["plan_cache_mode"] = "force_custom_plan"
        pool = await asyncpg.create_pool(self.dsn, min_size=min_size, max_size=max_size, server_settings=settings)
        if pool is None:  # only when the pool is created without being awaited
            raise RuntimeError("asyncpg returned no pool")
        return pool

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = await self._create_pool(self.min_size, self.max_size)
        try:
            async with pool.acquire() as conn:
                await self._migrate(conn)
                self._namespace = str(await conn.fetchval("SELECT current_schema()"))
            lock_pool = await self._create_pool(self.min_size, self.max_size)
        except BaseException:
            await pool.close()
            raise
        self._pool, self._lock_pool = pool, lock_pool

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        # Keyed by schema: gateways in different schemas of one database migrate independently.
        key = advisory_key("migrations", self.schema or "")
        await conn.execute("SELECT pg_advisory_lock($1)", key)
        try:
            if self.schema is not None:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            # Even IF NOT EXISTS races on the catalog without the advisory lock around it.
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            # A schema newer than this code (during a rolling upgrade) is left alone: migrations only add.
            for number, script in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                async with conn.transaction():
                    await conn.execute(script)
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def close(self) -> None:
        await self._growth.close()
        pools = [p for p in (self._pool, self._lock_pool) if p is not None]
        self._pool = self._lock_pool = None
        for pool in pools:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                # A connection still checked out (a hung request) must not keep the process from stopping.
                pool.terminate()

    async def check(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # --- cross-process locks ----------------------------------------------------------

    def lock(self, tenant: str, name: str) -> AbstractAsyncContextManager[None]:
        return self._hold(tenant, name)

    @contextlib.asynccontextmanager
    async def _hold(self, tenant: str, name: str) -> AsyncIterator[None]:
        if self._lock_pool is None:
            raise RuntimeError("PostgresStore is not open")
        pool = self._lock_pool
        key = advisory_key("lock", self._namespace, tenant, name)
        async with self._local.hold((tenant, name)):
            try:
                conn = await pool.acquire(timeout=self.lock_wait_s)
            except TimeoutError:
                raise StoreBusy(f"no connection for a lock within {self.lock_wait_s:g} s") from None
            try:
                try:
                    await conn.execute("SELECT pg_advisory_lock($1)", key, timeout=self.lock_wait_s)
                except TimeoutError:
                    raise StoreBusy(f"lock {name!r} still held elsewhere after {self.lock_wait_s:g} s") from None
                try:
                    yield
                finally:
                    try:
                        await conn.execute("SELECT pg_advisory_unlock($1)", key)
                    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                        # A broken session: ending it frees its locks, and the caller's own
                        # exception, if any, is the one worth seeing.
                        conn.terminate()
            finally:
                # The pool resets a returned connection with pg_advisory_unlock_all(), so a lock
                # granted just as a cancellation arrived, or left by a failed unlock, is freed
                # here too (release is shielded from cancellation inside asyncpg).
                await pool.release(conn)

    async def iter_mappings(
        self, tenant: str, resource_type: str, after_id: str | None, limit: int
    ) -> list[StoredResource]:
        # (tenant, resource_type, id) is the primary key: each page is one index range scan.
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM resources WHERE tenant=$1 AND resource_type=$2 AND id>$3 ORDER BY id LIMIT $4",
            tenant, resource_type, after_id or "", limit,
        )
        return [_row(r) for r in rows]

    # --- mappings -------------------------------------------------------------------

    async def get(self, tenant: str, resource_type: str, id: str) -> StoredResource | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM resources WHERE tenant=$1 AND resource_type=$2 AND id=$3",
            tenant, resource_type, id,
        )
        return _row(row) if row is not None else None

    async def get_by_key(self, tenant: str, resource_type: str, key: str) -> StoredResource | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM resources WHERE tenant=$1 AND resource_type=$2 AND backend_key=$3",
            tenant, resource_type, key,
        )
        return _row(row) if row is not None else None

    async def _many(self, tenant: str, resource_type: str, column: str, values: Sequence[str]) -> list[StoredResource]:
        if not values:
            return []
        if len(values) == 1:
            # Equality uses the index whatever the statistics say; "= ANY" on a table not yet analysed
            # (the first minute of an initial cycle) was planned as a scan of the tenant's rows.
            rows = await self.pool.fetch(
                f"SELECT {_COLUMNS} FROM resources WHERE tenant=$1 AND resource_type=$2 AND {column}=$3",
                tenant, resource_type, values[0],
            )
            return [_row(r) for r in rows]
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM resources WHERE tenant=$1 AND resource_type=$2 AND {column} = ANY($3::text[])",
            tenant, resource_type, list(values),
        )
        return [_row(r) for r in rows]

    async def get_many_by_keys(self, tenant: str, resource_type: str, keys: list[str]) -> dict[str, StoredResource]:
        return {r.backend_key: r for r in await self._many(tenant, resource_type, "backend_key", keys)}

    async def get_many(self, tenant: str, resource_type: str, ids: list[str]) -> dict[str, StoredResource]:
        return {r.id: r for r in await self._many(tenant, resource_type, "id", ids)}

    async def ids_by_keys(self, tenant: str, resource_type: str, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        rows = await self.pool.fetch(
            "SELECT backend_key, id FROM resources WHERE tenant=$1 AND resource_type=$2"
            " AND backend_key = ANY($3::text[])",
            tenant, resource_type, keys,
        )
        return {r["backend_key"]: r["id"] for r in rows}

    async def find_by_external_id(self, tenant: str, resource_type: str, external_id: str) -> list[StoredResource]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM resources WHERE tenant=$1 AND resource_type=$2 AND external_id=$3"
            " ORDER BY id",
            tenant, resource_type, external_id,
        )
        return [_row(r) for r in rows]

    async def insert(self, tenant: str, resource: StoredResource) -> None:
        r = resource
        try:
            await self.pool.execute(
                "INSERT INTO resources (tenant, resource_type, id, backend_key, external_id, shadow, sent, version,"
                " created, last_modified, notes) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
                tenant, r.resource_type, r.id, r.backend_key, r.external_id, orjson.dumps(r.shadow),
                orjson.dumps(r.sent), r.version, r.created, r.last_modified, orjson.dumps(r.notes),
            )
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateKey(r.backend_key) from exc
        self._growth.inserted()

    async def update(self, tenant: str, resource: StoredResource, *, expected_version: int | None = None) -> bool:
        r = resource
        try:
            # Not an upsert on the key: a backend_key clash must fail, never take over the other row.
            status = await self.pool.execute(
                "UPDATE resources SET backend_key=$1, external_id=$2, shadow=$3, sent=$4, version=$5, created=$6,"
                " last_modified=$7, notes=$8 WHERE tenant=$9 AND resource_type=$10 AND id=$11"
                " AND ($12::integer IS NULL OR version=$12)",
                r.backend_key, r.external_id, orjson.dumps(r.shadow), orjson.dumps(r.sent), r.version,
                r.created, r.last_modified, orjson.dumps(r.notes), tenant, r.resource_type, r.id, expected_version,
            )
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateKey(r.backend_key) from exc
        if _affected(status) == 0:
            if expected_version is not None:
                return False
            await self.insert(tenant, r)
        return True

    async def delete(self, tenant: str, resource_type: str, id: str) -> None:
        await self.pool.execute(
            "DELETE FROM resources WHERE tenant=$1 AND resource_type=$2 AND id=$3", tenant, resource_type, id
        )

    # --- in-flight journal ----------------------------------------------------------

    async def journal_add(self, tenant: str, entry: JournalEntry) -> None:
        await self.pool.execute(
            "INSERT INTO journal (tenant, id, resource_type, natural_key, body, created) VALUES ($1,$2,$3,$4,$5,$6)",
            tenant, entry.id, entry.resource_type, entry.natural_key, encode_entry(entry), entry.created,
        )

    async def journal_remove(self, tenant: str, entry_id: str) -> None:
        await self.pool.execute("DELETE FROM journal WHERE tenant=$1 AND id=$2", tenant, entry_id)

    async def journal_pending(
        self, tenant: str, resource_type: str | None = None, natural_key: str | None = None
    ) -> list[JournalEntry]:
        sql = "SELECT body FROM journal WHERE tenant=$1"
        args: list[Any] = [tenant]
        if resource_type is not None:
            args.append(resource_type)
            sql += f" AND resource_type=${len(args)}"
        if natural_key is not None:
            args.append(natural_key)
            sql += f" AND natural_key=${len(args)}"
        rows = await self.pool.fetch(sql + " ORDER BY created, id", *args)
        return [decode_entry(r[0]) for r in rows]

    # --- Idempotency-Key records ----------------------------------------------------

    async def idempotency_get(self, tenant: str, key: str, now: float) -> IdempotencyRecord | None:
        row = await self.pool.fetchrow(
            "SELECT key, fingerprint, status, headers, body, expires FROM idempotency"
            " WHERE tenant=$1 AND key=$2 AND expires>$3",
            tenant, key, now,
        )
        if row is None:
            return None
        return IdempotencyRecord(key=row[0], fingerprint=row[1], status=row[2], headers=orjson.loads(row[3]),
                                 body=bytes(row[4]), expires=row[5])

    async def idempotency_put(self, tenant: str, record: IdempotencyRecord) -> None:
        await self.pool.execute(
            "INSERT INTO idempotency (tenant, key, fingerprint, status, headers, body, expires)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7)"
            " ON CONFLICT (tenant, key) DO UPDATE SET fingerprint=EXCLUDED.fingerprint, status=EXCLUDED.status,"
            " headers=EXCLUDED.headers, body=EXCLUDED.body, expires=EXCLUDED.expires",
            tenant, record.key, record.fingerprint, record.status, orjson.dumps(record.headers), record.body,
            record.expires,
        )

    async def idempotency_purge(self, now: float) -> int:
        return _affected(await self.pool.execute("DELETE FROM idempotency WHERE expires<=$1", now))
