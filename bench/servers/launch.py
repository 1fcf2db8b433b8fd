"""Start the servers the benchmark measures, each pinned to the server core."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import procs

TOKEN = "bench-token-5f1c0e7a"
MOCK_KEY = "bench-mock-key-91d2"
GATEWAY_BASE = "/scim/v2"
PEER_BASE = "/v2"


@dataclass
class Server:
    name: str
    proc: procs.Proc
    url: str
    base: str
    token: str = TOKEN
    gc_stats: bool = False  # serves /__bench__/gc (bench.servers.seeded)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.stop()


def gateway_env(state: str, backend: str = "memory", mock_url: str | None = None) -> dict[str, str]:
    env = {
        "SCIM_GATEWAY_TOKEN": TOKEN,
        "SCIM_GATEWAY_BACKEND": backend,
        "SCIM_GATEWAY_STATE": state,
        "SCIM_GATEWAY_LOG_LEVEL": "warning",  # keep the access log out of the measurement
        "SCIM_GATEWAY_LOG_FORMAT": "json",
    }
    if backend == "cleanmail":
        env.update({
            "SCIM_GATEWAY_CLEANMAIL_URL": mock_url or "",
            "SCIM_GATEWAY_CLEANMAIL_API_KEY": MOCK_KEY,
            "SCIM_GATEWAY_CLEANMAIL_DOMAIN": "example.com",
        })
    return env


def start_gateway(name: str, logs: Path, cpus: set[int], *, state: str = "memory", backend: str = "memory",
                  mock_url: str | None = None) -> Server:
    port = procs.free_port()
    proc = procs.Proc(name, [str(procs.VENV_BIN / "scim-gateway"), "serve", "--port", str(port)], cpus=cpus,
                      log=logs / f"{name}.log", env=gateway_env(state, backend, mock_url))
    procs.wait_port(port, 30, proc)
    return Server(name, proc, f"http://{procs.HOST}:{port}", GATEWAY_BASE)


def start_seeded_gateway(name: str, logs: Path, cpus: set[int], *, state: str, users: int,
                         pg_schema: str | None = None) -> tuple[Server, dict[str, float]]:
    """The gateway on the memory backend with ``users`` users seeded through its service layer."""
    port = procs.free_port()
    extra = ["--pg-schema", pg_schema] if pg_schema else []
    proc = procs.Proc(name, [sys.executable, "-m", "bench.servers.seeded", "--port", str(port),
                             "--users", str(users), *extra],
                      cpus=cpus, log=logs / f"{name}.log", env=gateway_env(state), stdout_pipe=True)
    procs.wait_port(port, 60 + users / 200, proc)
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline().decode()
    info = json.loads(line) if line.startswith("{") else {}
    return Server(name, proc, f"http://{procs.HOST}:{port}", GATEWAY_BASE, gc_stats=True), info


def start_bare(name: str, logs: Path, cpus: set[int], loop: str = "uvloop") -> Server:
    port = procs.free_port()
    proc = procs.Proc(name, [sys.executable, "-m", "bench.servers.bare", "--port", str(port), "--loop", loop],
                      cpus=cpus, log=logs / f"{name}.log")
    procs.wait_port(port, 30, proc)
    return Server(name, proc, f"http://{procs.HOST}:{port}", GATEWAY_BASE)


def start_bare_proxy(name: str, logs: Path, cpus: set[int], mock: Server) -> Server:
    port = procs.free_port()
    proc = procs.Proc(name, [sys.executable, "-m", "bench.servers.bare_proxy", "--port", str(port),
                             "--backend", mock.url, "--api-key", MOCK_KEY],
                      cpus=cpus, log=logs / f"{name}.log")
    procs.wait_port(port, 30, proc)
    return Server(name, proc, f"http://{procs.HOST}:{port}", "/api/v1", token="")


def start_peer(name: str, logs: Path, cpus: set[int]) -> Server:
    port = procs.free_port()
    proc = procs.Proc(name, [sys.executable, "-m", "bench.servers.peer", "--port", str(port), "--token", TOKEN],
                      cpus=cpus, log=logs / f"{name}.log")
    procs.wait_port(port, 60, proc)
    return Server(name, proc, f"http://{procs.HOST}:{port}", PEER_BASE)


def start_mock(name: str, logs: Path, cpus: set[int]) -> Server:
    port = procs.free_port()
    proc = procs.Proc(name, [str(procs.VENV_BIN / "scim-gateway"), "mock-cleanmail", "--port", str(port),
                             "--api-key", MOCK_KEY, "--control", "--auto-create-domains",
                             "--domain", "example.com"],
                      cpus=cpus, log=logs / f"{name}.log")
    procs.wait_port(port, 30, proc)
    return Server(name, proc, f"http://{procs.HOST}:{port}", "/api/v1", token="")


def peer_available() -> bool:
    try:
        import scim2_server  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True
