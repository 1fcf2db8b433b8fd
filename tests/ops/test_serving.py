"""``scim-gateway serve``: native TLS, and a graceful stop on SIGTERM that lets a create finish."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from gateway.http.app import create_app
from gateway.serving import tls_context
from gateway.store.sqlite import SqliteStore
from tests.conftest import AUTH, BASE, TOKEN, make_settings
from tests.ops.conftest import API_KEY, DOMAIN, MockBackend, free_port, user

START_TIMEOUT = 15.0


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    paths = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(paths.ca))
    issued.private_key_pem.write_to_path(str(paths.key))
    with open(paths.cert, "wb") as chain:
        for blob in issued.cert_chain_pems:
            chain.write(blob.bytes())
    return paths


def client_context(certs: Certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca))


# --- TLS in process -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_handshake_with_a_private_ca(certs: Certs) -> None:
    runner = web.AppRunner(create_app(make_settings()))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls_context(certs.cert, certs.key)).start()
    try:
        trusted = client_context(certs)
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trusted, server_hostname="localhost")
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        writer.close()

        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.get(f"https://localhost:{port}/healthz", ssl=trusted) as reply:
                assert reply.status == 200
            async with session.post(f"https://localhost:{port}{BASE}/Users", json=user("tls@example.ch"),
                                    ssl=trusted) as reply:
                assert reply.status == 201
                assert reply.headers["Location"].startswith(f"https://localhost:{port}/scim/v2/Users/")

            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://localhost:{port}/healthz", ssl=ssl.create_default_context())

            legacy = client_context(certs)
            legacy.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            legacy.maximum_version = ssl.TLSVersion.TLSv1_1
            with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
                await session.get(f"https://localhost:{port}/healthz", ssl=legacy)
    finally:
        await runner.cleanup()


def test_tls_context_refuses_versions_before_1_2(certs: Certs) -> None:
    assert tls_context(certs.cert, certs.key).minimum_version == ssl.TLSVersion.TLSv1_2


# --- the real process -----------------------------------------------------------------


def _command() -> list[str]:
    script = Path(sys.executable).parent / "scim-gateway"
    if script.exists():
        return [str(script)]
    found = shutil.which("scim-gateway")
    return [found] if found else [sys.executable, "-m", "gateway.cli"]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_GATEWAY_")}
    env.update({"SCIM_GATEWAY_TOKEN": TOKEN, "SCIM_GATEWAY_STATE": "memory", "SCIM_GATEWAY_LOG_FORMAT": "json"})
    env.update({f"SCIM_GATEWAY_{k.upper()}": v for k, v in settings.items()})
    return env


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _spawn(procs: list[subprocess.Popen[bytes]], log: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([*_command(), "serve", "--port", str(port)], env=_env(**settings),
                                stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    return proc


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, ssl_context: ssl.SSLContext | None = None
                        ) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"gateway exited with {proc.returncode}:\n{_read(log)}")
            try:
                async with session.get(f"{url}/healthz", ssl=ssl_context) as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail(f"gateway not healthy at {url}:\n{_read(log)}")


async def test_serve_over_tls(certs: Certs, tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    port, log = free_port(), tmp_path / "gateway.log"
    proc = _spawn(processes, log, port, tls_cert_file=str(certs.cert), tls_key_file=str(certs.key))
    await _wait_healthy(f"https://localhost:{port}", proc, log, client_context(certs))
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0
    assert f"https://127.0.0.1:{port}/scim/v2" in _read(log)


@pytest.mark.parametrize(("settings", "message"), [
    ({"tls_cert_file": "/nonexistent/cert.pem"}, "tls_key_file"),
    ({"tls_cert_file": "/nonexistent/cert.pem", "tls_key_file": "/nonexistent/key.pem"}, "TLS certificate or key"),
])
def test_tls_misconfiguration_stops_the_process(tmp_path: Path, processes: list[subprocess.Popen[bytes]],
                                                settings: dict[str, str], message: str) -> None:
    log = tmp_path / "gateway.log"
    proc = _spawn(processes, log, free_port(), **settings)
    assert proc.wait(15) == 2
    assert message in _read(log)


async def test_sigterm_lets_an_in_flight_create_finish_exactly_once(
    mock_backend: MockBackend, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    # Duplicates allowed, as on some legacy platforms: only the gateway stands between a retry and a second mailbox.
    mock_backend.server.store.quirks = mock_backend.server.quirks.merged({"reject_duplicates": False})
    port, log, state = free_port(), tmp_path / "gateway.log", tmp_path / "state.sqlite3"
    proc = _spawn(processes, log, port, backend="cleanmail", cleanmail_url=mock_backend.url,
                  cleanmail_api_key=API_KEY, cleanmail_domain=DOMAIN, state=f"sqlite:///{state}")
    url = f"http://127.0.0.1:{port}"
    await _wait_healthy(url, proc, log)
    async with aiohttp.ClientSession() as session:
        # Only the create is slow, so SIGTERM lands while the mailbox is being created.
        slow_create = {"latency_ms": 1500, "methods": ["POST"]}
        async with session.post(f"{mock_backend.url}/__mock__/faults", json=slow_create) as reply:
            assert reply.status == 200
        create = asyncio.ensure_future(session.post(f"{url}{BASE}/Users", json=user(f"term@{DOMAIN}"), headers=AUTH))
        while mock_backend.server.stats.calls["POST /api/v1/mailboxes"] == 0:
            assert not create.done(), await create.result().text()
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        reply = await create
        assert reply.status == 201, await reply.text()
        assert await asyncio.to_thread(proc.wait, 15) == 0
        async with session.get(f"{mock_backend.url}/__mock__/state") as snapshot:
            mailboxes = [m["address"] for m in (await snapshot.json())["mailboxes"]]
    assert mailboxes.count(f"term@{DOMAIN}") == 1

    store = SqliteStore(str(state))
    await store.open()
    try:
        assert await store.journal_pending("default") == []
        mapped = await store.get_by_key("default", "User", f"term@{DOMAIN}")
        assert mapped is not None and mapped.id == (await reply.json())["id"]
    finally:
        await store.close()
    text = _read(log)
    assert "shutting down" in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" and line.get("status") == 201 for line in lines)
