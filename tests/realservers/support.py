"""Real servers in tests (Postfix, Dovecot, slapd, Modoboa): install, ports, processes, skip-or-fail.

These servers are the tests' own business: a fixture installs what is missing (as root on
Debian, through apt-get), runs a throwaway instance on 127.0.0.1 at a free port and stops
it by PID. On a laptop where that is impossible the tests skip with the reason; in CI
(``CI=true``) or with ``REQUIRE_REAL_SERVERS=1`` they fail instead, so a broken install can
never turn the suite green by skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

APT_TIMEOUT_S = 900


def real_servers_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("REQUIRE_REAL_SERVERS", "") == "1"


def unavailable(what: str, reason: str) -> None:
    """Skip the test (fail it when real servers are required) because ``what`` cannot run here."""
    message = f"{what} is not available: {reason}"
    if real_servers_required():
        pytest.fail(f"{message}; CI=true or REQUIRE_REAL_SERVERS=1 demands it", pytrace=False)
    pytest.skip(message)


def cache_dir(*parts: str) -> Path:
    """A directory kept between test runs (and CI runs on the same machine), for slow installs."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base.joinpath("scim-mail-gateway", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; raise if it does not in time (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process has not gone within ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _missing_packages(packages: Iterable[str]) -> list[str]:
    missing = []
    for package in packages:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in status.stdout:
            missing.append(package)
    return missing


def apt_install(what: str, packages: list[str], debconf: Mapping[str, str] | None = None) -> None:
    """Make sure the Debian ``packages`` are installed, or skip/fail naming ``what``.

    Installs only as root on a machine with apt-get; no service is started by the install
    (a policy-rc.d that refuses is put in place when there is none).
    """
    if shutil.which("dpkg-query") is None:
        unavailable(what, "this is not a Debian-based system (no dpkg-query)")
    missing = _missing_packages(packages)
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        unavailable(what, f"Debian packages missing: {' '.join(missing)} (install them, or run the tests as root)")
    policy = Path("/usr/sbin/policy-rc.d")
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    if debconf:
        answers = "".join(f"{key} {value}\n" for key, value in debconf.items())
        subprocess.run(["debconf-set-selections"], input=answers, text=True, check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    if result.returncode != 0:
        # The package lists may be stale or absent on a fresh machine: refresh once and retry.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=APT_TIMEOUT_S)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    if result.returncode != 0:
        unavailable(what, f"apt-get install {' '.join(missing)} failed: {result.stderr.strip()[-500:]}")
