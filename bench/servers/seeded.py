"""The gateway (memory backend) pre-loaded with N users through its own service layer.

Used by the scale scenario: seeding 100k users over HTTP would take minutes, while the
service layer does it in seconds and leaves exactly the state those POSTs would have left
(backend mailboxes + id mappings in the configured state store). Serves like
``scim-gateway serve`` (same app factory, same uvloop loop) once seeding is done, and
prints one JSON line with the seeding time and RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time

from aiohttp import web


def user_body(i: int) -> dict[str, object]:
    name = f"scale.user{i}@example.com"
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": f"ext-{i:08d}",
        "userName": name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"Given{i} Family{i}", "familyName": f"Family{i}", "givenName": f"Given{i}"},
        "roles": [],
    }


class GcWatch:
    """Pauses of the cyclic garbage collector, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.reset()
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.max_ms = [0.0, 0.0, 0.0]

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        gen = info.get("generation", 0)
        pause = (time.perf_counter() - self._started) * 1000
        self.count[gen] += 1
        self.total_ms[gen] += pause
        self.max_ms[gen] = max(self.max_ms[gen], pause)

    def to_json(self) -> dict[str, object]:
        return {"collections": self.count, "total_ms": [round(x, 2) for x in self.total_ms],
                "max_ms": [round(x, 2) for x in self.max_ms], "objects_tracked": len(gc.get_objects())}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--pg-schema", default=None, help="PostgreSQL state: keep the tables in this schema")
    parser.add_argument("--seed-concurrency", type=int, default=16)
    args = parser.parse_args()

    from gateway.config import load_settings
    from gateway.http.app import create_app
    from gateway.http.middleware import REGISTRY_KEY
    from gateway.logs import configure_logging
    from gateway.scim.query import Projection
    from gateway.serving import tune_gc

    settings = load_settings(None, port=args.port)
    configure_logging(settings.log_format, settings.log_level)
    store = None
    if args.pg_schema:
        from gateway.store.postgres import PostgresStore

        store = PostgresStore(settings.state, schema=args.pg_schema)
    app = create_app(settings, store=store)

    async def seed(app: web.Application) -> None:
        gc.collect()
        before = rss_mb()
        started = time.perf_counter()
        users = app[REGISTRY_KEY].tenants["default"].users
        base = f"http://127.0.0.1:{args.port}/scim/v2"
        # A few creates in flight at once: a networked store (PostgreSQL) is then not bound by round trips.
        step = max(1, args.seed_concurrency)
        for start in range(0, args.users, step):
            await asyncio.gather(*(users.create(user_body(i), base, Projection())
                                   for i in range(start, min(args.users, start + step))))
        seconds = time.perf_counter() - started
        gc.collect()
        print(json.dumps({"seeded": args.users, "seed_s": round(seconds, 3), "rss_before_mb": round(before, 1),
                          "rss_after_mb": round(rss_mb(), 1)}), flush=True)

    app.on_startup.append(seed)  # after the app's own start-up, which opens the store
    app.on_startup.append(tune_gc)  # as `scim-gateway serve` does, once the seeded state is in place
    watch = GcWatch()

    async def gc_stats(request: web.Request) -> web.Response:
        """GET: pauses since the last POST; POST: start counting afresh."""
        if request.method == "POST":
            watch.reset()
        return web.json_response(watch.to_json())

    app.router.add_route("*", "/__bench__/gc", gc_stats)
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop)
    sys.exit(0)


if __name__ == "__main__":
    main()
