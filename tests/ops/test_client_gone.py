"""A client that goes away mid-request is an info-level event, not an error with a traceback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from gateway.http.app import create_app
from tests.conftest import TOKEN, make_settings
from tests.ops.conftest import LogConfig


async def test_disconnect_mid_body_is_logged_at_info(capture_logs: LogConfig,
                                                     aiohttp_server: Callable[..., Any]) -> None:
    out = capture_logs()
    server = await aiohttp_server(create_app(make_settings()))
    _reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Type: application/scim+json\r\n"
        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"userName": "half'
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(50):  # until the gateway has logged the request
        if '"request"' in out.getvalue():
            break
        await asyncio.sleep(0.02)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert not [x for x in lines if x.get("level") in ("error", "critical")], lines
    assert not any("Traceback" in line for line in out.getvalue().splitlines())
    gone = [x for x in lines if str(x.get("event", "")).startswith("client went away")]
    assert gone and gone[0]["level"] == "info"
    request = next(x for x in lines if x.get("event") == "request")
    assert request["status"] == 499
