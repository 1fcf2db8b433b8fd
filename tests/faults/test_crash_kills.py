"""Crash safety with real processes: the gateway is SIGKILLed mid-cycle, again and again.

The mock Cleanmail API and ``scim-gateway serve`` run as processes, the gateway on the
state store operators use (SQLite in a directory of its own; PostgreSQL too). Eight
Entra-like clients run an initial provisioning cycle while the gateway is killed at random
moments with requests in flight, and started again on the same port and state each time.
The mock accepts a second mailbox with an existing address, so only the gateway's journal
stands between a retried create and a duplicate. Verdicts come from the mock's own state,
which must match exactly what the clients last sent, and no client may ever see a 500.

The plan and the kill points follow from one seed, printed by every run; reproduce a run
with ``CRASH_KILL_SEED=<seed>`` (the moments of the kills still depend on timing).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.wiring import make_store
from tests.faults.entra_cycle import (
    CyclePlan,
    EntraLikeClient,
    Tally,
    actual_state,
    expected_state,
    plan_cycle,
    run_cycle,
    state_differences,
)
from tests.faults.processes import Process, clean_env, free_port, post_control, tail
from tests.pg_support import fresh_database

DOMAIN = "crash.example"
API_KEY = "crash-cleanmail-key-5Hq2"
TOKEN = "crash-test-token-8Jd3kW1p"
WORKERS = 8


def _seed() -> int:
    given = os.environ.get("CRASH_KILL_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**31)


@dataclass
class Killer:
    """SIGKILLs the gateway once the cycle has passed each threshold (in settled calls), while a
    request is in flight, then starts it again on the same port and state."""

    gateway: Process
    tally: Tally
    thresholds: list[int]
    rng: random.Random
    finished: bool = False
    in_flight_at_kill: list[int] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)

    async def run(self) -> None:
        for threshold in self.thresholds:
            if not await self._until_settled(threshold):
                return
            await asyncio.sleep(self.rng.uniform(0, 0.03))
            if not await self._until(lambda: self.tally.in_flight > 0):
                return
            self.in_flight_at_kill.append(self.tally.in_flight)
            await self.gateway.kill()
            # Down for a moment: the clients meet refused connections, as Entra would.
            await asyncio.sleep(self.rng.uniform(0, 0.3))
            started = time.monotonic()
            await self.gateway.start()
            self.restart_s.append(time.monotonic() - started)
            # Some progress before the next kill, so the next one is not always in the same retries.
            if not await self._until_settled(self.tally.settled + 3):
                return

    async def _until_settled(self, calls: int) -> bool:
        return await self._until(lambda: self.tally.settled >= calls)

    async def _until(self, condition: Callable[[], bool]) -> bool:
        while not condition():
            if self.finished:
                return False
            await asyncio.sleep(0.002)
        return True


async def _journal_pending(state: str) -> list[Any]:
    store = make_store(state)
    await store.open()
    try:
        return list(await store.journal_pending("default"))
    finally:
        await store.close()


async def _check_gateway_view(client: EntraLikeClient, plan: CyclePlan, ids: dict[str, str]) -> list[str]:
    """The gateway must show what the platform holds, under the ids the clients were given."""
    problems = []
    for user in plan.users:
        found = await client.find("Users", "userName", user.user_name)
        if found != ids[user.user_name]:
            problems.append(f"{user.user_name}: filter finds id {found}, the client holds {ids[user.user_name]}")
            continue
        status, body = await client.call("GET", f"/Users/{found}")
        seen = (status, body.get("displayName"), body.get("name", {}).get("familyName"), body.get("active"),
                body.get("externalId"), body.get("title"))
        want = (200, user.display, user.family, user.active, user.external_id, user.title)
        if seen != want:
            problems.append(f"{user.user_name}: GET shows {seen}, want {want}")
    member_ids = {ids[u.user_name]: i for i, u in enumerate(plan.users)}
    for group in plan.groups:
        status, body = await client.call("GET", f"/Groups/{ids[group.display]}")
        members = {member_ids.get(m["value"], m["value"]) for m in body.get("members", [])}
        if status != 200 or members != group.final:
            problems.append(f"{group.display}: GET {status} members {sorted(members, key=str)}, "
                            f"want {sorted(group.final)}")
    return problems


async def crash_cycle(tmp_path: Path, state: str, *, users: int, groups: int, kills: int) -> None:
    seed = _seed()
    print(f"\ncrash-kill seed {seed} (reproduce with CRASH_KILL_SEED={seed})")
    started = time.monotonic()
    rng = random.Random(seed)
    plan = plan_cycle(rng, users, groups, DOMAIN)
    kill_rng = random.Random(seed + 1)
    planned = plan.planned_calls()
    thresholds = sorted(int(kill_rng.uniform(0.05, 0.85) * planned) for _ in range(kills))
    mock = Process("mock", ["mock-cleanmail", "--api-key", API_KEY, "--control", "--domain", DOMAIN], clean_env(),
                   free_port(), tmp_path / "mock.log")
    gateway = Process("gateway", ["serve"], clean_env(
        token=TOKEN, backend="cleanmail", cleanmail_url=mock.url, cleanmail_api_key=API_KEY, list_domain=DOMAIN,
        # The sweep runs every second, so it also settles interrupted writes while clients retry them.
        state=state, log_format="json", journal_sweep_interval="1",
    ), free_port(), tmp_path / "gateway.log")
    tally = Tally()
    killer = Killer(gateway, tally, thresholds, kill_rng)

    def context() -> str:
        return (f"seed {seed}; {tally.summary()}; 500 answers: {tally.server_errors}\n"
                f"{tail(gateway.log)}\n{tail(mock.log, 10)}")

    try:
        await mock.start()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            quirks = await post_control(session, f"{mock.url}/__mock__/quirks", {"reject_duplicates": False})
            assert quirks["reject_duplicates"] is False
            # A little latency, so that kills also land while the platform is working on a write.
            await post_control(session, f"{mock.url}/__mock__/faults",
                               {"latency_ms": 5, "latency_jitter_ms": 20, "seed": seed})
            await gateway.start()
            client = EntraLikeClient(session, f"{gateway.url}/scim/v2", TOKEN, tally, random.Random(seed + 2))
            cycle_started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                group.create_task(killer.run())
                try:
                    ids = await run_cycle(client, plan, rng, WORKERS)
                finally:
                    killer.finished = True
            cycle_s = time.monotonic() - cycle_started
            summary = tally.summary()
            assert len(killer.in_flight_at_kill) == kills, f"the cycle ended before kill {kills}\n{context()}"
            problems = await _check_gateway_view(client, plan, ids)
            assert not problems, "the gateway's view is wrong:\n" + "\n".join(problems) + f"\n{context()}"
            assert not tally.server_errors, f"clients saw 500 answers\n{context()}"

            # Interrupted writes nobody touched again wait for the sweep; every one must settle.
            assert await gateway.stop() == 0, context()
            left_for_sweep = len(await _journal_pending(state))
            await gateway.start(journal_sweep_interval="0.2")
            await asyncio.sleep(1.0)
            assert await gateway.stop() == 0, context()
            unsettled = await _journal_pending(state)
            assert not unsettled, f"journal entries never settled: {unsettled}\n{context()}"

            async with session.get(f"{mock.url}/__mock__/state") as reply:
                snapshot = await reply.json()
            async with session.get(f"{mock.url}/__mock__/stats") as reply:
                calls = (await reply.json())["calls"]
    finally:
        gateway.reap()
        mock.reap()
    want_boxes, want_lists = expected_state(plan)
    have_boxes, have_lists = actual_state(snapshot)
    differences = state_differences(want_boxes, have_boxes) + state_differences(want_lists, have_lists)
    assert not differences, "the platform differs from what was sent:\n" + "\n".join(differences[:40]) + \
        f"\n{context()}"
    assert snapshot["aliases"] == []
    print(f"crash-kill {users} users, {groups} groups, state {state.partition(':')[0]}: "
          f"{len(killer.in_flight_at_kill)} kills (requests in flight at each: {killer.in_flight_at_kill}; "
          f"restarts took {', '.join(f'{s:.2f}' for s in killer.restart_s)} s); cycle {cycle_s:.1f} s, "
          f"total {time.monotonic() - started:.1f} s; {summary}; journal entries left for the sweep: "
          f"{left_for_sweep}; mailbox creates sent to the platform: {calls.get('POST /api/v1/mailboxes', 0)} "
          f"for {users} users")


@pytest.fixture
def postgres_state() -> Iterator[str]:
    with fresh_database("scim_crash") as dsn:
        yield dsn


async def test_kills_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    await crash_cycle(tmp_path, f"sqlite:///{tmp_path / 'state.sqlite3'}", users=24, groups=4, kills=3)


@pytest.mark.postgres
async def test_kills_lose_and_duplicate_nothing_on_postgres(tmp_path: Path, postgres_state: str) -> None:
    await crash_cycle(tmp_path, postgres_state, users=24, groups=4, kills=3)


@pytest.mark.slow
async def test_kills_soak(tmp_path: Path) -> None:
    await crash_cycle(tmp_path, f"sqlite:///{tmp_path / 'state.sqlite3'}", users=300, groups=30, kills=15)


@pytest.mark.slow
@pytest.mark.postgres
async def test_kills_soak_on_postgres(tmp_path: Path, postgres_state: str) -> None:
    await crash_cycle(tmp_path, postgres_state, users=300, groups=30, kills=15)
