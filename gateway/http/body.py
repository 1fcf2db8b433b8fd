"""Reading request bodies: content encodings, JSON, and the limits every body is held to."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway.scim.errors import ScimError, invalid_syntax, invalid_value
from gateway.scim.limits import check_json

# What aiohttp's parser decodes; anything else would reach us still encoded.
SUPPORTED_ENCODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate"})


class UnreadableBody(ScimError):
    """The body's encoding is broken: answered 400, and the connection closed after the answer."""


class ClientGone(Exception):
    """The client closed the connection before its request was read: nobody is left to answer."""


def check_encoding(request: web.Request) -> None:
    header = request.headers.get("Content-Encoding")
    if header is None:
        return
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    if len(codings) > 1 or (codings and codings[0] not in SUPPORTED_ENCODINGS):
        raise ScimError(415, f"Content-Encoding {header!r} is not supported; send the body as it is, or gzip- "
                             "or deflate-compressed once", headers={"Accept-Encoding": "gzip, deflate"})


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded; 400 when it cannot be, ClientGone when the client left mid-body."""
    check_encoding(request)
    try:
        return await request.read()
    except RequestPayloadError as exc:
        # Nothing more of this body can be read: end it, so the server does not try to drain the rest
        # (and log the same decoding error again) before it answers.
        request.content.feed_eof()
        raise UnreadableBody(400, f"The request body could not be read: {str(exc).splitlines()[-1].strip()}",
                             "invalidSyntax") from None
    except ConnectionError as exc:
        raise ClientGone(str(exc)) from None


async def read_json(request: web.Request) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        raise invalid_syntax("The request body is empty; a JSON object is required.")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc):
            raise invalid_value(f"The request body holds a lone surrogate: {exc}; send valid Unicode text") from None
        raise invalid_syntax(f"The request body is not valid JSON: {exc}") from None
    check_json(value, raw)
    return value
