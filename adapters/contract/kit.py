"""The backend contract kit: everything the gateway relies on, checked against a live adapter.

Use it from pytest::

    from adapters.contract import CHECKS, KitTarget

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
    async def test_contract(check, target: KitTarget) -> None:
        await check.run(target)

or from the command line against a configured tenant (``scim-gateway verify-backend``).
Every check names the objects it creates itself (``KitTarget.address`` / ``group_name``),
and deletes them again, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from adapters.base import (
    Adapter,
    AlreadyExists,
    Attributes,
    AttrPath,
    BackendError,
    Compare,
    Filter,
    GroupRecord,
    NotFound,
    Or,
    Rejected,
    Unavailable,
    UserRecord,
)
from adapters.contract.faults import TransportFaults

FAULT_DEADLINE_S = 90.0
"""A call under a transport fault must fail within this time (the adapter's own deadline)."""


class KitSkip(Exception):
    """The check does not apply to this backend (no groups, no fault injection)."""


class KitFailure(AssertionError):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise KitFailure(message)


@dataclass
class KitTarget:
    adapter: Adapter
    domain: str
    """Mail domain the kit's mailboxes are created in (it must exist on the platform)."""
    faults: TransportFaults | None = None
    """Transport faults between adapter and platform, for the error-classification checks."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _users: set[str] = field(default_factory=set)
    _groups: set[str] = field(default_factory=set)
    _serial: int = 0

    def address(self, label: str) -> str:
        self._serial += 1
        return f"kit-{self.run_id}-{self._serial}-{label}@{self.domain}"

    def group_name(self, label: str) -> str:
        self._serial += 1
        return f"Kit {self.run_id} {self._serial} {label}"

    @property
    def owned(self) -> frozenset[str]:
        return self.adapter.capabilities.user_attributes

    def user_attributes(self, user_name: str, **extra: object) -> Attributes:
        """A create body holding only what the backend owns (as the gateway sends it)."""
        given, _, family = user_name.partition("@")[0].rpartition("-")
        full: Attributes = {"userName": user_name, "active": True,
                            "name": {"givenName": given.title() or "Kit", "familyName": family.title() or "User"},
                            "displayName": f"{given.title()} {family.title()}".strip() or "Kit User", **extra}
        owned: Attributes = {}
        for key, value in full.items():
            if key in self.owned:
                owned[key] = value
            elif isinstance(value, dict):
                subs = {k: v for k, v in value.items() if f"{key}.{k}" in self.owned}
                if subs:
                    owned[key] = subs
        return owned

    async def create_user(self, user_name: str, **extra: object) -> UserRecord:
        self._users.add(user_name.lower())
        return await self.adapter.create_user(self.user_attributes(user_name, **extra))

    async def create_group(self, name: str, member_keys: list[str] | None = None) -> GroupRecord:
        self._groups.add(name)
        return await self.adapter.create_group({"displayName": name}, member_keys or [])

    async def find_user(self, user_name: str) -> UserRecord | None:
        page = await self.adapter.find_users(eq("userName", user_name), 0, 10)
        matching = [r for r in page.items if str(r.attributes.get("userName", "")).lower() == user_name.lower()]
        expect(len(matching) <= 1, f"two mailboxes answer to userName {user_name!r}: {[r.key for r in matching]}")
        return matching[0] if matching else None

    async def find_group(self, name: str) -> GroupRecord | None:
        page = await self.adapter.find_groups(eq("displayName", name), 0, 10)
        matching = [g for g in page.items if str(g.attributes.get("displayName", "")).lower() == name.lower()]
        expect(len(matching) <= 1, f"two lists answer to displayName {name!r}: {[g.key for g in matching]}")
        return matching[0] if matching else None

    async def cleanup(self) -> list[str]:
        """Delete every object the kit created; returns what could not be deleted."""
        left: list[str] = []
        for name in sorted(self._groups):
            left.extend(await _quietly(self._delete_group, name))
        for user_name in sorted(self._users):
            left.extend(await _quietly(self._delete_user, user_name))
        self._users.clear()
        self._groups.clear()
        return left

    async def _delete_user(self, user_name: str) -> None:
        found = await self.find_user(user_name)
        if found is not None:
            with contextlib.suppress(NotFound):
                await self.adapter.delete_user(found)

    async def _delete_group(self, name: str) -> None:
        if not self.adapter.capabilities.groups:
            return
        found = await self.find_group(name)
        if found is not None:
            with contextlib.suppress(NotFound):
                await self.adapter.delete_group(found)


async def _quietly(delete: Callable[[str], Awaitable[None]], name: str) -> list[str]:
    try:
        await delete(name)
    except Exception as exc:  # cleanup reports, it does not raise
        return [f"{name}: {exc}"]
    return []


def eq(attribute: str, value: object) -> Filter:
    head, _, sub = attribute.partition(".")
    return Compare(AttrPath(head, sub or None), "eq", value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Check:
    name: str
    summary: str
    body: Callable[[KitTarget], Awaitable[None]]

    async def run(self, target: KitTarget) -> None:
        """Run the check and delete what it created; KitSkip when it does not apply."""
        try:
            await self.body(target)
        finally:
            if target.faults is not None:
                await target.faults.heal()
            await target.cleanup()


CHECKS: list[Check] = []


def check(summary: str) -> Callable[[Callable[[KitTarget], Awaitable[None]]], Callable[[KitTarget], Awaitable[None]]]:
    def register(body: Callable[[KitTarget], Awaitable[None]]) -> Callable[[KitTarget], Awaitable[None]]:
        CHECKS.append(Check(body.__name__.removeprefix("check_"), summary, body))
        return body
    return register


def needs_groups(target: KitTarget) -> None:
    if not target.adapter.capabilities.groups:
        raise KitSkip("the backend has no distribution lists")


def needs_faults(target: KitTarget) -> TransportFaults:
    if target.faults is None:
        raise KitSkip("no transport fault injection for this target")
    return target.faults


async def raises(kind: type[BackendError], call: Awaitable[object], what: str) -> BackendError:
    try:
        await asyncio.wait_for(call, FAULT_DEADLINE_S)
    except kind as exc:
        return exc
    except BackendError as exc:
        raise KitFailure(f"{what}: expected {kind.__name__}, got {type(exc).__name__}: {exc}") from None
    except TimeoutError:
        raise KitFailure(f"{what}: no answer within {FAULT_DEADLINE_S:g}s (the adapter needs a deadline)") from None
    raise KitFailure(f"{what}: expected {kind.__name__}, but the call succeeded")


def owned_view(target: KitTarget, attributes: Attributes) -> Attributes:
    """``attributes`` restricted to what a record must read back (write-only password aside)."""
    return {k: v for k, v in target.user_attributes(str(attributes.get("userName", "x@y")), **attributes).items()
            if k != "password"}


# --- mailboxes ---------------------------------------------------------------------------


@check("a mailbox is created, read, found, changed, disabled, enabled and deleted")
async def check_user_lifecycle(target: KitTarget) -> None:
    adapter = target.adapter
    user_name = target.address("ann-lee")
    created = await target.create_user(user_name)
    sent = target.user_attributes(user_name)
    for path, value in sent.items():
        got = created.attributes.get(path)
        same = got.lower() == value.lower() if isinstance(got, str) and isinstance(value, str) else got == value
        expect(same, f"create returned {path}={got!r}, sent {value!r}")
    read = await adapter.get_user(created.key)
    expect(read.key == created.key, f"get_user({created.key!r}) returned key {read.key!r}")
    expect("password" not in read.attributes, "a read returned the password")
    found = await target.find_user(user_name.upper())
    expect(found is not None and found.key == created.key, "find_users(userName eq …) in other case missed it")
    changes: Attributes = {}
    if "displayName" in target.owned:
        changes["displayName"] = "Ann Changed"
    if "name.givenName" in target.owned or "name" in target.owned:
        changes["name.givenName"] = "Annie"
    if changes:
        updated = await adapter.update_user(await adapter.get_user(created.key), changes)
        reread = await adapter.get_user(updated.key)
        if "displayName" in changes:
            expect(reread.attributes.get("displayName") == "Ann Changed", "displayName change not read back")
        if "name.givenName" in changes:
            expect((reread.attributes.get("name") or {}).get("givenName") == "Annie", "givenName change lost")
    if "active" in target.owned:
        for active in (False, True):
            current = await adapter.get_user(created.key)
            await adapter.update_user(current, {"active": active})
            expect((await adapter.get_user(created.key)).attributes.get("active") is active,
                   f"active={active} not read back")
    last = await adapter.get_user(created.key)
    await adapter.delete_user(last)
    await raises(NotFound, adapter.get_user(created.key), "get_user after delete")
    await raises(NotFound, adapter.delete_user(last), "delete_user of a deleted mailbox")
    await raises(NotFound, adapter.update_user(last, {"active": False} if "active" in target.owned else {}),
                 "update_user of a deleted mailbox")
    expect(await target.find_user(user_name) is None, "a deleted mailbox is still found by userName")


@check("a rename moves the mailbox to the new userName; renaming onto a taken one is AlreadyExists")
async def check_user_rename(target: KitTarget) -> None:
    adapter = target.adapter
    old, new, taken = target.address("old"), target.address("new"), target.address("taken")
    record = await target.create_user(old)
    await target.create_user(taken)
    target._users.add(new.lower())
    renamed = await adapter.update_user(await adapter.get_user(record.key), {"userName": new})
    expect(str(renamed.attributes.get("userName", "")).lower() == new.lower(), "rename did not return the new name")
    expect((await adapter.get_user(renamed.key)).key == renamed.key, "the renamed mailbox cannot be read by its key")
    expect(await target.find_user(old) is None, "the old userName still finds a mailbox")
    expect(await target.find_user(new) is not None, "the new userName finds nothing")
    await raises(AlreadyExists, adapter.update_user(await adapter.get_user(renamed.key), {"userName": taken}),
                 "rename onto a taken userName")


@check("userNames are keys case-insensitively: a second create in other case is AlreadyExists")
async def check_user_case_insensitive(target: KitTarget) -> None:
    user_name = target.address("Mixed-Case")
    first = await target.create_user(user_name)
    error = await raises(AlreadyExists, target.create_user(user_name.lower()), "create of a taken userName")
    expect(isinstance(error, AlreadyExists), "")
    found = await target.find_user(user_name.upper())
    expect(found is not None and found.key == first.key, "lookup in upper case missed the mailbox")


@check("what is not there is NotFound; what the platform refuses is Rejected")
async def check_error_classification(target: KitTarget) -> None:
    adapter = target.adapter
    ghost = target.address("ghost")
    expect(await target.find_user(ghost) is None, "find_users found a mailbox that was never created")
    missing = await target.create_user(target.address("gone"))
    await adapter.delete_user(await adapter.get_user(missing.key))
    await raises(NotFound, adapter.get_user(missing.key), "get_user of a missing key")
    await raises(Rejected, adapter.create_user({"userName": ""}), "create with an empty userName")


@check("listing pages through every mailbox once, at any page size")
async def check_paging(target: KitTarget) -> None:
    adapter = target.adapter
    names = {target.address(f"page{n}").lower() for n in range(5)}
    for name in sorted(names):
        await target.create_user(name)
    seen: list[str] = []
    offset = 0
    while True:
        page = await adapter.find_users(None, offset, 2)
        expect(len(page.items) <= 2, f"a page of limit 2 held {len(page.items)} records")
        seen.extend(str(r.attributes.get("userName", "")).lower() for r in page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    missing = names - set(seen)
    expect(not missing, f"paging missed {sorted(missing)}")
    repeated = {n for n in names if seen.count(n) > 1}
    expect(not repeated, f"paging repeated {sorted(repeated)}")


@check("filter push-down returns every match (a superset is fine, a subset never)")
async def check_filter_pushdown(target: KitTarget) -> None:
    adapter = target.adapter
    a, b = target.address("filter-a"), target.address("filter-b")
    ra = await target.create_user(a)
    rb = await target.create_user(b)
    for attribute in sorted(adapter.capabilities.user_filterable):
        value = _value_at(ra.attributes, attribute)
        if value is None:
            continue
        literal = value.swapcase() if isinstance(value, str) else value
        page = await adapter.find_users(eq(attribute, literal), 0, 1000)
        keys = {r.key for r in page.items}
        expect(ra.key in keys, f"find_users({attribute} eq {literal!r}) missed a mailbox that has it")
    both = Or(eq("userName", a.upper()), eq("userName", b))
    keys = {r.key for r in (await adapter.find_users(both, 0, 1000)).items}
    expect({ra.key, rb.key} <= keys, "an 'or' of two userNames missed one of them")


def _value_at(attributes: Attributes, dotted: str) -> object:
    head, _, sub = dotted.partition(".")
    value = attributes.get(head)
    return value.get(sub) if sub and isinstance(value, dict) else None if sub else value


# --- distribution lists ---------------------------------------------------------------------


@check("a list is created (empty and with members), read, found, renamed and deleted")
async def check_group_lifecycle(target: KitTarget) -> None:
    needs_groups(target)
    adapter = target.adapter
    member = await target.create_user(target.address("member"))
    empty_name, full_name = target.group_name("empty"), target.group_name("full")
    empty = await target.create_group(empty_name)
    expect(empty.member_keys == [], f"an empty list reads back members {empty.member_keys}")
    expect((await adapter.get_group(empty.key)).member_keys == [], "an empty list shows members when read")
    full = await target.create_group(full_name, [member.key])
    expect(full.member_keys == [member.key], f"create returned members {full.member_keys}, sent {[member.key]}")
    found = await target.find_group(full_name.upper())
    expect(found is not None and found.key == full.key, "find_groups(displayName eq …) in other case missed it")
    renamed_to = target.group_name("renamed")
    target._groups.add(renamed_to)
    renamed = await adapter.update_group(await adapter.get_group(full.key), {"displayName": renamed_to})
    reread = await adapter.get_group(renamed.key)
    # The gateway gives a name back in the case it was sent; a platform may fold it (as it may a userName).
    expect(str(reread.attributes.get("displayName", "")).lower() == renamed_to.lower(),
           "a list rename was not read back")
    expect(reread.member_keys == [member.key], "a list rename changed its members")
    await raises(AlreadyExists, target.create_group(renamed_to.lower()), "create of a list with a taken name")
    await adapter.delete_group(reread)
    await raises(NotFound, adapter.get_group(reread.key), "get_group after delete")
    await raises(NotFound, adapter.delete_group(reread), "delete_group of a deleted list")


@check("adding a present member and removing an absent one are successes; the last member can go")
async def check_members_idempotent(target: KitTarget) -> None:
    needs_groups(target)
    adapter = target.adapter
    a = await target.create_user(target.address("ma"))
    b = await target.create_user(target.address("mb"))
    group = await target.create_group(target.group_name("members"))
    for _ in range(2):
        await adapter.add_members(await adapter.get_group(group.key), [a.key, b.key])
    expect(sorted((await adapter.get_group(group.key)).member_keys) == sorted([a.key, b.key]),
           "adding members twice did not leave each member once")
    for _ in range(2):
        await adapter.remove_members(await adapter.get_group(group.key), [a.key])
    expect((await adapter.get_group(group.key)).member_keys == [b.key], "removing a member twice went wrong")
    await adapter.remove_members(await adapter.get_group(group.key), [b.key])
    expect((await adapter.get_group(group.key)).member_keys == [], "the list is not empty after its last member left")
    await adapter.add_members(await adapter.get_group(group.key), [a.key])
    expect((await adapter.get_group(group.key)).member_keys == [a.key], "a member added to an emptied list is lost")


@check("memberships follow a mailbox that is renamed, and end when it is deleted")
async def check_membership_follows_user(target: KitTarget) -> None:
    needs_groups(target)
    adapter = target.adapter
    user = await target.create_user(target.address("mover"))
    group = await target.create_group(target.group_name("follow"), [user.key])
    new_name = target.address("moved")
    target._users.add(new_name.lower())
    renamed = await adapter.update_user(await adapter.get_user(user.key), {"userName": new_name})
    expect((await adapter.get_group(group.key)).member_keys == [renamed.key],
           "the list does not hold the renamed mailbox under its new key")
    await adapter.delete_user(await adapter.get_user(renamed.key))
    expect((await adapter.get_group(group.key)).member_keys == [], "a deleted mailbox is still a list member")


# --- what the gateway does when an answer is lost ----------------------------------------------------


@check("right after a create, a lookup by userName finds the mailbox (the gateway's re-read after a lost answer)")
async def check_read_after_create(target: KitTarget) -> None:
    user_name = target.address("reread")
    created = await target.create_user(user_name)
    found = await target.find_user(user_name)
    expect(found is not None and found.key == created.key, "a lookup right after the create missed the mailbox")
    await raises(AlreadyExists, target.create_user(user_name), "a second create of the same userName")
    if target.adapter.capabilities.groups:
        name = target.group_name("reread")
        group = await target.create_group(name)
        again = await target.find_group(name)
        expect(again is not None and again.key == group.key, "a lookup right after a list create missed it")


@check("a platform that cannot be reached is Unavailable with nothing applied, for reads and writes alike")
async def check_unreachable(target: KitTarget) -> None:
    faults = needs_faults(target)
    adapter = target.adapter
    user_name = target.address("refused")
    existing = await target.create_user(target.address("there"))
    await adapter.close()  # pooled connections would otherwise outlive the fault
    await faults.refuse()
    await adapter.start()
    try:
        read = await raises(Unavailable, adapter.get_user(existing.key), "get_user with the platform unreachable")
        expect(not isinstance(read, NotFound), "an unreachable platform looked like a missing mailbox")
        write = await raises(Unavailable, target.create_user(user_name), "create_user with the platform unreachable")
        expect(not write.may_apply, "a create that never reached the platform says it may have been applied")
    finally:
        await faults.heal()
        await adapter.close()
        await adapter.start()
    expect(await target.find_user(user_name) is None, "a create refused at connect time was applied")
    expect((await adapter.get_user(existing.key)).key == existing.key, "the adapter did not recover after the fault")


@check("a write whose answer is lost says it may have been applied, and is never applied twice")
async def check_lost_answer(target: KitTarget) -> None:
    faults = needs_faults(target)
    adapter = target.adapter
    user_name = target.address("lost")
    await faults.lose_answers()
    try:
        error = await raises(Unavailable, target.create_user(user_name), "create_user whose answer is lost")
        expect(error.may_apply, "a create whose answer was lost does not say it may have been applied")
    finally:
        await faults.heal()
        await adapter.close()
        await adapter.start()
    await target.find_user(user_name)  # at most one (find_user checks), whichever way the write went
