"""Per-tenant fairness: one tenant's bulk initial sync must not slow another tenant's cycle.

Two tenants share one gateway process; each has its own mock mail platform (20 ms per call),
as two customers of a hosting provider would, so what is measured is the gateway. The
"steady" tenant runs Entra's incremental cycle (filter GETs at low concurrency); its latency is
measured alone, then while the "bulk" tenant floods the gateway with creates at c=64. Each
tenant has its own backend concurrency budget, so bulk's excess waits in bulk's own queue (and
gets 429 once it has waited too long) instead of taking steady's slots.

    python -m bench.fairness [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import Proc, core_plan, free_port, install_cleanup, stop_all, wait_port
from bench.pyload import percentile

LATENCY_MS = 20
STEADY_TOKEN = "steady-tenant-token-0123456789"
BULK_TOKEN = "bulk-tenant-token-0123456789"
BOUND = "steady tenant's p99 under the other tenant's flood ≤ 1.5× its p99 alone (+5 ms for timer noise)"


def _config(path: Path, steady_port: int, bulk_port: int, state: Path) -> None:
    from gateway.tenants import hash_token

    path.write_text(f"""
[gateway]
state = "sqlite:///{state}"
log_level = "warning"

[tenants.steady]
token_hashes = ["{hash_token(STEADY_TOKEN)}"]
domains = ["steady.example"]
concurrency = 8

[tenants.steady.backend]
adapter = "cleanmail"
url = "http://127.0.0.1:{steady_port}"
api_key = "k"
list_domain = "steady.example"

[tenants.bulk]
token_hashes = ["{hash_token(BULK_TOKEN)}"]
domains = ["bulk.example"]
concurrency = 8
queue_timeout = 1.0

[tenants.bulk.backend]
adapter = "cleanmail"
url = "http://127.0.0.1:{bulk_port}"
api_key = "k"
list_domain = "bulk.example"
""")


async def _steady(url: str, seconds: float, users: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {STEADY_TOKEN}"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker(offset: int) -> None:
            n = offset
            while time.perf_counter() < stop:
                name = f"user{n % users}@steady.example"
                t0 = time.perf_counter()
                async with session.get(f"{url}/Users", params={"filter": f'userName eq "{name}"'}) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append((time.perf_counter() - t0) * 1000)
                n += 2

        await asyncio.gather(worker(0), worker(1))
    latencies.sort()
    return {"requests": len(latencies), "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "statuses": statuses}


def _bulk_process(url: str, seconds: float, out: Any) -> None:
    """The flood, in a process of its own so it competes for the gateway, not for our client."""

    async def flood() -> dict[int, int]:
        statuses: dict[int, int] = {}
        stop = time.perf_counter() + seconds
        counter = 0
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {BULK_TOKEN}"}) as session:

            async def worker() -> None:
                nonlocal counter
                while time.perf_counter() < stop:
                    counter += 1
                    body = {"userName": f"bulk{os.getpid()}-{counter}@bulk.example"}
                    async with session.post(f"{url}/Users", json=body) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1

            await asyncio.gather(*[worker() for _ in range(64)])
        return statuses

    out.put(asyncio.run(flood()))


async def _seed(url: str, users: int) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {STEADY_TOKEN}"}) as session:
        for n in range(users):
            async with session.post(f"{url}/Users", json={"userName": f"user{n}@steady.example"}) as resp:
                if resp.status not in (201, 409):
                    raise RuntimeError(f"seeding failed: {resp.status} {await resp.text()}")


def measure(seconds: float = 6.0, users: int = 50, work_dir: Path | None = None) -> dict[str, Any]:
    install_cleanup()
    server_cpus, load_cpus = core_plan()
    work = work_dir or Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    steady_port, bulk_port, gateway_port = free_port(), free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    mocks = [
        Proc(f"mock-{name}", [str(bin_dir / "scim-gateway"), "mock-cleanmail", "--port", str(port), "--api-key", "k",
                              "--control", "--auto-create-domains"], cpus=load_cpus, log=work / f"mock-{name}.log")
        for name, port in (("steady", steady_port), ("bulk", bulk_port))
    ]
    config = work / "gateway.toml"
    _config(config, steady_port, bulk_port, work / "state.sqlite3")
    try:
        for mock, port in zip(mocks, (steady_port, bulk_port), strict=True):
            wait_port(port, 20, mock)

        async def set_latency() -> None:
            async with aiohttp.ClientSession() as session:
                for port in (steady_port, bulk_port):
                    await session.post(f"http://127.0.0.1:{port}/__mock__/faults", json={"latency_ms": LATENCY_MS})

        asyncio.run(set_latency())
        gateway = Proc("gateway", [str(bin_dir / "scim-gateway"), "serve", "--config", str(config),
                                   "--port", str(gateway_port)], cpus=server_cpus, log=work / "gateway.log")
        wait_port(gateway_port, 20, gateway)
        url = f"http://127.0.0.1:{gateway_port}/scim/v2"
        asyncio.run(_seed(url, users))
        alone = asyncio.run(_steady(url, seconds, users))
        queue: Any = multiprocessing.get_context("spawn").Queue()
        flood = multiprocessing.get_context("spawn").Process(target=_bulk_process, args=(url, seconds + 1.0, queue))
        flood.start()
        with_flood: dict[str, Any] = {}
        try:
            time.sleep(0.5)  # let the flood fill bulk's queue first
            with_flood = asyncio.run(_steady(url, seconds, users))
            bulk_statuses = queue.get(timeout=seconds + 30)
        finally:
            flood.join(timeout=10)
            if flood.is_alive():
                flood.kill()
    finally:
        stop_all()
    limit = alone["p99_ms"] * 1.5 + 5
    return {
        "latency_ms": LATENCY_MS,
        "steady_alone": alone,
        "steady_with_flood": with_flood,
        "bulk_statuses": bulk_statuses,
        "p99_ratio": round(with_flood["p99_ms"] / alone["p99_ms"], 2) if alone["p99_ms"] else None,
        "bound": BOUND,
        "bound_ms": round(limit, 2),
        "met": with_flood["p99_ms"] <= limit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the result to this JSON file")
    args = parser.parse_args()
    result = measure(args.seconds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
