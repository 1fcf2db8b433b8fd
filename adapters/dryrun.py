"""A backend wrapper that answers like the real backend but sends it no write.

It serves a tenant's trial run (``dry_run``): an administrator points Entra's
provisioning job at the gateway and reads in the log what it would do to the mail
platform. Reads go to the real backend. Each write is logged (``dry-run: would
create_user`` with its arguments) and kept in an in-process overlay, so that the
reads after it agree with it: Entra creates a user, PATCHes what it created and
filters for it, and any answer that contradicted an earlier write would make it retry
or quarantine the job.

Limits, by design:

* the overlay lives as long as the process; after a restart the state store still maps
  the simulated objects, and the gateway answers 404 for them (``scim-gateway
  reconcile`` lists them as dead mappings);
* refusals only the backend can give (an unknown mail domain, a quota) are not
  predicted: a simulated create succeeds where the real one might not;
* a simulated group's key is made up (``dry-run:<uuid>``): the real key is derived by
  the backend when it creates the list;
* once the run has changed or deleted objects that exist in the backend, a listing is
  rebuilt from the whole (filtered) backend listing on each call. Entra's reads are
  filters on one userName or displayName, for which that is a single small read.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from pydantic import Field

from adapters.base import (
    Adapter,
    AlreadyExists,
    Attributes,
    GroupRecord,
    HealthCheck,
    NotFound,
    Page,
    Rejected,
    UserRecord,
)
from adapters.plugins import BackendContext, BackendPlugin, BackendSettingsModel
from adapters.records import ResourceTypeName, record_filter, set_dotted
from gateway.logs import SECRET_KEYS
from gateway.scim.filter_ast import AttrPath, Compare, Filter

log = structlog.get_logger("adapters.dryrun")

R = TypeVar("R", UserRecord, GroupRecord)
FindFn = Callable[[Filter | None, int, int], Awaitable[Page[R]]]


# --- pure helpers --------------------------------------------------------------------


def redact(value: Any) -> Any:
    """A copy of ``value`` fit for a log line: secrets nested in attributes are masked too."""
    if isinstance(value, Mapping):
        return {k: "[redacted]" if str(k).lower() in SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _name_of(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Rejected(f"{what} is required")
    return value


class DryRunAdapter:
    """Wraps ``inner``: reads pass through, writes are logged and simulated in memory."""

    def __init__(self, inner: Adapter, *, tenant: str | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.tenant = tenant
        # Current key → attributes, or None where the object is gone (deleted, renamed away).
        self._users: dict[str, Attributes | None] = {}
        self._groups: dict[str, GroupRecord | None] = {}
        # Overlay keys that hide an object of the real backend: listings must then skip
        # the real object, which costs a full scan of the (filtered) listing.
        self._real_users: set[str] = set()
        self._real_groups: set[str] = set()
        # Real lists still name real mailboxes by their real keys; these say where each of
        # those mailboxes went (current key, or None once deleted).
        self._origin: dict[str, str] = {}
        self._moved: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"DryRunAdapter({self.inner!r})"

    def _would(self, op: str, **arguments: Any) -> None:
        log.info(f"dry-run: would {op}", op=op, tenant=self.tenant, backend=self.name, **redact(arguments))

    async def start(self) -> None:
        await self.inner.start()
        log.warning("dry-run: writes to the backend are simulated, not sent", tenant=self.tenant, backend=self.name)

    async def close(self) -> None:
        await self.inner.close()

    async def check(self) -> None:
        if isinstance(self.inner, HealthCheck):
            await self.inner.check()

    # --- merged listings -----------------------------------------------------------

    async def _scan(self, find: FindFn[R], flt: Filter | None) -> list[R]:
        size = max(1, self.capabilities.max_page_size)
        found: list[R] = []
        while True:
            page = await find(flt, len(found), size)
            found.extend(page.items)
            if not page.items or len(found) >= page.total:
                return found

    async def _merged(
        self,
        find: FindFn[R],
        flt: Filter | None,
        offset: int,
        limit: int,
        overlay: Mapping[str, object],
        copy_of: Callable[[str], R | None],
        hides_real: bool,
        current: Callable[[R], R],
        resource_type: ResourceTypeName,
    ) -> Page[R]:
        """The real listing with the overlay applied: replaced objects in place, new ones after.

        While the overlay only adds objects, real positions stay valid and one real page
        is enough; once it hides a real object, positions shift and the listing is built
        whole. Either way an object keeps its position from one call to the next as long as
        no write comes in between, so paging neither skips nor repeats.
        """
        selected = record_filter(flt, resource_type)
        present = (copy_of(key) for key in sorted(overlay))
        added = [r for r in present if r is not None and selected(r.attributes)]
        if not hides_real:
            page = await find(flt, offset, limit)
            items = [current(r) for r in page.items if r.key not in overlay]
            if offset + len(page.items) >= page.total:
                start = max(offset, page.total) - page.total
                items.extend(added[start : start + max(0, limit - len(items))])
            return Page(items, page.total + len(added))
        placed: set[str] = set()
        merged: list[R] = []
        for record in await self._scan(find, flt):
            if record.key not in overlay:
                merged.append(current(record))
                continue
            replacement = copy_of(record.key)
            if replacement is not None and selected(replacement.attributes):
                merged.append(replacement)
                placed.add(record.key)
        merged.extend(r for r in added if r.key not in placed)
        return Page(merged[offset : offset + limit], len(merged))

    def _user_copy(self, key: str) -> UserRecord | None:
        attrs = self._users[key]
        return None if attrs is None else UserRecord(key, copy.deepcopy(attrs))

    def _group_copy(self, key: str) -> GroupRecord | None:
        group = self._groups[key]
        return None if group is None else GroupRecord(key, copy.deepcopy(group.attributes), list(group.member_keys))

    # --- users ---------------------------------------------------------------------

    async def _user_or_none(self, key: str) -> UserRecord | None:
        if key in self._users:
            return self._user_copy(key)
        try:
            return await self.inner.get_user(key)
        except NotFound:
            return None

    async def _touch_user(self, key: str) -> Attributes:
        """The overlay's attributes for ``key``, copying the real mailbox in on first write."""
        if key not in self._users:
            real = await self.inner.get_user(key)
            self._users[key] = real.attributes
            self._real_users.add(key)
            self._origin[key] = key
        attrs = self._users[key]
        if attrs is None:
            raise NotFound(f"mailbox {key} not found")
        return attrs

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        if not self._users:
            return await self.inner.find_users(filter, offset, limit)
        return await self._merged(
            self.inner.find_users, filter, offset, limit, self._users, self._user_copy, bool(self._real_users),
            lambda r: r, "User",
        )

    async def get_user(self, key: str) -> UserRecord:
        found = await self._user_or_none(key)
        if found is None:
            raise NotFound(f"mailbox {key} not found")
        return found

    async def create_user(self, attributes: Attributes) -> UserRecord:
        key = _name_of(attributes.get("userName"), "userName").strip().lower()
        if await self._user_or_none(key) is not None:
            raise AlreadyExists(key, f"mailbox {key} already exists")
        stored = {k: copy.deepcopy(v) for k, v in attributes.items() if v is not None}
        stored.setdefault("active", True)
        self._would("create_user", attributes=attributes)
        self._users[key] = stored
        self._origin.pop(key, None)
        return UserRecord(key, copy.deepcopy(stored))

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        key = record.key
        current = copy.deepcopy(await self._touch_user(key))
        new_key = key
        if "userName" in changes:
            new_key = _name_of(changes["userName"], "userName").strip().lower()
            if new_key != key and await self._user_or_none(new_key) is not None:
                raise AlreadyExists(new_key, f"mailbox {new_key} already exists")
        for dotted, value in changes.items():
            set_dotted(current, dotted, copy.deepcopy(value))
        self._would("update_user", key=key, changes=changes)
        self._users[new_key] = current
        if new_key != key:
            self._users[key] = None
            origin = self._origin.pop(key, None)
            if origin is not None:
                self._origin[new_key] = origin
                self._moved[origin] = new_key
            self._rekey_members(key, new_key)
        return UserRecord(new_key, copy.deepcopy(current))

    async def delete_user(self, record: UserRecord) -> None:
        key = record.key
        await self._touch_user(key)
        self._would("delete_user", key=key)
        self._users[key] = None
        origin = self._origin.pop(key, None)
        if origin is not None:
            self._moved[origin] = None
        self._rekey_members(key, None)

    def _rekey_members(self, old: str, new: str | None) -> None:
        """A rename or delete reaches simulated lists now, real ones when read (``_current_group``)."""
        for group in self._groups.values():
            if group is not None and old in group.member_keys:
                keys = [new if k == old else k for k in group.member_keys]
                group.member_keys = list(dict.fromkeys(k for k in keys if k is not None))

    # --- groups --------------------------------------------------------------------

    def _current_members(self, keys: Iterable[str]) -> list[str]:
        moved = (self._moved.get(k, k) for k in keys)
        return list(dict.fromkeys(k for k in moved if k is not None))

    def _current_group(self, record: GroupRecord) -> GroupRecord:
        if self._moved:
            record.member_keys = self._current_members(record.member_keys)
        return record

    async def _group_or_none(self, key: str) -> GroupRecord | None:
        if key in self._groups:
            return self._group_copy(key)
        try:
            return self._current_group(await self.inner.get_group(key))
        except NotFound:
            return None

    async def _touch_group(self, key: str) -> GroupRecord:
        if key not in self._groups:
            self._groups[key] = self._current_group(await self.inner.get_group(key))
            self._real_groups.add(key)
        group = self._groups[key]
        if group is None:
            raise NotFound(f"list {key} not found")
        return group

    async def _name_taken(self, name: str, own_key: str | None = None) -> None:
        page = await self.find_groups(Compare(AttrPath("displayName"), "eq", name), 0, 10)
        for other in page.items:
            if other.key != own_key and str(other.attributes.get("displayName", "")).lower() == name.lower():
                raise AlreadyExists(other.key, f"a group named {name!r} already exists")

    def _check_members(self, member_keys: Sequence[str]) -> list[str]:
        # Mapped mailboxes of the real backend are taken on trust (checking each would cost
        # a read per member); those deleted in this run are refused like the backend would.
        gone = [k for k in member_keys if k in self._users and self._users[k] is None]
        if gone:
            raise Rejected(f"no mailbox for member(s) {', '.join(gone)}")
        return list(dict.fromkeys(member_keys))

    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        if not self._groups:
            page = await self.inner.find_groups(filter, offset, limit)
            return Page([self._current_group(g) for g in page.items], page.total)
        return await self._merged(
            self.inner.find_groups, filter, offset, limit, self._groups, self._group_copy, bool(self._real_groups),
            self._current_group, "Group",
        )

    async def get_group(self, key: str) -> GroupRecord:
        found = await self._group_or_none(key)
        if found is None:
            raise NotFound(f"list {key} not found")
        return found

    async def create_group(self, attributes: Attributes, member_keys: Sequence[str]) -> GroupRecord:
        name = _name_of(attributes.get("displayName"), "displayName")
        await self._name_taken(name)
        members = self._check_members(member_keys)
        key = f"dry-run:{uuid.uuid4()}"
        self._would("create_group", attributes=attributes, member_keys=members)
        group = GroupRecord(key, {k: copy.deepcopy(v) for k, v in attributes.items() if v is not None}, members)
        self._groups[key] = group
        return GroupRecord(key, copy.deepcopy(group.attributes), list(members))

    async def update_group(self, record: GroupRecord, changes: Attributes) -> GroupRecord:
        key = record.key
        group = await self._touch_group(key)
        attributes = copy.deepcopy(group.attributes)
        members = list(group.member_keys)
        for path, value in changes.items():
            if path == "members":
                members = self._check_members([str(k) for k in value or []])
            elif path == "displayName":
                name = _name_of(value, "displayName")
                if name.lower() != str(attributes.get("displayName", "")).lower():
                    await self._name_taken(name, own_key=key)
                attributes["displayName"] = name
            else:
                set_dotted(attributes, path, copy.deepcopy(value))
        self._would("update_group", key=key, changes=changes)
        group.attributes, group.member_keys = attributes, members
        return GroupRecord(key, copy.deepcopy(attributes), list(members))

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        key = record.key
        group = await self._touch_group(key)
        wanted = self._check_members(member_keys)
        self._would("add_members", key=key, member_keys=wanted)
        present = set(group.member_keys)
        group.member_keys.extend(k for k in wanted if k not in present)

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        key = record.key
        group = await self._touch_group(key)
        self._would("remove_members", key=key, member_keys=list(member_keys))
        gone = set(member_keys)
        group.member_keys = [k for k in group.member_keys if k not in gone]

    async def delete_group(self, record: GroupRecord) -> None:
        key = record.key
        await self._touch_group(key)
        self._would("delete_group", key=key)
        self._groups[key] = None




class DryRunSettings(BackendSettingsModel):
    wraps: str = Field(default="memory", description="The backend whose writes are simulated (its settings as usual).")


def _create(settings: DryRunSettings, context: BackendContext) -> DryRunAdapter:
    if context.open_backend is None or settings.wraps == "dryrun":
        raise ValueError("the dryrun backend wraps another backend: set wraps to its name")
    return DryRunAdapter(context.open_backend(settings.wraps), tenant=context.tenant)


PLUGIN = BackendPlugin(
    name="dryrun", summary="Wraps another backend: reads pass through, writes are logged and simulated.",
    settings=DryRunSettings, create=_create,
)
