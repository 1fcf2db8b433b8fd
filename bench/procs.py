"""Child processes of a benchmark run: started pinned to a core, always bounded, always reaped.

Every server and load generator the harness starts is registered here; ``stop_all`` (also run
at exit, on SIGTERM/SIGINT and by the run's watchdog) ends each one by its own process id.
Only 127.0.0.1 is ever used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

_children: list[Proc] = []
NICE = 0  # scheduling priority for every child (set by bench.run --nice)
_lock = threading.Lock()


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def core_plan() -> tuple[set[int], set[int]]:
    """(server cores, load cores): the server gets one core, the load generator another.

    On a single-core machine both share it (and the results say so).
    """
    available = cores()
    if len(available) >= 2:
        return {available[0]}, {available[1]}
    return {available[0]}, {available[0]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before listening; see {proc.log}")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout:.0f}s" + (f"; see {proc.log}" if proc else ""))


class Proc:
    """One child process in its own session, pinned to ``cpus``, output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, cpus: set[int], log: Path,
                 env: dict[str, str] | None = None, stdout_pipe: bool = False, unset: Sequence[str] = ()) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
        self.popen = subprocess.Popen(
            list(argv), env=full_env, cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log_file, stderr=self._log_file,
            start_new_session=True,
        )
        with contextlib.suppress(OSError):
            os.sched_setaffinity(self.popen.pid, cpus)
            if NICE:
                os.setpriority(os.PRIO_PROCESS, self.popen.pid, NICE)
        with _lock:
            _children.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log_file.close()
        with _lock:
            if self in _children:
                _children.remove(self)


def stop_all() -> None:
    with _lock:
        children = list(_children)
    for child in reversed(children):
        with contextlib.suppress(Exception):
            child.stop(grace=2.0)


def run_bounded(argv: Sequence[str], *, cpus: set[int], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a short-lived tool (wrk, py-spy) pinned to ``cpus``; killed if it outlives ``timeout``."""
    popen = subprocess.Popen(list(argv), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(popen.pid, cpus)
        if NICE:
            os.setpriority(os.PRIO_PROCESS, popen.pid, NICE)
    try:
        out, err = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(popen.pid, signal.SIGKILL)
        out, err = popen.communicate()
        raise TimeoutError(f"{argv[0]} did not finish within {timeout:.0f}s: {err[-500:]}") from None
    return subprocess.CompletedProcess(list(argv), popen.returncode, out, err)


class Watchdog:
    """Ends the whole run (children first) if it outlives its budget."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._timer = threading.Timer(budget_s, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        print(f"\nbench: the run exceeded its {self.budget_s:.0f}s budget; stopping every child process",
              file=sys.stderr, flush=True)
        stop_all()
        os._exit(3)

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _on_signal(signum: int, frame: object) -> None:
    stop_all()
    sys.exit(128 + signum)


def install_cleanup() -> None:
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):  # not the main thread (e.g. inside pytest-xdist)
            signal.signal(sig, _on_signal)


# --- CPU accounting ------------------------------------------------------------------------
# A shared machine runs other work beside the benchmark. Two figures make results comparable
# anyway: the server's own CPU time per request (what a request costs, whatever else runs),
# and how much of the server's core other processes took during the measurement.

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _core_times() -> dict[int, tuple[float, float, float]]:
    """core → (busy s, steal s, total s) since boot."""
    times: dict[int, tuple[float, float, float]] = {}
    with open("/proc/stat") as handle:
        for line in handle:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *values = line.split()
            v = [int(x) for x in values]
            idle = v[3] + v[4]
            steal = v[7] if len(v) > 7 else 0
            total = sum(v[:8])
            times[int(name[3:])] = ((total - idle - steal) / TICK, steal / TICK, total / TICK)
    return times


def wait_cores_idle(cores: set[int], *, busy_pct: float = 10.0, window_s: float = 0.2, timeout_s: float = 5.0
                    ) -> float:
    """Wait until ``cores`` are quiet (below ``busy_pct`` over one window); returns the seconds waited.

    A server still working off the queue its last load run left (a slow peer holds up to one
    request per connection, hundreds of ms of CPU) would otherwise steal the first part of the
    next server's run on the same core: it showed as 100-200 ms outliers in that run's p99.
    """
    started = time.monotonic()
    while True:
        before = _core_times()
        time.sleep(window_s)
        after = _core_times()
        busy = sum(after[c][0] - before[c][0] for c in cores if c in after)
        total = sum(after[c][2] - before[c][2] for c in cores if c in after)
        waited = time.monotonic() - started
        if (total and 100 * busy / total < busy_pct) or waited >= timeout_s:
            return waited


class CpuMeter:
    """Server CPU and foreign load on the server's cores over one measurement."""

    def __init__(self, pid: int, cores: set[int]) -> None:
        self.pid = pid
        self.cores = cores

    def __enter__(self) -> CpuMeter:
        self._t0 = time.monotonic()
        self._cpu0 = process_cpu_s(self.pid)
        self._cores0 = _core_times()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._t0
        server = process_cpu_s(self.pid) - self._cpu0
        after = _core_times()
        busy = sum(after[c][0] - self._cores0[c][0] for c in self.cores if c in after)
        steal = sum(after[c][1] - self._cores0[c][1] for c in self.cores if c in after)
        capacity = wall * len(self.cores)
        self.wall_s = wall
        self.server_cpu_s = server
        self.server_pct = 100 * server / capacity if capacity else 0.0
        self.foreign_pct = max(0.0, 100 * (busy - server) / capacity) if capacity else 0.0
        self.steal_pct = 100 * steal / capacity if capacity else 0.0

    def to_json(self, requests: int) -> dict[str, float]:
        return {
            "server_cpu_pct": round(self.server_pct, 1),
            "foreign_cpu_pct": round(self.foreign_pct, 1),
            "steal_pct": round(self.steal_pct, 1),
            "server_cpu_us_per_req": round(1e6 * self.server_cpu_s / requests, 1) if requests else 0.0,
        }
