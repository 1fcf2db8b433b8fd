"""Control endpoints (faults, stats, state, reset) and persistence of the mock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.cleanmail.mock import MOCK_KEY
from adapters.cleanmail.mock_faults import FaultConfig
from tests.cleanmail.conftest import API_KEY, DOMAIN, KEY_HEADER, MockClient, make_app, server_of

Factory = Callable[..., Awaitable[MockClient]]
MAILBOXES = "/api/v1/mailboxes"


async def test_control_endpoints_exist_only_with_control(
    aiohttp_client: Callable[..., Awaitable[MockClient]],
) -> None:
    plain = await aiohttp_client(make_app(control=False), headers=KEY_HEADER)
    assert (await plain.get("/__mock__/stats")).status == 404
    assert (await plain.post("/__mock__/reset")).status == 404


async def test_control_endpoints_need_no_key(mock: MockClient) -> None:
    response = await mock.get("/__mock__/stats", headers={"X-API-Key": ""})
    assert response.status == 200


async def test_stats_count_calls_by_template_and_method(mock: MockClient) -> None:
    await mock.post(MAILBOXES, json={"address": f"a@{DOMAIN}"})
    for _ in range(3):
        await mock.get(f"{MAILBOXES}/a@{DOMAIN}")
    await mock.get(f"{MAILBOXES}/b@{DOMAIN}")
    await mock.get("/api/v1/nowhere")
    stats = await (await mock.get("/__mock__/stats")).json()
    assert stats["calls"] == {
        "GET /api/v1/mailboxes/{address}": 4,
        "POST /api/v1/mailboxes": 1,
        "GET (unmatched)": 1,
    }
    assert stats["total"] == 6


async def test_state_shows_everything(mock: MockClient) -> None:
    await mock.post(MAILBOXES, json={"address": f"a@{DOMAIN}", "first_name": "A"})
    await mock.post("/api/v1/lists", json={"address": f"l@{DOMAIN}", "members": [f"a@{DOMAIN}"]})
    state = await (await mock.get("/__mock__/state")).json()
    assert [m["address"] for m in state["mailboxes"]] == [f"a@{DOMAIN}"]
    assert state["lists"][0]["members"] == [f"a@{DOMAIN}"]
    assert state["domains"] == [{"name": DOMAIN, "policy": "standard"}]


async def test_reset_clears_data_faults_and_stats(mock: MockClient) -> None:
    await mock.post(MAILBOXES, json={"address": f"a@{DOMAIN}"})
    await mock.post("/__mock__/faults", json={"error_rate": 1.0})
    assert (await mock.get(MAILBOXES)).status == 503
    assert (await mock.post("/__mock__/reset")).status == 200
    state = await (await mock.get("/__mock__/state")).json()
    assert state["mailboxes"] == [] and [d["name"] for d in state["domains"]] == [DOMAIN]
    assert (await (await mock.get("/__mock__/stats")).json())["total"] == 0
    assert (await mock.get(MAILBOXES)).status == 200
    assert (await (await mock.get("/__mock__/faults")).json())["error_rate"] == 0


async def _outcomes(mock: MockClient, faults: dict[str, Any], calls: int = 40) -> list[int]:
    assert (await mock.post("/__mock__/faults", json=faults)).status == 200
    return [(await mock.get(MAILBOXES)).status for _ in range(calls)]


async def test_faults_are_deterministic_with_a_seed(mock: MockClient) -> None:
    faults = {"error_rate": 0.3, "error_after_commit_rate": 0.2, "seed": 7}
    first = await _outcomes(mock, faults)
    second = await _outcomes(mock, faults)
    assert first == second
    assert 503 in first and 200 in first
    other = await _outcomes(mock, {**faults, "seed": 8})
    assert other != first
    stats = await (await mock.get("/__mock__/stats")).json()
    assert stats["faults"]["error"] + stats["faults"]["error_after_commit"] == 3 * 40 - (first + second + other).count(
        200
    )


async def test_faults_apply_only_to_the_api(mock: MockClient) -> None:
    await mock.post("/__mock__/faults", json={"error_rate": 1.0})
    assert (await mock.get("/__mock__/state")).status == 200
    assert (await mock.get("/healthz")).status == 200


async def test_error_after_commit_applies_the_write(mock: MockClient) -> None:
    await mock.post("/__mock__/faults", json={"error_after_commit_rate": 1.0})
    response = await mock.post(MAILBOXES, json={"address": f"a@{DOMAIN}"})
    assert response.status == 503
    state = await (await mock.get("/__mock__/state")).json()
    assert [m["address"] for m in state["mailboxes"]] == [f"a@{DOMAIN}"]


async def test_latency_is_injected(mock: MockClient) -> None:
    await mock.post("/__mock__/faults", json={"latency_ms": 60, "latency_jitter_ms": 20, "seed": 1})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await mock.get(MAILBOXES)
    assert loop.time() - started >= 0.035


async def test_a_write_received_before_the_client_went_away_is_applied() -> None:
    # As on a real platform: once the request is in, the client dropping the connection (a
    # killed gateway) does not undo the write, even while the platform is still "working".
    # Served as ``scim-gateway mock-cleanmail`` serves it (the test server would cancel the handler).
    app = make_app()
    server_of_app = app[MOCK_KEY]
    server_of_app.faults.configure(FaultConfig(latency_ms=300))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        body = json.dumps({"address": f"gone@{DOMAIN}"}).encode()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST {MAILBOXES} HTTP/1.1\r\nHost: mock\r\nX-API-Key: {API_KEY}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        for _ in range(50):
            if server_of_app.store.mailboxes:
                break
            await asyncio.sleep(0.02)
        assert [m.address for m in server_of_app.store.mailboxes.values()] == [f"gone@{DOMAIN}"]
    finally:
        await runner.cleanup()


async def test_timeouts_hang_until_released(mock: MockClient) -> None:
    await mock.post("/__mock__/faults", json={"timeout_rate": 1.0, "timeout_hang_s": 30, "seed": 3})
    pending = asyncio.ensure_future(mock.post(MAILBOXES, json={"address": f"a@{DOMAIN}"}))
    await asyncio.sleep(0.1)
    assert not pending.done()
    await mock.post("/__mock__/reset")
    response = await asyncio.wait_for(pending, 2)
    assert response.status in (201, 504)


async def test_rate_limit_answers_429_with_retry_after(mock: MockClient) -> None:
    await mock.post("/__mock__/faults", json={"rate_limit_per_s": 2})
    statuses = [(await mock.get(MAILBOXES)).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = await mock.get(MAILBOXES)
    assert limited.status == 429 and limited.headers["Retry-After"] == "1"
    await mock.post("/__mock__/faults", json={"rate_limit_per_s": 1, "retry_after_http_date": True})
    await mock.get(MAILBOXES)
    dated = await mock.get(MAILBOXES)
    assert dated.headers["Retry-After"].endswith("GMT")


async def test_fault_settings_are_validated(mock: MockClient) -> None:
    for bad in ({"error_rate": 2}, {"latency_ms": -1}, {"seed": "x"}, {"nonsense": 1}, {"error_rate": True}):
        response = await mock.post("/__mock__/faults", json=bad)
        assert response.status == 400, bad
    assert (await mock.post("/__mock__/faults", data=b"[")).status == 400


async def test_data_survives_a_restart(aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path) -> None:
    data_file = tmp_path / "sub" / "mock.json"
    first = TestClient(TestServer(make_app(data_file=data_file)), headers=KEY_HEADER)
    await first.start_server()
    await first.post(MAILBOXES, json={"address": f"a@{DOMAIN}", "first_name": "A"})
    await first.post("/api/v1/lists", json={"address": f"l@{DOMAIN}", "members": [f"a@{DOMAIN}"]})
    await first.post("/api/v1/aliases", json={"address": f"alt@{DOMAIN}", "target": f"a@{DOMAIN}"})
    await first.close()  # the final flush happens on cleanup
    saved = json.loads(data_file.read_text())
    assert saved["mailboxes"][0]["address"] == f"a@{DOMAIN}"
    assert list(tmp_path.joinpath("sub").iterdir()) == [data_file]

    second = TestClient(TestServer(make_app(data_file=data_file)), headers=KEY_HEADER)
    await second.start_server()
    try:
        mailbox = await (await second.get(f"{MAILBOXES}/a@{DOMAIN}")).json()
        assert mailbox["first_name"] == "A"
        members = (await (await second.get(f"/api/v1/lists/l@{DOMAIN}")).json())["members"]
        assert members == [f"a@{DOMAIN}"]
        created = await (await second.post(MAILBOXES, json={"address": f"b@{DOMAIN}"})).json()
        assert created["id"] > max(mailbox["id"], saved["next_id"] - 1)
        # The list reverse index was rebuilt: deleting the member updates the list.
        await second.delete(f"{MAILBOXES}/a@{DOMAIN}")
        assert (await (await second.get(f"/api/v1/lists/l@{DOMAIN}")).json())["members"] == []
    finally:
        await second.close()


async def test_writes_are_flushed_while_running(mock_factory: Factory, tmp_path: Path) -> None:
    data_file = tmp_path / "mock.json"
    mock = await mock_factory(data_file=data_file, flush_delay=0.01)
    assert server_of(mock).persistence is not None
    await mock.post(MAILBOXES, json={"address": f"a@{DOMAIN}"})
    for _ in range(500):  # the flush runs in a worker thread: allow for a loaded machine
        if data_file.exists():
            break
        await asyncio.sleep(0.01)
    assert json.loads(data_file.read_text())["mailboxes"][0]["address"] == f"a@{DOMAIN}"


def test_app_exposes_its_server() -> None:
    app = make_app()
    assert app[MOCK_KEY].store.domains.keys() == {DOMAIN}
    assert API_KEY not in repr(app[MOCK_KEY])
