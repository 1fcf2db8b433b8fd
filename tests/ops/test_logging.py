"""Logs: one JSON line per request with what an operator needs, and nothing an attacker wants."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest
import structlog

from adapters.cleanmail.adapter import CleanmailAdapter
from gateway.config import Settings
from gateway.http.observe import safe_request_id
from gateway.logs import UserNameHasher
from gateway.serving import secret_values
from tests.conftest import BASE, TOKEN
from tests.ops.conftest import API_KEY, PATCH_URN, GatewayFactory, LogConfig, MockBackend, user

PASSWORD = "Correct-Horse-Battery-9f3k"


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def request_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(buffer) if line.get("event") == "request"]


async def test_one_line_per_request_with_route_template_and_backend_work(
    capture_logs: LogConfig, make_gateway: GatewayFactory, mock_backend: MockBackend
) -> None:
    out = capture_logs()
    scim = await make_gateway(mock_backend)
    created = await scim.post(f"{BASE}/Users", json=user("ada@example.ch"), headers={"X-Request-ID": "entra-42"})
    assert created.status == 201
    assert created.headers["X-Request-ID"] == "entra-42"
    user_id = (await created.json())["id"]
    patch = {"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "displayName", "value": "Ada L"}]}
    assert (await scim.patch(f"{BASE}/Users/{user_id}", json=patch)).status == 200

    first, second = request_lines(out)
    assert first["request_id"] == "entra-42"
    assert first["tenant"] == "default"
    assert first["method"] == "POST"
    assert first["route"] == "/scim/v2/Users"
    assert first["operation"] == "users.create"
    assert first["status"] == 201
    assert first["duration_ms"] > 0
    assert first["backend_calls"] >= 2  # the uniqueness look-up, then the create
    assert first["backend_retries"] == 0
    assert second["route"] == "/scim/v2/Users/{id}"
    assert second["operation"] == "users.patch"
    assert second["request_id"] != "entra-42" and len(second["request_id"]) == 32
    # Backend calls appear at debug level, tied to their request.
    calls = [line for line in lines(out) if line.get("event") == "backend call"]
    assert {c["operation"] for c in calls} >= {"find_users", "create_user", "get_user", "update_user"}
    assert all(c["request_id"] in ("entra-42", second["request_id"]) for c in calls)


async def test_retries_are_counted_for_the_request_that_made_them(
    capture_logs: LogConfig, make_gateway: GatewayFactory, mock_backend: MockBackend
) -> None:
    out = capture_logs()
    scim = await make_gateway(mock_backend)
    created = await scim.post(f"{BASE}/Users", json=user("bob@example.ch"))
    user_id = (await created.json())["id"]
    mock_backend.server.faults.configure(type(mock_backend.server.faults.config)(error_rate=1.0, methods=("GET",)))
    reply = await scim.get(f"{BASE}/Users/{user_id}")
    assert reply.status == 503
    assert reply.headers["X-Request-ID"]
    failed = request_lines(out)[-1]
    assert failed["status"] == 503
    assert failed["backend_calls"] == 1
    assert failed["backend_retries"] >= 2
    # The client's own retry lines (standard logging) come out as JSON lines of the same request.
    retry_lines = [line for line in lines(out) if "attempt" in str(line.get("event"))]
    assert retry_lines and all(line["request_id"] == failed["request_id"] for line in retry_lines)


@pytest.mark.parametrize("incoming", ["x" * 129, "tab\tinside", "caf\u00e9", "   "])
def test_unsafe_request_ids_are_replaced(incoming: str) -> None:
    minted = safe_request_id(incoming)
    assert minted != incoming and len(minted) == 32


def test_safe_request_ids_are_kept() -> None:
    assert safe_request_id("x" * 128) == "x" * 128
    assert safe_request_id("0f8fad5b-d9cb-469f-a165-70867728950e") == "0f8fad5b-d9cb-469f-a165-70867728950e"


async def test_overlong_request_id_is_not_echoed(make_gateway: GatewayFactory) -> None:
    scim = await make_gateway()
    reply = await scim.get("/healthz", headers={"X-Request-ID": "y" * 200})
    assert reply.headers["X-Request-ID"] != "y" * 200


async def test_tokens_api_keys_and_passwords_never_reach_the_log(
    capture_logs: LogConfig, make_gateway: GatewayFactory, mock_backend: MockBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"url": mock_backend.url, "api_key": API_KEY}
    settings = Settings(token=TOKEN, backend="cleanmail", backend_options=options)
    out = capture_logs(secret_values=secret_values(settings))
    scim = await make_gateway(mock_backend, backend_options=options)
    body = user("carol@example.ch", password=PASSWORD)
    assert (await scim.post(f"{BASE}/Users", json=body)).status == 201
    assert (await scim.post(f"{BASE}/Users", json=body)).status == 409
    # A wrong token, and a retried backend failure.
    assert (await scim.get(f"{BASE}/Users", headers={"Authorization": f"Bearer {TOKEN}-wrong"})).status == 401
    mock_backend.server.faults.configure(type(mock_backend.server.faults.config)(error_rate=1.0))
    assert (await scim.get(f"{BASE}/Users")).status == 503
    mock_backend.server.faults.configure(type(mock_backend.server.faults.config)())

    # An unexpected failure whose message carries credentials (as careless code might) and a
    # request body with a password: the 500 path logs a traceback.
    async def explode(self: CleanmailAdapter, attributes: Any) -> Any:
        raise RuntimeError(f"refused with X-API-Key {API_KEY} and Authorization: Bearer {TOKEN}")

    monkeypatch.setattr(CleanmailAdapter, "create_user", explode)
    reply = await scim.post(f"{BASE}/Users", json=user("dave@example.ch", password=PASSWORD))
    assert reply.status == 500
    structlog.get_logger("test").info("stray", authorization=f"Bearer {TOKEN}", api_key=API_KEY, password=PASSWORD)
    logging.getLogger("adapters.test").warning("stray stdlib line with %s", API_KEY)

    text = out.getvalue()
    assert "unhandled error" in text and "Traceback" in text
    assert "[redacted]" in text
    for secret in (TOKEN, API_KEY, PASSWORD):
        assert secret not in text


async def test_user_names_are_hashed_when_asked(
    capture_logs: LogConfig, make_gateway: GatewayFactory, mock_backend: MockBackend
) -> None:
    out = capture_logs(hash_user_names=True, salt=b"pepper")
    scim = await make_gateway(mock_backend, log_hash_user_names=True)
    created = await scim.post(f"{BASE}/Users", json=user("Erin.Private@example.ch"))
    user_id = (await created.json())["id"]
    mock_backend.server.faults.configure(type(mock_backend.server.faults.config)(error_rate=1.0, methods=("GET",)))
    assert (await scim.get(f"{BASE}/Users/{user_id}")).status == 503
    structlog.get_logger("test").info("renamed", user_name="Erin.Private@example.ch")

    text = out.getvalue()
    digest = UserNameHasher(b"pepper").digest("erin.private@example.ch")
    assert "erin.private" not in text.lower()
    assert digest in text  # in the client's retry lines (the mailbox URL) and the explicit field
    assert text.count(digest) >= 2


async def test_user_names_are_kept_by_default(
    capture_logs: LogConfig, make_gateway: GatewayFactory, mock_backend: MockBackend
) -> None:
    out = capture_logs()
    scim = await make_gateway(mock_backend)
    created = await scim.post(f"{BASE}/Users", json=user("frank@example.ch"))
    mock_backend.server.faults.configure(type(mock_backend.server.faults.config)(error_rate=1.0, methods=("GET",)))
    await scim.get(f"{BASE}/Users/{(await created.json())['id']}")
    assert "frank@example.ch" in out.getvalue()


def test_user_name_digest_is_salted_and_case_blind() -> None:
    one, other = UserNameHasher(b"a"), UserNameHasher(b"b")
    assert one.digest("X@Example.ch") == one.digest("x@example.ch")
    assert one.digest("x@example.ch") != other.digest("x@example.ch")
    assert one.digest("x@example.ch").startswith("sha256:")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_readable_lines_and_pipes_get_json(capture_logs: LogConfig) -> None:
    tty = capture_logs("auto", "info", stream=_Terminal())
    structlog.get_logger("test").info("hello", answer=42)
    readable = re.sub(r"\x1b\[[0-9;]*m", "", tty.getvalue())
    assert "hello" in readable and "answer=42" in readable
    with pytest.raises(ValueError):
        json.loads(readable)

    pipe = capture_logs("auto", "info")
    structlog.get_logger("test").info("hello", answer=42)
    logging.getLogger("aiohttp.server").error("library line")
    parsed = lines(pipe)
    assert parsed[0]["event"] == "hello" and parsed[0]["answer"] == 42 and parsed[0]["level"] == "info"
    assert parsed[1]["event"] == "library line" and parsed[1]["logger"] == "aiohttp.server"


async def test_doubled_slash_and_unknown_paths_get_clean_route_names(
    capture_logs: LogConfig, make_gateway: GatewayFactory
) -> None:
    out = capture_logs()
    scim = await make_gateway()
    assert (await scim.get("/scim/v2//Users")).status == 200
    assert (await scim.get("/scim/v2/Nope")).status == 404
    assert (await scim.get("/elsewhere")).status == 404
    assert (await scim.request("OPTIONS", f"{BASE}/Schemas")).status == 405
    routes = [(line["route"], line["operation"]) for line in request_lines(out)]
    assert routes == [("/scim/v2/Users", "users.list"), ("/scim/{tail}", "unknown"), ("-", "unknown"),
                      ("/scim/v2/Schemas", "discovery")]
