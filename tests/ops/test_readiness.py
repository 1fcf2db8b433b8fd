"""/healthz answers while the process lives; /readyz follows the store and the backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.http.app import create_app
from gateway.store.memory import MemoryStore
from tests.conftest import make_settings
from tests.ops.conftest import Client, GatewayFactory, MockBackend


async def test_readiness_flips_when_the_backend_dies_and_comes_back(
    make_gateway: GatewayFactory, mock_backend: MockBackend
) -> None:
    scim = await make_gateway(mock_backend)
    ready = await scim.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ready"

    await mock_backend.stop()
    down = await scim.get("/readyz")
    assert down.status == 503
    body = await down.json()
    assert body["status"] == "unavailable"
    assert list(body["problems"]) == ["backend:default:cleanmail"]
    assert "connect" in body["problems"]["backend:default:cleanmail"].lower()
    assert (await scim.get("/healthz")).status == 200  # alive, just not ready

    await mock_backend.start()
    assert (await scim.get("/readyz")).status == 200


class BrokenStore(MemoryStore):
    async def check(self) -> None:
        raise ConnectionError("database is gone")


async def test_readiness_names_a_broken_store(aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    client = await aiohttp_client(create_app(make_settings(), store=BrokenStore()))
    reply = await client.get("/readyz")
    assert reply.status == 503
    assert (await reply.json())["problems"] == {"store": "ConnectionError: database is gone"}
