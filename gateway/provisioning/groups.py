"""SCIM operations on Groups (distribution lists)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import structlog

from adapters.base import AlreadyExists, GroupRecord, NotFound, Page, Transient
from gateway.provisioning.common import (
    Resource,
    ResourceServiceBase,
    TenantContext,
    check_if_match,
    echo_sent,
)
from gateway.provisioning.journal import Journal
from gateway.provisioning.ownership import Ownership, merge
from gateway.scim.errors import ScimError, invalid_value, uniqueness
from gateway.scim.filter_ast import AttrPath, Compare, Filter
from gateway.scim.members import MemberEdit, apply_member_edits, member_edits
from gateway.scim.patch import apply_patch, parse_patch
from gateway.scim.query import Projection
from gateway.scim.resources import normalize_resource
from gateway.scim.schema import GROUP_RESOURCE, USER_RESOURCE
from gateway.store.base import StoredResource

log = structlog.get_logger("gateway.groups")


class GroupService(ResourceServiceBase[GroupRecord]):
    rt = GROUP_RESOURCE

    def __init__(self, ctx: TenantContext) -> None:
        super().__init__(ctx)
        caps = ctx.adapter.capabilities
        # Members are owned by the backend but travel separately as member keys.
        self.ownership = Ownership(caps.group_attributes - {"members"})
        self.filterable = caps.group_filterable
        self.journal = Journal(ctx.store, ctx.tenant, self.rt.name, ctx.landing_window_s)
        self.natural_key = "displayName"

    async def _find_by_name(self, name: str) -> tuple[str, dict[str, Any]] | None:
        flt = Compare(AttrPath("displayName"), "eq", name)
        page = await self.guard.call(self.adapter.find_groups, flt, 0, 2)
        return (page.items[0].key, page.items[0].attributes) if page.items else None

    async def _fetch_owned(self, key: str) -> dict[str, Any] | None:
        record = await self._fetch(key)
        return record.attributes if record is not None else None

    def _require_groups(self) -> None:
        if not self.adapter.capabilities.groups:
            raise ScimError(501, "This mail platform has no distribution lists: Groups are not supported.")

    async def _find(self, flt: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        self._require_groups()
        return await self.adapter.find_groups(flt, offset, limit)

    async def _fetch(self, key: str) -> GroupRecord | None:
        self._require_groups()
        try:
            return await self.guard.call(self.adapter.get_group, key)
        except NotFound:
            return None

    def _key(self, record: GroupRecord) -> str:
        return record.key

    async def _member_ids(self, member_keys: list[str]) -> dict[str, str]:
        """User key → SCIM id, adopting mailboxes that were added to the list outside the gateway."""
        ids = await self.store.ids_by_keys(self.tenant, USER_RESOURCE.name, member_keys) if member_keys else {}
        for key in member_keys:
            if key not in ids:
                ids[key] = (await self._adopt(key, USER_RESOURCE.name)).id
        return ids

    async def _member_keys(self, member_ids: list[str], known: dict[str, str] | None = None) -> dict[str, str]:
        """SCIM id → mailbox key for each id that names a provisioned User, in the given order.

        ``known`` (id → key, e.g. the current members) spares the store a lookup per member:
        adding one member to a list of thousands looks up one id.

        Ids that name no provisioned User (a nested group, or a user deleted meanwhile) are
        skipped with a warning rather than failing the whole PATCH: Entra sends many members
        per request, and one it cannot place must not keep the others off the list.
        """
        known = known or {}
        unknown = [m for m in member_ids if m not in known]
        users = await self.store.get_many(self.tenant, USER_RESOURCE.name, unknown) if unknown else {}
        missing = [m for m in unknown if m not in users]
        if missing:
            groups = await self.store.get_many(self.tenant, GROUP_RESOURCE.name, missing)
            log.warning(
                "group members skipped",
                nested_groups=sorted(groups),
                unknown_ids=sorted(m for m in missing if m not in groups),
                reason="a distribution list can only hold provisioned mailboxes",
            )
        keys: dict[str, str] = {}
        for m in member_ids:
            key = known.get(m) or (users[m].backend_key if m in users else None)
            if key is not None:
                keys[m] = key
        return keys

    def _body(self, record: GroupRecord, stored: StoredResource, member_ids: dict[str, str] | None,
              base_url: str) -> Resource:
        body = merge(echo_sent(record.attributes, stored.sent), stored.shadow)
        if member_ids is not None:
            body["members"] = [
                {"value": member_ids[k], "$ref": f"{base_url}/Users/{member_ids[k]}", "type": "User"}
                for k in record.member_keys
            ]
        return body

    async def _render_many(
        self, pairs: list[tuple[GroupRecord, StoredResource]], base_url: str, projection: Projection
    ) -> list[Resource]:
        ids: dict[str, str] | None = None
        if not projection.excludes("members"):
            keys = list(dict.fromkeys(k for record, _ in pairs for k in record.member_keys))
            ids = await self._member_ids(keys)
        return [self._finish(self._body(record, stored, ids, base_url), stored, base_url)
                for record, stored in pairs]

    async def _render_one(self, record: GroupRecord, stored: StoredResource, base_url: str,
                          projection: Projection, ids: dict[str, str] | None = None) -> Resource:
        """``ids`` (member key → SCIM id) when the caller already knows every member's id."""
        if ids is None or projection.excludes("members"):
            resource = (await self._render_many([(record, stored)], base_url, projection))[0]
        else:
            resource = self._finish(self._body(record, stored, ids, base_url), stored, base_url)
        return self._project(resource, projection)

    async def _load(self, id: str) -> tuple[StoredResource, GroupRecord]:
        self._require_groups()
        stored = await self._stored(id)
        record = await self._fetch(stored.backend_key)
        if record is None:
            await self.store.delete(self.tenant, self.rt.name, id)
            raise ScimError(404, f"Group {id} not found (the list no longer exists on the mail platform)")
        return stored, record

    # --- operations --------------------------------------------------------------

    async def get(self, id: str, base_url: str, projection: Projection) -> Resource:
        stored, record = await self._load(id)
        return await self._render_one(record, stored, base_url, projection)

    async def create(self, body: Any, base_url: str, projection: Projection) -> Resource:
        self._require_groups()
        resource = normalize_resource(body, self.rt)
        member_ids = [m["value"] for m in resource.pop("members", [])]
        owned, shadow = self.ownership.split(resource)
        name: str = resource["displayName"]
        stored = self._new_mapping(owned, shadow)
        async with self.store.lock(self.tenant, f"Group/name/{name.lower()}"):
            await self._settle(name)
            if await self._find_by_name(name) is not None:
                raise uniqueness(f"displayName '{name}' is already taken by another group")
            member_keys = list((await self._member_keys(member_ids)).values())
            async with self.journal.write("create", name, stored):
                record = await self._create_group(owned, member_keys, name)
                stored.backend_key = record.key
                await self.store.insert(self.tenant, stored)
        return await self._render_one(record, stored, base_url, projection)

    async def _create_group(self, owned: Resource, member_keys: list[str], name: str) -> GroupRecord:
        try:
            return await self.guard.call(self.adapter.create_group, owned, member_keys)
        except AlreadyExists:
            raise uniqueness(f"displayName '{name}' is already taken by another group") from None
        except ScimError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, Transient) and cause.ambiguous):
                raise
            # The answer was lost: the list may exist now. Adopt it if nobody else maps it.
            found = await self._find_by_name(name)
            if found is None or await self.store.get_by_key(self.tenant, self.rt.name, found[0]) is not None:
                raise
            record = await self._fetch(found[0])
            if record is None:
                raise
            missing = [k for k in member_keys if k not in record.member_keys]
            if missing:
                await self.guard.call(self.adapter.add_members, record.key, missing)
                record.member_keys.extend(missing)
            return record

    async def replace(self, id: str, body: Any, base_url: str, projection: Projection,
                      if_match: Sequence[str] | None) -> Resource:
        new = normalize_resource(body, self.rt)
        async with self.store.lock(self.tenant, f"Group/id/{id}"):
            stored, record = await self._load(id)
            check_if_match(stored, if_match)
            return await self._write(stored, record, new, base_url, projection)

    async def patch(self, id: str, body: Any, base_url: str, projection: Projection,
                    if_match: Sequence[str] | None) -> Resource:
        ops = parse_patch(body, self.rt, self.ctx.max_patch_operations)
        edits = member_edits(ops)
        async with self.store.lock(self.tenant, f"Group/id/{id}"):
            stored, record = await self._load(id)
            check_if_match(stored, if_match)
            ids = await self._member_ids(record.member_keys)
            if edits is not None:
                return await self._write_members(stored, record, edits, ids, base_url, projection)
            current = {"id": stored.id, **self._body(record, stored, ids, base_url)}
            new = apply_patch(current, ops, self.rt)
            return await self._write(stored, record, new, base_url, projection, ids)

    async def _write_members(self, stored: StoredResource, record: GroupRecord, edits: list[MemberEdit],
                             ids: dict[str, str], base_url: str, projection: Projection) -> Resource:
        """Membership sync (Entra's member add/remove): the edits applied to ids, in few passes
        over the members, since a list may hold thousands."""
        wanted = apply_member_edits([ids[k] for k in record.member_keys], edits)
        keep = set(wanted)
        to_remove = [k for k in record.member_keys if ids[k] not in keep]
        known = {member_id: key for key, member_id in ids.items()}
        added = await self._member_keys([m for m in wanted if m not in known])
        to_add = list(added.values())
        ids.update((key, member_id) for member_id, key in added.items())
        owned, _ = self.ownership.split(echo_sent(record.attributes, stored.sent))
        return await self._commit(stored, record, {}, owned, stored.shadow, to_add, to_remove, ids, base_url,
                                  projection)

    async def _write(self, stored: StoredResource, record: GroupRecord, new: Resource, base_url: str,
                     projection: Projection, ids: dict[str, str] | None = None) -> Resource:
        """``ids``: the current members' key → id map, when known."""
        new = dict(new)
        wanted_ids = list(dict.fromkeys(m["value"] for m in new.pop("members", []) or []))
        new_owned, new_shadow = self.ownership.split(new)
        old_owned, _ = self.ownership.split(echo_sent(record.attributes, stored.sent))
        changes = self.ownership.changes(old_owned, new_owned)
        if "displayName" in changes and not changes["displayName"]:
            raise invalid_value("displayName is required and cannot be removed")
        by_id = await self._member_keys(wanted_ids, {v: k for k, v in ids.items()} if ids else None)
        wanted_keys = list(by_id.values())
        new_ids = {key: member_id for member_id, key in by_id.items()}
        current = set(record.member_keys)
        to_add = [k for k in wanted_keys if k not in current]
        wanted = set(wanted_keys)
        to_remove = [k for k in record.member_keys if k not in wanted]
        return await self._commit(stored, record, changes, new_owned, new_shadow, to_add, to_remove,
                                  {**(ids or {}), **new_ids}, base_url, projection)

    async def _commit(self, stored: StoredResource, record: GroupRecord, changes: Resource, new_owned: Resource,
                      new_shadow: Resource, to_add: list[str], to_remove: list[str], ids: dict[str, str],
                      base_url: str, projection: Projection) -> Resource:
        """Send the changes to the backend (journalled) and answer with the group; ``ids`` maps every
        member key, old and new, to its SCIM id."""
        if not (changes or to_add or to_remove or new_shadow != stored.shadow):
            return await self._render_one(record, stored, base_url, projection, ids)
        target = self._next_version(stored, new_owned, new_shadow)
        name = str(new_owned.get("displayName") or "")
        async with self.journal.write("update", name, target, changes):
            record = await self._update_backend(stored, record, changes, to_add, to_remove)
            target.backend_key = record.key
            await self.store.update(self.tenant, target)
        gone = set(to_remove)
        record.member_keys = [k for k in record.member_keys if k not in gone] + to_add
        return await self._render_one(record, target, base_url, projection, ids)

    async def _update_backend(self, stored: StoredResource, record: GroupRecord, changes: Resource,
                              to_add: list[str], to_remove: list[str]) -> GroupRecord:
        key = stored.backend_key
        try:
            if changes:
                updated = await self.guard.call(self.adapter.update_group, key, changes)
                record = GroupRecord(updated.key, updated.attributes, record.member_keys)
                key = record.key
            if to_remove:
                await self.guard.call(self.adapter.remove_members, key, to_remove)
            if to_add:
                await self.guard.call(self.adapter.add_members, key, to_add)
        except AlreadyExists:
            raise uniqueness(f"displayName '{changes.get('displayName')}' is already taken by another group") from None
        except NotFound:
            await self.store.delete(self.tenant, self.rt.name, stored.id)
            raise ScimError(404, f"Group {stored.id} not found") from None
        return record

    async def delete(self, id: str, if_match: Sequence[str] | None) -> None:
        self._require_groups()
        async with self.store.lock(self.tenant, f"Group/id/{id}"):
            stored = await self._stored(id)
            check_if_match(stored, if_match)
            async with self.journal.write("delete", stored.sent.get("displayName", stored.backend_key), stored):
                with contextlib.suppress(NotFound):
                    await self.guard.call(self.adapter.delete_group, stored.backend_key)
                await self.store.delete(self.tenant, self.rt.name, id)
