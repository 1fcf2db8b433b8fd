"""Third-party SCIM conformance suites run against the gateway over real HTTP.

The suites are blocking clients, so the gateway is served on a free 127.0.0.1 port by
the test's own event loop while the suite runs in a worker thread or a subprocess.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer

SCIM_PREFIX = "/scim/v2"


@asynccontextmanager
async def live_server(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (port chosen by the OS); yield the SCIM base URL."""
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url(SCIM_PREFIX))
    finally:
        await server.close()


def shorten(value: object, limit: int = 600) -> str:
    """One-line rendering of a diagnostic payload, cut so a report stays readable."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + " …"
