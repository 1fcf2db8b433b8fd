"""PostgreSQL side of ``MappingScanner.iter_mappings`` (see gateway.store.base).

A function on the pool so that PostgresStore can delegate to it with one method.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # ships no stubs or py.typed

from gateway.store.base import StoredResource
from gateway.store.postgres import _COLUMNS, _row


async def iter_mappings(
    pool: asyncpg.Pool, tenant: str, resource_type: str, after_id: str | None, limit: int
) -> list[StoredResource]:
    # (tenant, resource_type, id) is the primary key: each page is one index range scan.
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM resources WHERE tenant=$1 AND resource_type=$2 AND id>$3 ORDER BY id LIMIT $4",
        tenant, resource_type, after_id or "", limit,
    )
    return [_row(r) for r in rows]
