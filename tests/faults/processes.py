"""The mock Cleanmail API and the gateway as real processes, for tests that kill them.

The gateway is started with ``scim-gateway serve`` exactly as an operator starts it
(settings from ``SCIM_GATEWAY_*`` variables), and can be SIGKILLed and started again on
the same port and the same state as often as a test likes. Its log accumulates across
restarts in one file, so a failure shows what every incarnation did.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def command() -> list[str]:
    script = Path(sys.executable).parent / "scim-gateway"
    if script.exists():
        return [str(script)]
    found = shutil.which("scim-gateway")
    return [found] if found else [sys.executable, "-m", "gateway.cli"]


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any gateway setting, plus ``settings`` as SCIM_GATEWAY_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_GATEWAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({f"SCIM_GATEWAY_{k.upper()}": v for k, v in settings.items()})
    return env


def tail(log: Path, lines: int = 40, width: int = 400) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    return f"--- {log} (last {lines} lines)\n" + "\n".join(line[:width] for line in text[-lines:])


class Process:
    """One long-running command on a fixed port; ``start`` again after ``kill`` reuses both port and log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, **extra_settings: str) -> None:
        """Start (again) and wait until healthy; ``extra_settings`` hold for this start only."""
        self._launch({**self.env, **{f"SCIM_GATEWAY_{k.upper()}": v for k, v in extra_settings.items()}})
        await self.wait_healthy()

    def _launch(self, env: dict[str, str]) -> None:
        self.starts += 1
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            out.write(f"=== start {self.starts} of {self.name}\n".encode())
            out.flush()
            self.proc = subprocess.Popen([*command(), *self.args, "--port", str(self.port)], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        timeout = aiohttp.ClientTimeout(total=1)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    code = self.proc.returncode if self.proc is not None else None
                    pytest.fail(f"{self.name} exited with {code} before it was healthy\n{tail(self.log)}")
                try:
                    async with session.get(f"{self.url}/healthz") as reply:
                        if reply.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.02)
        pytest.fail(f"{self.name} not healthy at {self.url} within {START_TIMEOUT:g}s\n{tail(self.log)}")

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no finished requests, nothing flushed but what the kernel already has."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 10)

    async def stop(self) -> int | None:
        """SIGTERM (a graceful stop), SIGKILL if that takes too long; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 5)
        return self.proc.returncode

    def reap(self) -> None:
        """Make sure nothing is left running (fixture teardown; synchronous)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


async def post_control(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body) as reply:
        answer: dict[str, Any] = await reply.json()
        assert reply.status == 200, f"POST {url}: {reply.status} {answer}"
        return answer
