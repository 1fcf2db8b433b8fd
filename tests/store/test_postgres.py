"""What only the PostgreSQL store promises: replicas (separate pools) lock and migrate safely together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

from gateway.store import postgres
from gateway.store.postgres import MIGRATIONS, PostgresStore, advisory_key
from gateway.wiring import make_store
from tests.pg_support import POSTGRES_DSN, fresh_schema
from tests.store.test_store_contract import BLOCKED_FOR, Holder, _res

pytestmark = pytest.mark.postgres

StoreFactory = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema(POSTGRES_DSN) as name:
        yield name


@pytest.fixture
async def replica(schema: str) -> AsyncIterator[StoreFactory]:
    """Open another store on the test's schema: each has its own pools, as a separate replica would."""
    stores: list[PostgresStore] = []

    async def start(*, open: bool = True, **options: object) -> PostgresStore:
        store = PostgresStore(POSTGRES_DSN, schema=str(options.pop("schema", schema)), **options)  # type: ignore[arg-type]
        stores.append(store)
        if open:
            await store.open()
        return store

    yield start
    for store in stores:
        await store.close()


async def _sql(query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _held_on_server(schema: str, tenant: str, name: str) -> int:
    """Sessions holding this store lock's advisory lock (only ours: other runs may share the database)."""
    key = advisory_key("lock", schema, tenant, name)
    # A bigint advisory key shows in pg_locks as classid (high 32 bits) and objid (low 32 bits).
    rows = await _sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                      " AND classid::bigint = $1 AND objid::bigint = $2",
                      (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
    return int(rows[0][0])


async def test_two_replicas_exclude_each_other(schema: str, replica: StoreFactory) -> None:
    a, b = await replica(), await replica()
    first = Holder(a, "t1", "User/name/ann@x.ch")
    assert await first.holds_within(5)
    assert await _held_on_server(schema, "t1", "User/name/ann@x.ch") == 1
    second = Holder(b, "t1", "User/name/ann@x.ch")
    assert not await second.holds_within(BLOCKED_FOR), "replica B took a lock replica A holds"
    await first.finish()
    assert await second.holds_within(5)
    assert await _held_on_server(schema, "t1", "User/name/ann@x.ch") == 1
    await second.finish()
    assert await _held_on_server(schema, "t1", "User/name/ann@x.ch") == 0


async def test_replicas_lock_different_names_at_once(replica: StoreFactory) -> None:
    a, b = await replica(), await replica()
    holders = [Holder(a, "t1", "Group/id/1"), Holder(b, "t1", "Group/id/2"), Holder(b, "t2", "Group/id/1")]
    for holder in holders:
        assert await holder.holds_within(5)
    for holder in holders:
        await holder.finish()


async def test_cancelled_waiter_and_holder_leave_no_lock_behind(schema: str, replica: StoreFactory) -> None:
    a, b, c = await replica(), await replica(), await replica()
    holder = Holder(a, "t1", "Group/id/g")
    assert await holder.holds_within(5)
    # B's waiter is blocked inside pg_advisory_lock on the server, not on an in-process lock.
    waiter = Holder(b, "t1", "Group/id/g")
    assert not await waiter.holds_within(BLOCKED_FOR)
    await waiter.cancel()
    await holder.cancel()
    for store in (b, c, a):
        again = Holder(store, "t1", "Group/id/g")
        assert await again.holds_within(5), "a cancelled holder or waiter left the advisory lock taken"
        await again.finish()
    assert await _held_on_server(schema, "t1", "Group/id/g") == 0


async def test_lock_holders_do_not_starve_queries(replica: StoreFactory) -> None:
    # With locks drawn from the query pool, max_size holders would wait forever for a query connection.
    store = await replica(max_size=2)

    async def work(n: int) -> None:
        async with store.lock("t1", f"User/id/{n}"):
            await asyncio.sleep(0.05)
            await store.insert("t1", _res(f"id-{n}", f"u{n}@x.ch"))
            assert await store.get("t1", "User", f"id-{n}") is not None

    await asyncio.wait_for(asyncio.gather(*(work(n) for n in range(6))), 10)


async def test_locks_of_different_schemas_are_independent(replica: StoreFactory) -> None:
    async with fresh_schema(POSTGRES_DSN) as other_schema:
        a, b = await replica(), await replica(schema=other_schema)
        first, second = Holder(a, "t1", "User/id/1"), Holder(b, "t1", "User/id/1")
        assert await first.holds_within(5)
        assert await second.holds_within(5)
        await first.finish()
        await second.finish()
        await b.close()


async def _versions(schema: str) -> list[int]:
    return [r[0] for r in await _sql(f'SELECT version FROM "{schema}".schema_version ORDER BY version')]


async def test_concurrent_opens_migrate_once(schema: str, replica: StoreFactory) -> None:
    stores = [await replica(open=False) for _ in range(4)]
    await asyncio.wait_for(asyncio.gather(*(s.open() for s in stores)), 20)
    assert await _versions(schema) == list(range(1, len(MIGRATIONS) + 1))
    # Every replica can use the schema straight away.
    await stores[0].insert("t1", _res("id-1", "a@x.ch"))
    got = await stores[3].get("t1", "User", "id-1")
    assert got is not None and got.backend_key == "a@x.ch"
    await (await replica()).check()
    assert await _versions(schema) == list(range(1, len(MIGRATIONS) + 1))


async def test_failed_migration_rolls_back_and_releases_the_lock(
    schema: str, replica: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await replica()
    broken = "CREATE TABLE half_done (x integer); SELECT no_such_function();"
    monkeypatch.setattr(postgres, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await replica()
    assert await _versions(schema) == list(range(1, len(MIGRATIONS) + 1))
    assert await _sql("SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'half_done'", schema) == []
    monkeypatch.setattr(postgres, "MIGRATIONS", [*MIGRATIONS, "CREATE TABLE done_now (x integer);"])
    # Would hang if the failed attempt had kept the migration lock.
    await asyncio.wait_for(replica(), 10)
    assert await _versions(schema) == list(range(1, len(MIGRATIONS) + 2))


async def test_a_newer_schema_is_left_alone(schema: str, replica: StoreFactory) -> None:
    await replica()
    await _sql(f'INSERT INTO "{schema}".schema_version (version) VALUES ($1)', len(MIGRATIONS) + 5)
    store = await replica()
    await store.check()
    assert (await _versions(schema))[-1] == len(MIGRATIONS) + 5


async def test_state_survives_reopen(replica: StoreFactory) -> None:
    first = await replica()
    await first.insert("t1", _res("id-1", "a@x.ch", externalId="e"))
    await first.close()
    second = await replica()
    got = await second.get("t1", "User", "id-1")
    assert got is not None and got.shadow == {"externalId": "e"}


async def test_closed_store_refuses_work(replica: StoreFactory) -> None:
    store = await replica()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.check()
    with pytest.raises(RuntimeError, match="not open"):
        async with store.lock("t1", "x"):
            pass


def test_lock_keys_are_stable_across_processes_and_versions() -> None:
    # Replicas of different releases must agree on the key during a rolling upgrade: pinned.
    assert advisory_key("lock", "public", "default", "User/name/ann@x.ch") == 3187640422484923742
    assert advisory_key("lock", "public", "default", "User/name/bob@x.ch") != advisory_key(
        "lock", "public", "other", "User/name/bob@x.ch")


def test_bad_schema_name_is_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore(POSTGRES_DSN, schema='x"; DROP TABLE resources; --')


@pytest.mark.parametrize("dsn", ["postgresql://u@127.0.0.1/db", "postgres://u@127.0.0.1:5432/db"])
def test_make_store_picks_postgres(dsn: str) -> None:
    store = make_store(dsn)
    assert isinstance(store, PostgresStore) and store.dsn == dsn


async def test_a_lock_held_too_long_elsewhere_is_store_busy(replica: StoreFactory) -> None:
    from gateway.store.base import StoreBusy

    a, b = await replica(), await replica(lock_wait_s=0.2)
    first = Holder(a, "t1", "User/name/slow@x.ch")
    assert await first.holds_within(5)
    with pytest.raises(StoreBusy):
        async with b.lock("t1", "User/name/slow@x.ch"):
            raise AssertionError("got a lock another replica holds")
    await first.finish()
    async with b.lock("t1", "User/name/slow@x.ch"):
        pass


async def test_resources_are_analysed_early(schema: str, replica: StoreFactory) -> None:
    await replica()
    rows = await _sql("SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                      " WHERE n.nspname = $1 AND c.relname = 'resources'", schema)
    assert "autovacuum_analyze_scale_factor=0.01" in list(rows[0][0])


async def _analysed(schema: str) -> bool:
    rows = await _sql("SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'resources'",
                      schema)
    return bool(rows) and rows[0][0] is not None


async def test_a_fast_growing_mappings_table_is_analysed_without_waiting_for_autovacuum(
    schema: str, replica: StoreFactory
) -> None:
    """Until analysed, multi-key lookups were planned as a scan of every row of the tenant."""
    store = await replica()
    await _sql(f'ALTER TABLE "{schema}".resources SET (autovacuum_enabled = false)')
    for i in range(postgres._GrowthAnalyzer.MIN_INSERTS - 1):
        await store.insert("t1", _res(f"id-{i}", f"u{i}@x.ch"))
    await asyncio.sleep(0.2)
    assert not await _analysed(schema)
    await store.insert("t1", _res("id-last", "last@x.ch"))
    for _ in range(100):
        if await _analysed(schema):
            break
        await asyncio.sleep(0.05)
    assert await _analysed(schema)
    plan = await _sql(f'EXPLAIN SELECT id FROM "{schema}".resources WHERE tenant = $1 AND resource_type = $2'
                      " AND backend_key = ANY($3::text[])", "t1", "User", ["u1@x.ch", "u2@x.ch"])
    assert "backend_key = ANY" in " ".join(r[0] for r in plan if "Index Cond" in r[0])
