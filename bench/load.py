"""Run one load measurement with wrk (preferred) or the aiohttp generator, in its own process.

Why wrk: one wrk thread (C, epoll, HTTP/1.1 keep-alive) drives well over 50,000 requests/s
on one core, so on the load core it is never the bottleneck, even against bare aiohttp at
~10,000 requests/s; a Python client on one core tops out near the servers it measures and
would flatten the ratios. wrk comes from Debian's package (``apt-get install wrk``). Its Lua
script renders the same requests as ``bench.scenarios.python_request``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.pyload import spec_for
from bench.scenarios import Target, lua


@dataclass
class LoadResult:
    scenario: str
    concurrency: int
    generator: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "concurrency": self.concurrency, "generator": self.generator,
            "requests": self.requests, "duration_s": round(self.duration_s, 3), "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3), "p90_ms": round(self.p90_ms, 3), "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3), "mean_ms": round(self.mean_ms, 3), "errors": self.errors,
        }


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _parse(stdout: str, scenario: str, concurrency: int, generator: str) -> LoadResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"{generator} printed no report: {stdout[-800:]}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    lat = data["latency_us"]
    duration = data["duration_us"] / 1e6
    errors = {k: int(v) for k, v in data["errors"].items()}
    # ``requests`` counts complete responses, a non-2xx/3xx one also in errors.status: rps counts successes.
    ok = data["requests"] - errors.get("status", 0)
    return LoadResult(
        scenario=scenario, concurrency=concurrency, generator=generator, requests=data["requests"],
        duration_s=duration, rps=(ok / duration) if duration else 0.0,
        p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000, mean_ms=float(lat["mean"]) / 1000, errors=errors,
    )


def run_load(scenario: str, target: Target, url: str, concurrency: int, *, duration_s: float = 0.0,
             max_requests: int = 0, cpus: set[int], generator: str = "auto", workdir: Path | None = None,
             seed: int = 42) -> LoadResult:
    """Drive ``url`` with ``scenario`` at ``concurrency`` for ``duration_s`` seconds (or ``max_requests``,
    Python generator only)."""
    use_wrk = generator == "wrk" or (generator == "auto" and wrk_path() is not None and not max_requests)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if use_wrk:
        exe = wrk_path()
        if exe is None:
            raise RuntimeError("wrk is not installed (apt-get install wrk), use --generator python")
        script = workdir / f"{scenario}-{target.tag}.lua"
        script.write_text(lua(scenario, target, seed))
        seconds = max(1, round(duration_s))
        argv = [exe, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url]
        done = procs.run_bounded(argv, cpus=cpus, timeout=seconds + 30)
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-800:]}")
        return _parse(done.stdout, scenario, concurrency, "wrk")
    spec = workdir / f"{scenario}-{target.tag}.json"
    spec.write_text(json.dumps(spec_for(scenario, target, url, concurrency, duration_s, max_requests, seed)))
    budget = (duration_s or 0) + 60 + (max_requests / 50 if max_requests else 0)
    done = procs.run_bounded([sys.executable, "-m", "bench.pyload", str(spec)], cpus=cpus, timeout=budget)
    if done.returncode != 0:
        raise RuntimeError(f"bench.pyload failed ({done.returncode}): {done.stderr[-800:]}")
    return _parse(done.stdout, scenario, concurrency, "python")
