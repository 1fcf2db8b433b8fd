"""Group members: SCIM ids (what Entra sends) ↔ mailbox keys (what the backend stores)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from gateway.provisioning.mappings import adopt
from gateway.scim.schema import GROUP_RESOURCE, USER_RESOURCE
from gateway.store.base import StateStore

log = structlog.get_logger("gateway.groups")

SkippedObserver = Callable[[int], None]
"""Told how many member ids a request had to skip."""


class MemberDirectory:
    def __init__(self, store: StateStore, tenant: str) -> None:
        self.store = store
        self.tenant = tenant
        self.on_skipped: SkippedObserver | None = None

    async def ids_for(self, keys: Sequence[str]) -> dict[str, str]:
        """Mailbox key → SCIM id, adopting mailboxes that were added to a list outside the gateway."""
        if not keys:
            return {}
        ids = await self.store.ids_by_keys(self.tenant, USER_RESOURCE.name, list(keys))
        for key in keys:
            if key not in ids:
                ids[key] = (await adopt(self.store, self.tenant, USER_RESOURCE.name, key)).id
        return ids

    async def keys_for(self, member_ids: Sequence[str], group: str, known: dict[str, str] | None = None
                       ) -> tuple[dict[str, str], list[str]]:
        """SCIM id → mailbox key for each id that names a provisioned User, in the given order; and the
        ids that name none, skipped.

        ``known`` (id → key, e.g. the current members) spares the store a lookup per member:
        adding one member to a list of thousands looks up one id.

        Ids that name no provisioned User (a nested group, or a user deleted meanwhile) are
        skipped with a warning naming the group and the ids, rather than failing the whole
        PATCH: Entra sends many members per request, and one it cannot place must not keep
        the others off the list.
        """
        known = known or {}
        unknown = [m for m in member_ids if m not in known]
        users = await self.store.get_many(self.tenant, USER_RESOURCE.name, unknown) if unknown else {}
        missing = [m for m in unknown if m not in users]
        if missing:
            groups = await self.store.get_many(self.tenant, GROUP_RESOURCE.name, missing)
            log.warning(
                "group members skipped",
                group=group,
                nested_groups=sorted(groups),
                unknown_ids=sorted(m for m in missing if m not in groups),
                reason="a distribution list can only hold provisioned mailboxes",
            )
            if self.on_skipped is not None:
                self.on_skipped(len(missing))
        keys: dict[str, str] = {}
        for m in member_ids:
            key = known.get(m) or (users[m].backend_key if m in users else None)
            if key is not None:
                keys[m] = key
        return keys, missing
