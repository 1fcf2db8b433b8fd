"""The provisioning pipeline: every SCIM operation on Users and Groups, one implementation.

A write follows the same steps for both resource types (``kinds.py`` says what differs):

1. lock the resource (by id) and, for a create or a rename, its natural key;
2. settle any interrupted write about that natural key (the journal);
3. check uniqueness of the natural key on the platform itself;
4. record the write in the journal;
5. call the backend;
6. store the mapping, and drop the journal entry.

Errors stay domain errors (``adapters.base``): the HTTP edge turns them into SCIM answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from adapters.base import AlreadyExists, AttrPath, BackendError, Compare, NotFound, Unavailable
from gateway.provisioning.context import TenantContext, lock_key
from gateway.provisioning.journal import Journal
from gateway.provisioning.kinds import Record, ResourceKind, members_of, with_members
from gateway.provisioning.listing import Lister
from gateway.provisioning.mappings import echo_sent, insert_created, new_mapping, next_version
from gateway.provisioning.members import MemberDirectory
from gateway.provisioning.ownership import Ownership, merge
from gateway.provisioning.rendering import Resource, apply_projection, check_if_match, finish
from gateway.scim.errors import ScimError, invalid_value
from gateway.scim.members import MemberEdit, apply_member_edits, member_edits
from gateway.scim.patch import apply_patch, parse_patch
from gateway.scim.query import ListQuery, Projection
from gateway.scim.resources import normalize_resource
from gateway.store.base import StoredResource

log = structlog.get_logger("gateway.provisioning")


@dataclass
class Plan:
    """What one replace or patch changes."""

    changes: dict[str, Any]
    """Owned attribute changes for the backend (dotted path → value, None clears)."""
    owned: Resource
    shadow: Resource
    add: list[str] = field(default_factory=list)
    """Member keys to add (groups)."""
    remove: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Member ids the client sent that name no provisioned user, as they stand after this change."""

    def touches_backend(self) -> bool:
        return bool(self.changes or self.add or self.remove)


class ResourceService:
    def __init__(self, ctx: TenantContext, kind: ResourceKind, members: MemberDirectory) -> None:
        self.ctx = ctx
        self.kind = kind
        self.rt = kind.rt
        self.tenant = ctx.tenant
        self.store = ctx.store
        self.calls = kind.calls
        self.ownership = Ownership(kind.owned)
        self.journal = Journal(ctx.store, ctx.tenant, self.rt.name, ctx.landing_window_s)
        self.members = members
        self.lister = Lister(self)

    # --- reading ------------------------------------------------------------------

    def require_supported(self) -> None:
        if not self.kind.supported:
            raise ScimError(501, f"This mail platform has no {self.kind.noun}s: {self.rt.endpoint[1:]} are not "
                                 "supported.")

    async def fetch(self, key: str) -> Record | None:
        try:
            return await self.calls.get(key)
        except NotFound:
            return None

    async def find_by_name(self, name: str) -> Record | None:
        """The backend object named ``name`` (case-insensitively), or None."""
        page = await self.calls.find(Compare(AttrPath(self.kind.natural_key), "eq", name), 0, 10)
        folded = name.lower()
        return next((r for r in page.items
                     if str(r.attributes.get(self.kind.natural_key, "")).lower() == folded), None)

    async def _stored(self, id: str) -> StoredResource:
        stored = await self.store.get(self.tenant, self.rt.name, id)
        if stored is None:
            raise NotFound(f"{self.rt.name} {id} not found")
        return stored

    async def _load(self, id: str) -> tuple[StoredResource, Record]:
        self.require_supported()
        stored = await self._stored(id)
        record = await self.fetch(stored.backend_key)
        if record is None:
            # The object vanished behind the gateway's back: forget the stale mapping.
            await self.store.delete(self.tenant, self.rt.name, id)
            raise NotFound(f"{self.rt.name} {id} not found (the {self.kind.noun} no longer exists on the mail "
                           "platform)")
        return stored, record

    def _body(self, record: Record, stored: StoredResource, member_ids: dict[str, str] | None,
              base_url: str) -> Resource:
        body = merge(echo_sent(record.attributes, stored.sent), stored.shadow)
        if member_ids is not None:
            body["members"] = [
                {"value": member_ids[k], "$ref": f"{base_url}/Users/{member_ids[k]}", "type": "User"}
                for k in members_of(record)
            ]
        return body

    async def render(self, pairs: list[tuple[Record, StoredResource]], base_url: str, projection: Projection,
                     member_ids: dict[str, str] | None = None) -> list[Resource]:
        """Full resources (before projection). ``member_ids`` (key → id) when every member's id is known."""
        if self.kind.has_members and member_ids is None and not projection.excludes("members"):
            keys = list(dict.fromkeys(k for record, _ in pairs for k in members_of(record)))
            member_ids = await self.members.ids_for(keys)
        if projection.excludes("members"):
            member_ids = None
        return [finish(self.rt, self._body(record, stored, member_ids, base_url), stored, base_url)
                for record, stored in pairs]

    async def _answer(self, record: Record, stored: StoredResource, base_url: str, projection: Projection,
                      member_ids: dict[str, str] | None = None) -> Resource:
        resource = (await self.render([(record, stored)], base_url, projection, member_ids))[0]
        return apply_projection(self.rt, resource, projection)

    async def get(self, id: str, base_url: str, projection: Projection) -> Resource:
        stored, record = await self._load(id)
        return await self._answer(record, stored, base_url, projection)

    # --- the journal ---------------------------------------------------------------

    async def _find_owned(self, name: str) -> tuple[str, dict[str, Any]] | None:
        record = await self.find_by_name(name)
        return (record.key, record.attributes) if record is not None else None

    async def _fetch_owned(self, key: str) -> dict[str, Any] | None:
        record = await self.fetch(key)
        return record.attributes if record is not None else None

    async def settle(self, name: str) -> None:
        """Finish or drop an interrupted write about ``name`` (call with its name lock held)."""
        if await self.store.journal_pending(self.tenant, self.rt.name, name.lower()):
            await self.journal.settle(self._find_owned, self._fetch_owned, natural_key=name.lower())

    async def recover(self, older_than_s: float = 0.0) -> int:
        """Settle every interrupted write of this tenant's resources of this type (at start-up, by the sweeper)."""
        if not self.kind.supported:
            return 0
        return await self.journal.settle(self._find_owned, self._fetch_owned, older_than_s=older_than_s)

    # --- writing: the shared steps -------------------------------------------------

    def _taken(self, name: str) -> AlreadyExists:
        return AlreadyExists(name, f"{self.kind.natural_key} '{name}' is already taken by another {self.kind.noun}")

    async def _claim_name(self, name: str) -> None:
        """Steps 2 and 3 of a create or rename: settle the journal, then check the platform."""
        await self.settle(name)
        # Checked here too, not only by the backend: some legacy APIs silently create a duplicate.
        if await self.find_by_name(name) is not None:
            raise self._taken(name)

    def _prepare(self, resource: Resource) -> Resource:
        """A resource as the client wants it, held to the tenant's rules; what the platform cannot take is dropped."""
        name = resource.get(self.kind.natural_key)
        if self.kind.address_key and isinstance(name, str):
            self._check_domain(name)
        if "password" in resource and "password" not in self.ownership.paths:
            # Never kept by the gateway: a platform that cannot take a password does not get one.
            del resource["password"]
            log.info("password attribute ignored: the mail platform adapter does not set passwords")
        return resource

    def _check_domain(self, address: str) -> None:
        domains = self.ctx.domains
        if not domains:
            return
        _, at, domain = address.rpartition("@")
        if not at or domain.lower() not in domains:
            raise invalid_value(
                f"{self.kind.natural_key} '{address}' is not an address in this tenant's mail domains "
                f"({', '.join(sorted(domains))}); provision only users of those domains, or add the domain to "
                "the tenant's configuration."
            )

    # --- create ----------------------------------------------------------------------

    async def create(self, body: Any, base_url: str, projection: Projection) -> Resource:
        self.require_supported()
        resource = self._prepare(normalize_resource(body, self.rt))
        member_ids = [m["value"] for m in resource.pop("members", [])] if self.kind.has_members else []
        owned, shadow = self.ownership.split(resource)
        name: str = resource[self.kind.natural_key]
        stored = new_mapping(self.rt.name, owned, shadow, self.ownership)
        async with self.store.lock(self.tenant, lock_key(self.rt.name, "name", name)):
            await self._claim_name(name)
            member_keys: list[str] = []
            if member_ids:
                by_id, skipped = await self.members.keys_for(member_ids, name)
                member_keys = list(by_id.values())
                stored.notes = _with_skipped(stored.notes, skipped)
            async with self.journal.write("create", name, stored):
                record = await self._create_once(owned, member_keys, name)
                stored.backend_key = record.key
                await insert_created(self.store, self.tenant, stored)
        return await self._answer(record, stored, base_url, projection)

    async def _create_once(self, owned: Resource, member_keys: list[str], name: str) -> Record:
        """Create the object at most once, even when the backend's answer was lost.

        After an ambiguous failure the object is re-read once by its natural key (the only
        place that does so). Found and unmapped: the create happened, and it is ours. Not found:
        the request may still land late (a timed-out request can sit in a queue), so no second
        create is sent now; the client gets 503 and the journal entry stays, to be settled by
        the next touch once the first request has surely landed or died.
        """
        try:
            return await self.calls.create(owned, member_keys)
        except AlreadyExists:
            raise self._taken(name) from None
        except Unavailable as failure:
            if not failure.may_apply:
                raise
            try:
                record = await self.find_by_name(name)
            except BackendError:
                raise failure from None  # still unknown: the journal entry must stay
            if record is None:
                raise
            if await self.store.get_by_key(self.tenant, self.rt.name, record.key) is not None:
                raise self._taken(name) from None
            missing = [k for k in member_keys if k not in members_of(record)]
            await self.calls.add_members(record, missing)
            return with_members(record, [*members_of(record), *missing])

    # --- replace and patch -------------------------------------------------------------

    async def replace(self, id: str, body: Any, base_url: str, projection: Projection,
                      if_match: Sequence[str] | None) -> Resource:
        self.require_supported()
        new = self._prepare(normalize_resource(body, self.rt))
        async with self.store.lock(self.tenant, lock_key(self.rt.name, "id", id)):
            stored, record = await self._load(id)
            check_if_match(stored, if_match)
            ids = await self._member_ids(record)
            plan = await self._plan(stored, record, new, ids)
            return await self._commit(stored, record, plan, ids, base_url, projection)

    async def patch(self, id: str, body: Any, base_url: str, projection: Projection,
                    if_match: Sequence[str] | None) -> Resource:
        self.require_supported()
        ops = parse_patch(body, self.rt, self.ctx.max_patch_operations)
        edits = member_edits(ops) if self.kind.has_members else None
        async with self.store.lock(self.tenant, lock_key(self.rt.name, "id", id)):
            stored, record = await self._load(id)
            check_if_match(stored, if_match)
            ids = await self._member_ids(record)
            if edits is not None and ids is not None:
                plan = await self._plan_member_edits(stored, record, edits, ids)
            else:
                current = {"id": stored.id, **self._body(record, stored, ids, base_url)}
                new = self._prepare(apply_patch(current, ops, self.rt))
                plan = await self._plan(stored, record, new, ids)
            return await self._commit(stored, record, plan, ids, base_url, projection)

    async def _member_ids(self, record: Record) -> dict[str, str] | None:
        """Key → id of the current members (groups), None for resources without members."""
        return await self.members.ids_for(members_of(record)) if self.kind.has_members else None

    async def _plan(self, stored: StoredResource, record: Record, new: Resource,
                    ids: dict[str, str] | None) -> Plan:
        """The change from what is stored to ``new``; ``ids`` gains the keys of new members."""
        new = dict(new)
        wanted_ids = list(dict.fromkeys(m["value"] for m in new.pop("members", None) or []))
        new_owned, new_shadow = self.ownership.split(new)
        old_owned, _ = self.ownership.split(echo_sent(record.attributes, stored.sent))
        changes = self.ownership.changes(old_owned, new_owned)
        key = self.kind.natural_key
        if key in changes and not changes[key]:
            raise invalid_value(f"{key} is required and cannot be removed")
        plan = Plan(changes, new_owned, new_shadow)
        if ids is not None:
            name = str(new_owned.get(key) or "")
            by_id, plan.skipped = await self.members.keys_for(wanted_ids, name, {v: k for k, v in ids.items()})
            current = set(members_of(record))
            plan.add = [k for k in by_id.values() if k not in current]
            wanted = set(by_id.values())
            plan.remove = [k for k in members_of(record) if k not in wanted]
            ids.update((k, member_id) for member_id, k in by_id.items())
        return plan

    async def _plan_member_edits(self, stored: StoredResource, record: Record, edits: list[MemberEdit],
                                 ids: dict[str, str]) -> Plan:
        """Membership sync (Entra's member add/remove): the edits applied to ids, in few passes over the
        members, since a list may hold thousands."""
        current = members_of(record)
        wanted = apply_member_edits([ids[k] for k in current], edits)
        keep = set(wanted)
        known = {member_id: key for key, member_id in ids.items()}
        name = str(record.attributes.get(self.kind.natural_key, ""))
        added, skipped = await self.members.keys_for([m for m in wanted if m not in known], name)
        ids.update((key, member_id) for member_id, key in added.items())
        owned, _ = self.ownership.split(echo_sent(record.attributes, stored.sent))
        return Plan({}, owned, stored.shadow, add=list(added.values()),
                    remove=[k for k in current if ids[k] not in keep],
                    skipped=_skipped_after(stored.notes.get("skipped_members", []), edits, skipped))

    async def _commit(self, stored: StoredResource, record: Record, plan: Plan, ids: dict[str, str] | None,
                      base_url: str, projection: Projection) -> Resource:
        """Steps 1–6 for a change to an existing resource, whose id lock the caller holds."""
        notes = _with_skipped(stored.notes, plan.skipped) if self.kind.has_members else stored.notes
        if not plan.touches_backend() and plan.shadow == stored.shadow and notes == stored.notes:
            return await self._answer(record, stored, base_url, projection, ids)
        target = next_version(stored, plan.owned, plan.shadow, self.ownership)
        target.notes = notes
        if not plan.touches_backend():
            await self.store.update(self.tenant, target)
            return await self._answer(record, target, base_url, projection, ids)
        key = self.kind.natural_key
        name = str(plan.changes.get(key) or plan.owned.get(key) or "")
        renamed = key in plan.changes and name.lower() != str(record.attributes.get(key, "")).lower()
        async with contextlib.AsyncExitStack() as stack:
            if renamed:
                await stack.enter_async_context(self.store.lock(self.tenant, lock_key(self.rt.name, "name", name)))
                await self._claim_name(name)
            async with self.journal.write("update", name, target, plan.changes):
                record = await self._apply(stored, record, plan, name)
                target.backend_key = record.key
                await self.store.update(self.tenant, target)
        return await self._answer(record, target, base_url, projection, ids)

    async def _apply(self, stored: StoredResource, record: Record, plan: Plan, name: str) -> Record:
        try:
            if plan.changes:
                # The members the backend holds are unchanged by an attribute update, whatever it echoes.
                record = with_members(await self.calls.update(record, plan.changes), members_of(record))
            await self.calls.remove_members(record, plan.remove)
            await self.calls.add_members(record, plan.add)
        except AlreadyExists:
            raise self._taken(name) from None
        except NotFound:
            await self.store.delete(self.tenant, self.rt.name, stored.id)
            raise NotFound(f"{self.rt.name} {stored.id} not found") from None
        gone = set(plan.remove)
        return with_members(record, [k for k in members_of(record) if k not in gone] + plan.add)

    # --- delete ----------------------------------------------------------------------

    async def delete(self, id: str, if_match: Sequence[str] | None) -> None:
        self.require_supported()
        async with self.store.lock(self.tenant, lock_key(self.rt.name, "id", id)):
            stored = await self._stored(id)
            check_if_match(stored, if_match)
            name = stored.sent.get(self.kind.natural_key, stored.backend_key)
            async with self.journal.write("delete", name, stored):
                record = await self.fetch(stored.backend_key)
                if record is not None:
                    # Gone meanwhile? Deleting the mapping finishes the job.
                    with contextlib.suppress(NotFound):
                        await self.calls.delete(record)
                await self.store.delete(self.tenant, self.rt.name, id)

    # Last in the class: a method named ``list`` would shadow the builtin in the annotations below it.
    async def list(self, query: ListQuery, base_url: str) -> tuple[list[Resource], int]:
        self.require_supported()
        return await self.lister.run(query, base_url)


def _with_skipped(notes: dict[str, Any], skipped: list[str]) -> dict[str, Any]:
    """``notes`` recording the member ids a group write had to skip (for ``reconcile``)."""
    kept = {k: v for k, v in notes.items() if k != "skipped_members"}
    return {**kept, "skipped_members": sorted(set(skipped))} if skipped else kept


def _skipped_after(before: list[str], edits: list[MemberEdit], skipped_now: list[str]) -> list[str]:
    """The skipped member ids once ``edits`` are applied: a removed or replaced id is no longer pending."""
    pending = set(before)
    for edit in edits:
        if edit.op == "replace" or (edit.op.startswith("remove") and edit.ids is None):
            pending = set()
        elif edit.op == "remove":
            pending -= set(edit.ids or ())
        elif edit.op == "remove_folded":
            gone = {i.lower() for i in edit.ids or ()}
            pending = {p for p in pending if p.lower() not in gone}
    return sorted(pending | set(skipped_now))
