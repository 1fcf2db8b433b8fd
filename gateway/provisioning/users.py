"""SCIM operations on Users (mailboxes)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import structlog

from adapters.base import AlreadyExists, NotFound, Page, Transient, UserRecord
from gateway.provisioning.common import (
    Resource,
    ResourceServiceBase,
    TenantContext,
    check_if_match,
    echo_sent,
)
from gateway.provisioning.journal import Journal
from gateway.provisioning.ownership import Ownership, merge
from gateway.scim.errors import ScimError, uniqueness
from gateway.scim.filter_ast import AttrPath, Compare, Filter
from gateway.scim.patch import apply_patch, parse_patch
from gateway.scim.query import Projection
from gateway.scim.resources import normalize_resource
from gateway.scim.schema import USER_RESOURCE
from gateway.store.base import DuplicateKey, StoredResource

log = structlog.get_logger("gateway.users")


def _user_name_filter(user_name: str) -> Filter:
    return Compare(AttrPath("userName"), "eq", user_name)


class UserService(ResourceServiceBase[UserRecord]):
    rt = USER_RESOURCE

    def __init__(self, ctx: TenantContext) -> None:
        super().__init__(ctx)
        caps = ctx.adapter.capabilities
        self.ownership = Ownership(caps.user_attributes)
        self.filterable = caps.user_filterable
        self.journal = Journal(ctx.store, ctx.tenant, self.rt.name, ctx.landing_window_s)
        self.natural_key = "userName"

    async def _find_by_name(self, name: str) -> tuple[str, dict[str, Any]] | None:
        page = await self.guard.call(self.adapter.find_users, _user_name_filter(name), 0, 2)
        return (page.items[0].key, page.items[0].attributes) if page.items else None

    async def _fetch_owned(self, key: str) -> dict[str, Any] | None:
        record = await self._fetch(key)
        return record.attributes if record is not None else None

    async def _find(self, flt: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        return await self.adapter.find_users(flt, offset, limit)

    async def _fetch(self, key: str) -> UserRecord | None:
        try:
            return await self.guard.call(self.adapter.get_user, key)
        except NotFound:
            return None

    def _key(self, record: UserRecord) -> str:
        return record.key

    def _body(self, record: UserRecord, stored: StoredResource) -> Resource:
        return merge(echo_sent(record.attributes, stored.sent), stored.shadow)

    async def _render_many(
        self, pairs: list[tuple[UserRecord, StoredResource]], base_url: str, projection: Projection
    ) -> list[Resource]:
        return [self._finish(self._body(record, stored), stored, base_url) for record, stored in pairs]

    async def _load(self, id: str) -> tuple[StoredResource, UserRecord]:
        stored = await self._stored(id)
        record = await self._fetch(stored.backend_key)
        if record is None:
            # The mailbox vanished behind the gateway's back: forget the stale mapping.
            await self.store.delete(self.tenant, self.rt.name, id)
            raise ScimError(404, f"User {id} not found (the mailbox no longer exists on the mail platform)")
        return stored, record

    # --- operations --------------------------------------------------------------

    async def get(self, id: str, base_url: str, projection: Projection) -> Resource:
        stored, record = await self._load(id)
        return self._project(self._finish(self._body(record, stored), stored, base_url), projection)

    def _check_domain(self, user_name: str) -> None:
        domains = self.ctx.domains
        if not domains:
            return
        _, at, domain = user_name.rpartition("@")
        if not at or domain.lower() not in domains:
            raise ScimError(
                400,
                f"userName '{user_name}' is not an address in this tenant's mail domains ({', '.join(sorted(domains))})"
                "; provision only users of those domains, or add the domain to the tenant's configuration.",
                "invalidValue",
            )

    def _normalize(self, body: Any) -> Resource:
        resource = normalize_resource(body, self.rt)
        self._check_domain(resource["userName"])
        if "password" in resource and "password" not in self.ownership.paths:
            # Never kept by the gateway: a platform that cannot take a password does not get one.
            del resource["password"]
            log.info("password attribute ignored: the mail platform adapter does not set passwords")
        return resource

    async def create(self, body: Any, base_url: str, projection: Projection) -> Resource:
        resource = self._normalize(body)
        owned, shadow = self.ownership.split(resource)
        user_name: str = resource["userName"]
        stored = self._new_mapping(owned, shadow)
        async with self.store.lock(self.tenant, f"User/name/{user_name.lower()}"):
            await self._settle(user_name)
            # Checked here too, not only by the backend: some legacy APIs silently create a duplicate.
            if await self._find_by_name(user_name) is not None:
                raise uniqueness(f"userName '{user_name}' is already taken by another mailbox")
            async with self.journal.write("create", user_name, stored):
                record = await self._create_once(owned, user_name)
                stored.backend_key = record.key
                try:
                    await self.store.insert(self.tenant, stored)
                except DuplicateKey:
                    # The mapping of a mailbox deleted behind the gateway's back: its id named another
                    # user, which must stay gone (Entra reports InvalidAnchor for it), not become this one.
                    stale = await self.store.get_by_key(self.tenant, self.rt.name, record.key)
                    if stale is not None:
                        await self.store.delete(self.tenant, self.rt.name, stale.id)
                    await self.store.insert(self.tenant, stored)
        return self._project(self._finish(self._body(record, stored), stored, base_url), projection)

    async def _create_once(self, owned: Resource, user_name: str) -> UserRecord:
        """Create the mailbox at most once, even when the backend's answer was lost.

        After an ambiguous failure the mailbox is re-read once. Found: the create happened, and it
        is ours. Not found: the request may still land late (a timed-out request can sit in a
        queue), so no second create is sent now; the client gets 503 and the journal entry stays,
        to be settled by the next touch once the first request has surely landed or died.
        """
        try:
            return await self.guard.call(self.adapter.create_user, owned)
        except AlreadyExists:
            raise uniqueness(f"userName '{user_name}' is already taken by another mailbox") from None
        except ScimError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, Transient) and cause.ambiguous):
                raise
            page = await self.guard.call(self.adapter.find_users, _user_name_filter(user_name), 0, 2)
            if not page.items:
                raise
            record = page.items[0]
            if await self.store.get_by_key(self.tenant, self.rt.name, record.key) is not None:
                raise uniqueness(f"userName '{user_name}' is already taken by another mailbox") from None
            return record

    async def replace(
        self, id: str, body: Any, base_url: str, projection: Projection, if_match: Sequence[str] | None
    ) -> Resource:
        new = self._normalize(body)
        async with self.store.lock(self.tenant, f"User/id/{id}"):
            stored, record = await self._load(id)
            check_if_match(stored, if_match)
            return await self._write(stored, record, new, base_url, projection)

    async def patch(
        self, id: str, body: Any, base_url: str, projection: Projection, if_match: Sequence[str] | None
    ) -> Resource:
        ops = parse_patch(body, self.rt, self.ctx.max_patch_operations)
        async with self.store.lock(self.tenant, f"User/id/{id}"):
            stored, record = await self._load(id)
            check_if_match(stored, if_match)
            current = {"id": stored.id, **self._body(record, stored)}
            new = apply_patch(current, ops, self.rt)
            if "password" in new and "password" not in self.ownership.paths:
                del new["password"]
            if isinstance(new.get("userName"), str):
                self._check_domain(new["userName"])
            return await self._write(stored, record, new, base_url, projection)

    async def _write(
        self, stored: StoredResource, record: UserRecord, new: Resource, base_url: str, projection: Projection
    ) -> Resource:
        old_owned, _ = self.ownership.split(echo_sent(record.attributes, stored.sent))
        new_owned, new_shadow = self.ownership.split(new)
        changes = self.ownership.changes(old_owned, new_owned)
        if changes.get("userName") is None and "userName" in changes:
            raise ScimError(400, "userName is required and cannot be removed", "invalidValue")
        # Only attributes absent from the backend belong to the shadow.
        shadow_changed = new_shadow != stored.shadow
        if not changes and not shadow_changed:
            return self._project(self._finish(self._body(record, stored), stored, base_url), projection)
        target = self._next_version(stored, new_owned, new_shadow)
        if changes:
            name = str(changes.get("userName") or new_owned.get("userName") or "")
            renamed = "userName" in changes and name.lower() != str(old_owned.get("userName", "")).lower()
            async with contextlib.AsyncExitStack() as stack:
                if renamed:
                    await stack.enter_async_context(self.store.lock(self.tenant, f"User/name/{name.lower()}"))
                    if await self._find_by_name(name) is not None:
                        raise uniqueness(f"userName '{name}' is already taken by another mailbox")
                async with self.journal.write("update", name, target, changes):
                    record = await self._update_backend(stored, changes)
                    target.backend_key = record.key
                    await self.store.update(self.tenant, target)
        else:
            await self.store.update(self.tenant, target)
        return self._project(self._finish(self._body(record, target), target, base_url), projection)

    async def _update_backend(self, stored: StoredResource, changes: dict[str, Any]) -> UserRecord:
        try:
            return await self.guard.call(self.adapter.update_user, stored.backend_key, changes)
        except AlreadyExists:
            raise uniqueness(f"userName '{changes.get('userName')}' is already taken by another mailbox") from None
        except NotFound:
            await self.store.delete(self.tenant, self.rt.name, stored.id)
            raise ScimError(404, f"User {stored.id} not found") from None

    async def delete(self, id: str, if_match: Sequence[str] | None) -> None:
        async with self.store.lock(self.tenant, f"User/id/{id}"):
            stored = await self._stored(id)
            check_if_match(stored, if_match)
            async with self.journal.write("delete", stored.sent.get("userName", stored.backend_key), stored):
                # Already gone from the platform? Deleting the mapping finishes the job.
                with contextlib.suppress(NotFound):
                    await self.guard.call(self.adapter.delete_user, stored.backend_key)
                await self.store.delete(self.tenant, self.rt.name, id)
