"""An Entra-like initial provisioning cycle, planned from a seed, and the platform state it must leave.

The client behaves like Entra's provisioning service: it matches each user by filtering
on userName and creates it on a miss, links on 409 by filtering again, and sends
attribute and ``active`` changes as PATCHes; groups are created with their members and
then changed with member add/remove PATCHes. Connection errors, 429 and 5xx are retried
after a short wait that honours Retry-After (capped, so the test stays quick).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
RETRY_AFTER_CAP_S = 0.25
PATIENCE_S = 90.0


# --- the plan ---------------------------------------------------------------------------


@dataclass
class UserPlan:
    """One user: the POST that creates it, the PATCHes that follow, and the last value sent for each attribute."""

    user_name: str
    given: str
    family: str
    display: str
    title: str
    """Kept by the gateway alone (the platform has no such field)."""
    external_id: str
    active: bool = True
    create_body: dict[str, Any] = field(default_factory=dict)
    patches: list[list[dict[str, Any]]] = field(default_factory=list)
    """Operations of each PATCH, in the order they are sent."""

    def __post_init__(self) -> None:
        self.create_body = {
            "schemas": [USER_URN], "userName": self.user_name, "active": self.active, "externalId": self.external_id,
            "displayName": self.display, "title": self.title,
            "name": {"givenName": self.given, "familyName": self.family},
            "emails": [{"value": self.user_name, "type": "work", "primary": True}],
        }


@dataclass
class GroupPlan:
    display: str
    initial: list[int]
    """Indices of the users the group is created with."""
    edits: list[tuple[str, str, list[int]]] = field(default_factory=list)
    """(op, form, user indices) of each member PATCH, in order; form is ``value`` or ``path``."""
    final: set[int] = field(default_factory=set)


@dataclass
class CyclePlan:
    domain: str
    users: list[UserPlan]
    groups: list[GroupPlan]

    def planned_calls(self) -> int:
        """SCIM calls the cycle makes when nothing goes wrong (a filter and a POST per object, then PATCHes)."""
        return sum(2 + len(u.patches) for u in self.users) + sum(2 + len(g.edits) for g in self.groups)


def plan_cycle(rng: random.Random, users: int, groups: int, domain: str) -> CyclePlan:
    plans: list[UserPlan] = []
    for i in range(users):
        plan = UserPlan(f"user{i}@{domain}", f"Given{i}", f"Family{i}", f"User {i}", f"Title {i}", f"ext-{i}")
        for n in range(rng.randint(2, 4)):
            ops = []
            for path in rng.sample(["displayName", "name.familyName", "active", "title"], rng.randint(1, 2)):
                value: Any
                if path == "active":
                    # Mostly a flip; sometimes the same value again, as Entra sends on a re-evaluation.
                    plan.active = (not plan.active) if rng.random() < 0.8 else plan.active
                    value = rng.choice([plan.active, "True" if plan.active else "False"])
                elif path == "displayName":
                    plan.display = value = f"User {i} v{n + 1}"
                elif path == "title":
                    plan.title = value = f"Title {i}.{n + 1}"
                else:
                    plan.family = value = f"Family{i}-{n + 1}"
                ops.append({"op": "Replace", "path": path, "value": value})
            plan.patches.append(ops)
        plans.append(plan)
    group_plans: list[GroupPlan] = []
    for g in range(groups):
        initial = sorted(rng.sample(range(users), min(users, rng.randint(2, 6))))
        group = GroupPlan(f"Crash List {g}", initial, final=set(initial))
        for _ in range(rng.randint(2, 4)):
            outside = [i for i in range(users) if i not in group.final]
            if group.final and (not outside or rng.random() < 0.4):
                chosen = rng.sample(sorted(group.final), min(len(group.final), rng.randint(1, 2)))
                group.edits.append(("Remove", rng.choice(["value", "path"]) if len(chosen) == 1 else "value", chosen))
                group.final -= set(chosen)
            elif outside:
                chosen = rng.sample(outside, min(len(outside), rng.randint(1, 3)))
                group.edits.append(("Add", "value", chosen))
                group.final |= set(chosen)
        group_plans.append(group)
    return CyclePlan(domain, plans, group_plans)


def expected_state(plan: CyclePlan) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the platform must hold: (address, first, last, display, status) per mailbox; (name, members) per list."""
    mailboxes = sorted(
        (u.user_name.lower(), u.given, u.family, u.display, "active" if u.active else "disabled") for u in plan.users
    )
    lists = sorted(
        (g.display, tuple(sorted(plan.users[i].user_name.lower() for i in g.final))) for g in plan.groups
    )
    return mailboxes, lists


def actual_state(snapshot: dict[str, Any]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    mailboxes = sorted(
        (m["address"], m["first_name"], m["last_name"], m["display_name"], m["status"]) for m in snapshot["mailboxes"]
    )
    lists = sorted((lst["display_name"], tuple(sorted(lst["members"]))) for lst in snapshot["lists"])
    return mailboxes, lists


def state_differences(expected: list[tuple[Any, ...]], actual: list[tuple[Any, ...]]) -> list[str]:
    """Human-readable differences, keyed by the first field (address or list name)."""
    problems = []
    counts = Counter(row[0] for row in actual)
    problems += [f"{key}: {n} copies on the platform" for key, n in sorted(counts.items()) if n > 1]
    wanted = {row[0]: row for row in expected}
    have = {row[0]: row for row in actual}
    problems += [f"{key}: missing (want {row})" for key, row in wanted.items() if key not in have]
    problems += [f"{key}: unexpected {row}" for key, row in have.items() if key not in wanted]
    problems += [f"{key}: want {row}, have {have[key]}" for key, row in wanted.items()
                 if key in have and have[key] != row]
    return problems


# --- the client -------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw, shared by all of them (one event loop, so plain counters suffice)."""

    sent: int = 0
    settled: int = 0
    """SCIM calls that got a final answer (not counting retries)."""
    in_flight: int = 0
    retried: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    """Every 500 answer (which must never happen), with its body."""
    linked_after_409: int = 0

    def summary(self) -> str:
        retried = ", ".join(f"{k} {v}" for k, v in sorted(self.retried.items())) or "none"
        statuses = ", ".join(f"{k}×{v}" for k, v in sorted(self.statuses.items()))
        return (f"{self.sent} requests sent, {self.settled} settled, retried {sum(self.retried.values())} "
                f"({retried}), linked after 409: {self.linked_after_409}, answers: {statuses}")


class EntraLikeClient:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str, tally: Tally,
                 rng: random.Random) -> None:
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        self.tally = tally
        self.rng = rng

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send until the answer is final: anything but a connection error, 429 or 5xx."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE_S
        data = json.dumps(body) if body is not None else None
        attempt = 0
        while loop.time() < deadline:
            attempt += 1
            self.tally.sent += 1
            self.tally.in_flight += 1
            try:
                async with self.session.request(method, f"{self.base}{path}", data=data,
                                                headers=self.headers) as resp:
                    status, text = resp.status, await resp.text()
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.tally.retried[f"connection ({type(exc).__name__})"] += 1
                await asyncio.sleep(min(0.02 * 2 ** attempt, 0.5) * self.rng.uniform(0.5, 1.0))
                continue
            finally:
                self.tally.in_flight -= 1
            self.tally.statuses[status] += 1
            if status == 500:
                self.tally.server_errors.append(f"{method} {path}: {text[:500]}")
            if status == 429 or status >= 500:
                self.tally.retried[str(status)] += 1
                wait = float(retry_after) if retry_after and retry_after.isdigit() else 0.1
                await asyncio.sleep(min(wait, RETRY_AFTER_CAP_S))
                continue
            self.tally.settled += 1
            return status, json.loads(text) if text else None
        raise AssertionError(f"{method} {path} got no final answer within {PATIENCE_S:g}s")

    async def find(self, endpoint: str, attribute: str, value: str) -> str | None:
        flt = quote(f'{attribute} eq "{value}"')
        status, body = await self.call("GET", f"/{endpoint}?filter={flt}&excludedAttributes=members")
        assert status == 200, f"filter {attribute} eq {value!r}: {status} {body}"
        assert body["totalResults"] <= 1, f"{attribute} {value!r} matches {body['totalResults']} resources: {body}"
        return str(body["Resources"][0]["id"]) if body["Resources"] else None

    async def create_or_link(self, endpoint: str, attribute: str, value: str, body: dict[str, Any]) -> str:
        """Entra's matching: filter, POST on a miss, and on 409 filter again and take what is there."""
        found = await self.find(endpoint, attribute, value)
        if found is not None:
            return found
        status, created = await self.call("POST", f"/{endpoint}", body)
        if status == 201:
            return str(created["id"])
        assert status == 409, f"POST /{endpoint} {value!r}: {status} {created}"
        self.tally.linked_after_409 += 1
        found = await self.find(endpoint, attribute, value)
        assert found is not None, f"POST /{endpoint} {value!r} answered 409, yet the filter finds nothing"
        return found

    async def patch(self, endpoint: str, id: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        status, body = await self.call("PATCH", f"/{endpoint}/{id}", {"schemas": [PATCH_URN], "Operations": ops})
        assert status == 200, f"PATCH /{endpoint}/{id} {ops}: {status} {body}"
        resource: dict[str, Any] = body
        return resource


# --- running the cycle ------------------------------------------------------------------


Job = Callable[[], Awaitable[None]]


async def run_jobs(jobs: list[Job], workers: int) -> None:
    """``workers`` clients, each taking the next job when done with its last."""
    queue = deque(jobs)

    async def worker() -> None:
        while queue:
            await queue.popleft()()

    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())


async def run_cycle(client: EntraLikeClient, plan: CyclePlan, rng: random.Random, workers: int) -> dict[str, str]:
    """Users first (matched or created), then their changes mixed with the groups; returns userName → id."""
    ids: dict[str, str] = {}

    def provision(i: int) -> Job:
        async def job() -> None:
            user = plan.users[i]
            ids[user.user_name] = await client.create_or_link("Users", "userName", user.user_name,
                                                              user.create_body)
        return job

    def update(i: int) -> Job:
        async def job() -> None:
            user = plan.users[i]
            for ops in user.patches:
                await client.patch("Users", ids[user.user_name], ops)
        return job

    def group_job(group: GroupPlan) -> Job:
        async def job() -> None:
            def member(i: int) -> dict[str, str]:
                return {"value": ids[plan.users[i].user_name]}

            body = {"schemas": [GROUP_URN], "displayName": group.display,
                    "members": [member(i) for i in group.initial]}
            group_id = await client.create_or_link("Groups", "displayName", group.display, body)
            ids[group.display] = group_id
            for op, form, chosen in group.edits:
                edit: dict[str, Any]
                if form == "path":
                    edit = {"op": op, "path": f'members[value eq "{member(chosen[0])["value"]}"]'}
                else:
                    edit = {"op": op, "path": "members", "value": [member(i) for i in chosen]}
                await client.patch("Groups", group_id, [edit])
        return job

    creates = [provision(i) for i in range(len(plan.users))]
    rng.shuffle(creates)
    await run_jobs(creates, workers)
    changes = [update(i) for i in range(len(plan.users))] + [group_job(g) for g in plan.groups]
    rng.shuffle(changes)
    await run_jobs(changes, workers)
    return ids
