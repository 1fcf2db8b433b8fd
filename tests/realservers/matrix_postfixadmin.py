"""The postfixadmin backend for the Entra suite's matrix (``matrix_postfixadmin_pg``/``_mariadb``), and the
session databases behind it: a pytest plugin module (tests/conftest.py lists it), so tests anywhere can use them.

Each flavour gets one throwaway PostfixAdmin database for the whole session; every matrix test
starts from it emptied (rows deleted, base domains kept), with a fresh adapter that may create the
many mail domains the suite uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.postfixadmin.adapter import PostfixAdminAdapter
from adapters.postfixadmin.db import Database, Target
from adapters.postfixadmin.mapping import ListAddresses
from adapters.postfixadmin.passwords import PasswordHashing
from adapters.retry import RetryPolicy
from tests.matrix import LIST_DOMAIN, BackendUnderTest
from tests.realservers.postfixadmin_db import PostfixAdminDatabase, postfixadmin_database

FAST_POLICY = RetryPolicy(attempt_timeout=2.0, connect_timeout=1.0, deadline=4.0, backoff_initial=0.01,
                          backoff_max=0.05)
"""Short enough that a transport fault fails a call within seconds."""


def make_adapter(dsn: str, *, list_domain: str | None = LIST_DOMAIN, create_domains: bool = True,
                 policy: RetryPolicy = FAST_POLICY, scheme: str = "BLF-CRYPT") -> PostfixAdminAdapter:
    return PostfixAdminAdapter(
        Database(Target.from_dsn(dsn), pool_size=4, policy=policy),
        lists=ListAddresses("{slug}@{domain}", list_domain),
        hashing=PasswordHashing(scheme, bcrypt_cost=4),  # type: ignore[arg-type]
        create_domains=create_domains,
    )


@pytest.fixture(scope="session")
def postfixadmin_pg() -> Iterator[PostfixAdminDatabase]:
    with postfixadmin_database("postgresql") as db:
        yield db


@pytest.fixture(scope="session")
def postfixadmin_mariadb() -> Iterator[PostfixAdminDatabase]:
    with postfixadmin_database("mariadb") as db:
        yield db


@pytest.fixture(params=["postgresql", "mariadb"])
def postfixadmin_db(request: pytest.FixtureRequest) -> PostfixAdminDatabase:
    """The session's PostfixAdmin database of each flavour in turn (shared: use fresh addresses)."""
    name = "postfixadmin_pg" if request.param == "postgresql" else "postfixadmin_mariadb"
    db: PostfixAdminDatabase = request.getfixturevalue(name)
    return db


async def _matrix(db: PostfixAdminDatabase, name: str) -> AsyncIterator[BackendUnderTest]:
    db.reset()
    adapter = make_adapter(db.dsn())
    try:
        yield BackendUnderTest(name, adapter, addresses_only=True, settings={"list_domain": LIST_DOMAIN})
    finally:
        await adapter.close()


@pytest.fixture
async def matrix_postfixadmin_pg(postfixadmin_pg: PostfixAdminDatabase) -> AsyncIterator[BackendUnderTest]:
    async for backend in _matrix(postfixadmin_pg, "postfixadmin_pg"):
        yield backend


@pytest.fixture
async def matrix_postfixadmin_mariadb(postfixadmin_mariadb: PostfixAdminDatabase) -> AsyncIterator[BackendUnderTest]:
    async for backend in _matrix(postfixadmin_mariadb, "postfixadmin_mariadb"):
        yield backend
