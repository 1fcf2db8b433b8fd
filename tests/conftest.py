"""Shared fixtures: the gateway app on the in-memory backend, with a bearer token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.http.app import create_app

pytest_plugins = ["tests.matrix", "tests.realservers.matrix_postfixadmin", "tests.realservers.matrix_modoboa"]

TOKEN = "test-token-0123456789"
BASE = "/scim/v2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCIM_JSON = {"Content-Type": "application/scim+json"}

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"token": TOKEN, "backend": "memory", "state": "memory"}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def scim(aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    """A client for the gateway that sends a valid bearer token on every request."""
    app = create_app(make_settings())
    return await aiohttp_client(app, headers=AUTH)


@pytest.fixture
async def anon(aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    """A client for the gateway without credentials."""
    app = create_app(make_settings())
    return await aiohttp_client(app)
