"""The stack's floor for one backend hop: a bare aiohttp server that forwards each GET to the mock.

``GET /api/v1/mailboxes/{address}`` is passed to the Cleanmail mock with aiohttp's client on a
pooled session, and the mock's answer is returned as it is: no auth, no state, no SCIM work. Its
added latency over the mock is what any aiohttp-based gateway pays per backend call here.
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


def make_app(backend_url: str, api_key: str) -> web.Application:
    async def open_session(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32), headers={"X-API-Key": api_key})

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()

    async def forward(request: web.Request) -> web.Response:
        url = f"{backend_url}/api/v1/mailboxes/{request.match_info['address']}"
        async with request.app[SESSION].get(url) as response:
            body = await response.read()
            return web.Response(body=body, status=response.status, content_type="application/json")

    app = web.Application()
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_get("/api/v1/mailboxes/{address}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.backend.rstrip("/"), args.api_key), host="127.0.0.1", port=args.port, print=None,
                access_log=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
