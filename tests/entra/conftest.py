"""The Entra exchange suite runs against every backend of the matrix (tests/matrix.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.http.app import create_app
from tests.conftest import AUTH, ClientFactory, make_settings
from tests.matrix import ENTRA_BACKENDS, BackendUnderTest


@pytest.fixture(params=ENTRA_BACKENDS)
def entra_backend(request: pytest.FixtureRequest) -> BackendUnderTest:
    backend: BackendUnderTest = request.getfixturevalue(f"matrix_{request.param}")
    return backend


@pytest.fixture
async def scim(aiohttp_client: ClientFactory, entra_backend: BackendUnderTest) -> TestClient[Any, Any]:
    """A client for a gateway on the backend under test, sending a valid bearer token."""
    app = create_app(make_settings(**entra_backend.settings), adapter=entra_backend.adapter)
    return await aiohttp_client(app, headers=AUTH)
