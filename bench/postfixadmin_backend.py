"""The postfixadmin backend on local PostgreSQL: round trips per SCIM operation, added latency, the initial cycle.

    python -m bench.postfixadmin_backend [--users 10000] [--reps 200] [--out FILE.json]

A throwaway PostgreSQL database gets PostfixAdmin 4.0.5's schema; the gateway serves it from
its own process (``serve`` below: the usual app, plus ``/__bench__/stats`` with the adapter's
counters), pinned to one core, and this process drives it from another:

* per operation, sequentially (c=1): the client's latency, the database round trips the
  adapter made, and the time it waited for the database's answers; what is left is the
  gateway's added latency (HTTP, SCIM, state store, adapter) over the database's own time;
* Entra's initial cycle: N users (filter miss → POST), N/100 groups (filter miss → POST), and
  memberships (PATCH add, 10 per request) at concurrency 16; wall time against the database's
  own time divided by the concurrency.

Everything runs on 127.0.0.1 and is stopped at the end; the database is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from bench import procs
from bench.scenarios import group_body, member_add_body, patch_active_body, patch_replace_body, user_body

DEFAULT_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TOKEN = "bench-postfixadmin-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
DOMAIN = "bench.example"
LIST_DOMAIN = "lists.bench.example"
CONCURRENCY = 16


# --- the server side ----------------------------------------------------------------------------


def serve(port: int) -> None:
    """The gateway on the postfixadmin backend (settings from the environment), with the adapter's counters."""
    from aiohttp import web

    from gateway.config import Settings
    from gateway.http.app import create_app
    from gateway.wiring import make_adapter

    settings = Settings()
    adapter = make_adapter("default", settings.effective_tenants()["default"], from_env=True)
    app = create_app(settings, adapter=adapter)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(adapter.statistics())  # type: ignore[attr-defined]

    app.router.add_get("/__bench__/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the database -------------------------------------------------------------------------------


async def create_database(admin_dsn: str) -> tuple[str, str]:
    """A fresh database with PostfixAdmin's schema and the bench domains: (its name, its DSN)."""
    from adapters.postfixadmin.schema import schema_statements

    name = f"bench_pfa_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        for statement in schema_statements("postgresql"):
            await conn.execute(statement)
        for domain in (DOMAIN, LIST_DOMAIN):
            await conn.execute("INSERT INTO domain (domain, description, transport, created, modified)"
                               " VALUES ($1, 'bench', 'virtual', NOW(), NOW())", domain)
    finally:
        await conn.close()
    return name, dsn


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


# --- the client side ----------------------------------------------------------------------------


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201, 204)
                   ) -> Any:
        data = json.dumps(body) if body is not None else None
        async with self.session.request(method, f"{self.base}/scim/v2{path}", data=data, headers=HEADERS) as reply:
            text = await reply.text()
            if reply.status not in expect:
                raise RuntimeError(f"{method} {path}: {reply.status} {text[:300]}")
            return json.loads(text) if text else None

    async def stats(self) -> dict[str, int]:
        async with self.session.get(f"{self.base}/__bench__/stats") as reply:
            result: dict[str, int] = await reply.json()
            return result


def _filter(user_name: str) -> str:
    return f'/Users?filter=userName+eq+"{user_name}"'


async def per_operation(client: Client, reps: int) -> list[dict[str, Any]]:
    """Each Entra operation ``reps`` times in a row: latency, round trips, database wait."""
    tag = uuid.uuid4().hex[:6]
    members = [await client.call("POST", "/Users", user_body(f"member{i}-{tag}@{DOMAIN}", f"m{i}{tag}"))
               for i in range(reps)]
    group = await client.call("POST", "/Groups", group_body(f"Bench {tag}", f"g{tag}"))
    made: list[dict[str, Any]] = []

    operations: dict[str, Any] = {
        "filter userName (hit)": lambda i: ("GET", _filter(members[i]["userName"]), None),
        "filter userName (miss)": lambda i: ("GET", _filter(f"nobody{i}-{tag}@{DOMAIN}"), None),
        "POST /Users": lambda i: ("POST", "/Users", user_body(f"new{i}-{tag}@{DOMAIN}", f"n{i}{tag}")),
        "GET /Users/{id}": lambda i: ("GET", f"/Users/{members[i]['id']}", None),
        "PATCH active false (E10)": lambda i: ("PATCH", f"/Users/{members[i]['id']}", patch_active_body(False)),
        "PATCH familyName (E8, shadow only)": lambda i: ("PATCH", f"/Users/{members[i]['id']}",
                                                         patch_replace_body(f"Family{i}")),
        "PATCH userName (rename)": lambda i: ("PATCH", f"/Users/{members[i]['id']}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "userName", "value": f"moved{i}-{tag}@{DOMAIN}"}]}),
        "PATCH group member add (E19)": lambda i: ("PATCH", f"/Groups/{group['id']}",
                                                   member_add_body([members[i]["id"]])),
        "DELETE /Users/{id}": lambda i: ("DELETE", f"/Users/{made[i]['id']}", None),
    }
    rows = []
    for name, make in operations.items():
        latencies: list[float] = []
        before = await client.stats()
        for i in range(reps):
            method, path, body = make(i)
            started = time.perf_counter()
            answer = await client.call(method, path, body)
            latencies.append((time.perf_counter() - started) * 1e6)
            if name == "POST /Users":
                made.append(answer)
        after = await client.stats()
        trips = (after["round_trips"] - before["round_trips"]) / reps
        waited = (after["database_us"] - before["database_us"]) / reps
        p50 = statistics.median(latencies)
        rows.append({"operation": name, "round_trips": round(trips, 2), "p50_us": round(p50),
                     "database_us": round(waited), "added_us": round(p50 - waited)})
    return rows


async def initial_cycle(client: Client, users: int) -> dict[str, Any]:
    """Entra's first cycle at concurrency 16: users, then groups, then memberships 10 per PATCH."""
    tag = uuid.uuid4().hex[:6]
    before = await client.stats()
    started = time.perf_counter()
    ids: list[str] = []

    async def run_all(jobs: list[Any]) -> list[Any]:
        queue = list(reversed(jobs))
        results: list[Any] = []

        async def worker() -> None:
            while queue:
                results.append(await queue.pop()())

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return results

    def user_job(i: int) -> Any:
        async def job() -> str:
            name = f"u{i}-{tag}@{DOMAIN}"
            await client.call("GET", _filter(name))
            created = await client.call("POST", "/Users", user_body(name, f"e{i}{tag}"))
            return str(created["id"])
        return job

    ids = await run_all([user_job(i) for i in range(users)])
    groups = max(1, users // 100)

    def group_job(i: int) -> Any:
        async def job() -> str:
            name = f"Cycle {tag} {i}"
            await client.call("GET", f'/Groups?filter=displayName+eq+"{name}"')
            created = await client.call("POST", "/Groups", group_body(name, f"g{i}{tag}"))
            return str(created["id"])
        return job

    group_ids = await run_all([group_job(i) for i in range(groups)])
    per_group = len(ids) // len(group_ids)

    def member_job(group_id: str, batch: list[str]) -> Any:
        async def job() -> None:
            await client.call("PATCH", f"/Groups/{group_id}", member_add_body(batch))
        return job

    jobs = []
    for g, group_id in enumerate(group_ids):
        mine = ids[g * per_group:(g + 1) * per_group]
        jobs += [member_job(group_id, mine[k:k + 10]) for k in range(0, len(mine), 10)]
    await run_all(jobs)
    wall = time.perf_counter() - started
    after = await client.stats()
    database_s = (after["database_us"] - before["database_us"]) / 1e6
    bound = database_s / CONCURRENCY
    return {"users": users, "groups": groups, "membership_patches": len(jobs), "concurrency": CONCURRENCY,
            "wall_s": round(wall, 1), "round_trips": after["round_trips"] - before["round_trips"],
            "database_s": round(database_s, 1), "database_bound_s": round(bound, 1),
            "ratio_to_database_bound": round(wall / bound, 2) if bound else None,
            "users_per_s": round(users / wall, 1)}


async def drive(port: int, users: int, reps: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as session:
        client = Client(session, f"http://127.0.0.1:{port}")
        return {"per_operation": await per_operation(client, reps), "initial_cycle": await initial_cycle(client, users)}


def run(users: int, reps: int, admin_dsn: str = DEFAULT_DSN) -> dict[str, Any]:
    server_cores, load_cores = procs.core_plan()
    own_cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, load_cores)
    name, dsn = asyncio.run(create_database(admin_dsn))
    work = Path(tempfile.mkdtemp(prefix="bench-pfa-"))
    port = procs.free_port()
    env = {"SCIM_GATEWAY_TOKEN": TOKEN, "SCIM_GATEWAY_BACKEND": "postfixadmin", "SCIM_GATEWAY_POSTFIXADMIN_DSN": dsn,
           "SCIM_GATEWAY_LIST_DOMAIN": LIST_DOMAIN, "SCIM_GATEWAY_STATE": f"sqlite:///{work}/state.sqlite3",
           "SCIM_GATEWAY_LOG_LEVEL": "warning", "SCIM_GATEWAY_POSTFIXADMIN_POOL_SIZE": str(CONCURRENCY)}
    server = procs.Proc("gateway-postfixadmin", [sys.executable, "-m", "bench.postfixadmin_backend", "serve",
                                                 "--port", str(port)], cpus=server_cores, log=work / "gateway.log",
                        env=env)
    try:
        procs.wait_port(port, 30, server)
        result = asyncio.run(drive(port, users, reps))
    finally:
        server.stop()
        asyncio.run(drop_database(admin_dsn, name))
        os.sched_setaffinity(0, own_cores)
    result["database"] = "PostgreSQL (local), PostfixAdmin 4.0.5 schema"
    return result


def section(ctx: Any) -> dict[str, Any]:
    """``bench.run``'s ``postfixadmin`` section: the cycle as large as the profile's, on local PostgreSQL."""
    full = ctx.profile.name == "full"
    try:
        result = run(ctx.profile.cycle_users, 200 if full else 30)
    except (OSError, asyncpg.PostgresError) as exc:
        ctx.say(f"postfixadmin section skipped: PostgreSQL at {DEFAULT_DSN} unusable ({exc})")
        return {"skipped": str(exc)}
    (ctx.out / "postfixadmin.md").write_text("# postfixadmin backend on local PostgreSQL\n\n" + report(result) + "\n")
    ctx.say("postfixadmin:\n" + report(result))
    return result


def report(result: dict[str, Any]) -> str:
    lines = ["| operation | DB round trips | p50 latency | database's own time | added by the gateway |",
             "|---|---|---|---|---|"]
    for row in result["per_operation"]:
        lines.append(f"| {row['operation']} | {row['round_trips']:g} | {row['p50_us'] / 1000:.2f} ms | "
                     f"{row['database_us'] / 1000:.2f} ms | {row['added_us'] / 1000:.2f} ms |")
    cycle = result["initial_cycle"]
    lines.append("")
    lines.append(f"Initial cycle: {cycle['users']:,} users, {cycle['groups']} groups, {cycle['membership_patches']:,} "
                 f"membership PATCHes at c={cycle['concurrency']}: {cycle['wall_s']} s ({cycle['users_per_s']} "
                 f"users/s), {cycle['round_trips']:,} round trips; database time {cycle['database_s']} s, "
                 f"/{cycle['concurrency']} = {cycle['database_bound_s']} s: {cycle['ratio_to_database_bound']}×")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postfixadmin_backend")
    parser.add_argument("mode", nargs="?", choices=["run", "serve"], default="run")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args.port)
        return 0
    procs.install_cleanup()
    result = run(args.users, args.reps)
    print(report(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
