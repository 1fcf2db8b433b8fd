"""Fixtures for a real Modoboa 2.12 REST API on loopback (see ``tests/realservers/modoboa.py``).

- ``modoboa``: the server with throttling raised out of reach, reset to its freshly deployed
  state (superuser ``admin`` only, no domain, account or alias) before each test.
- ``modoboa_default_throttle``: the same database served with Modoboa's default throttle rates
  (about 5 writes/s per endpoint, 300 requests/min per user), reset likewise and with its
  request counters cleared before each test.

Both are ``ModoboaServer`` objects: ``.url``, ``.token``, ``.api(method, path, json)`` →
``(status, body)``, ``.request(...)`` for headers and timings, ``.expect(status, ...)``,
``.create_domain(name)`` → pk, ``.list_all(path)`` and ``.reset()``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.realservers.modoboa import (
    POSTGRES_DSN,
    REDIS_URL,
    WHAT,
    ModoboaInstance,
    ModoboaServer,
    Postgres,
    Redis,
    ensure_installed,
)
from tests.realservers.support import unavailable


@pytest.fixture(scope="session")
def modoboa_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModoboaInstance]:
    """The session's own database, restored from the cached deploy; dropped at the end."""
    postgres, redis = Postgres.from_dsn(POSTGRES_DSN), Redis.from_url(REDIS_URL)
    install = ensure_installed(postgres, redis)
    try:
        instance = ModoboaInstance.create(install, postgres, redis, tmp_path_factory.mktemp("modoboa"))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        unavailable(WHAT, f"restoring the deployed database failed: {exc}")
    try:
        yield instance
    finally:
        instance.close()


def _serve(instance: ModoboaInstance, *, high_throttle: bool) -> Iterator[ModoboaServer]:
    try:
        server = instance.start_server(high_throttle=high_throttle)
    except (RuntimeError, OSError) as exc:
        unavailable(WHAT, str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def modoboa_server(modoboa_instance: ModoboaInstance) -> Iterator[ModoboaServer]:
    yield from _serve(modoboa_instance, high_throttle=True)


@pytest.fixture(scope="session")
def modoboa_default_throttle_server(modoboa_instance: ModoboaInstance) -> Iterator[ModoboaServer]:
    yield from _serve(modoboa_instance, high_throttle=False)


@pytest.fixture
def modoboa(modoboa_server: ModoboaServer) -> ModoboaServer:
    modoboa_server.reset()
    return modoboa_server


@pytest.fixture
def modoboa_default_throttle(
    modoboa_instance: ModoboaInstance, modoboa_default_throttle_server: ModoboaServer
) -> ModoboaServer:
    # Cleared before the reset too, so that a previous test's burst cannot throttle the reset itself.
    modoboa_instance.flush_default_throttle()
    modoboa_default_throttle_server.reset()
    modoboa_instance.flush_default_throttle()
    return modoboa_default_throttle_server
