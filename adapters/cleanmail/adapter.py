"""The Cleanmail backend: mailboxes as SCIM Users, distribution lists as SCIM Groups.

* A user's key is its mailbox address (lower-cased by Cleanmail); a userName change is
  a rename through Cleanmail's dedicated rename call.
* A group's key is its list address, derived once from ``list_address_template`` when
  the group is created. Renaming the group changes only the list's display name: mail
  already sent to the old address keeps arriving.
* Cleanmail only knows full-replace PUTs, so every update reads the current object,
  merges the changes and sends the whole object back, including fields the gateway
  does not own (policy, quarantine report), which would otherwise be reset.
* Domains are configured by the operator in Cleanmail; a mailbox or list in an unknown
  domain is refused with a detail saying so, never created on the fly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from adapters.base import (
    AdapterError,
    AlreadyExists,
    Capabilities,
    GroupRecord,
    NotFound,
    Page,
    Rejected,
    Transient,
    UserRecord,
)
from adapters.cleanmail.client import CleanmailClient, RetryPolicy
from adapters.cleanmail.mapping import (
    GROUP_FILTERS,
    USER_FILTERS,
    Conjunction,
    apply_user_changes,
    display_name,
    editable_fields,
    flatten,
    group_record,
    new_mailbox,
    slugify,
    to_conjunctions,
    user_record,
    values_equal,
    wanted_status,
)
from gateway.scim.filter_ast import Filter

log = logging.getLogger(__name__)

R = TypeVar("R", UserRecord, GroupRecord)
Row = dict[str, Any]

PAGE_SIZE = 100
READY_DEADLINE_S = 3.0
"""Cleanmail's page-size cap; larger requests are served in several calls."""

CAPABILITIES = Capabilities(
    user_attributes=frozenset({"userName", "active", "name.givenName", "name.familyName", "displayName"}),
    user_filterable=frozenset({"userName", "active"}),
    groups=True,
    group_attributes=frozenset({"displayName", "members"}),
    group_filterable=frozenset({"displayName"}),
    max_page_size=1000,
)


def _row(value: Any) -> Row:
    if not isinstance(value, dict) or "address" not in value:
        raise Transient("Cleanmail sent a reply without the expected object")
    return value


# Mailboxes read in the current request (task), for the full-replace PUT that follows the read.
_RECENT: ContextVar[dict[str, tuple[float, Row]] | None] = ContextVar("cleanmail_recent_reads", default=None)
_RECENT_MAX_AGE_S = 2.0


def _remember(row: Row) -> None:
    recent = _RECENT.get()
    if recent is None or len(recent) > 16:
        recent = {}
        _RECENT.set(recent)
    recent[str(row.get("address", "")).lower()] = (time.monotonic(), row)


def _recall(address: str) -> Row | None:
    recent = _RECENT.get()
    if not recent:
        return None
    found = recent.pop(address.lower(), None)
    if found is None or time.monotonic() - found[0] > _RECENT_MAX_AGE_S:
        return None
    return found[1]


class CleanmailAdapter:
    name = "cleanmail"
    capabilities = CAPABILITIES

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        list_address_template: str = "{slug}@{domain}",
        default_domain: str | None = None,
        attempt_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        deadline: float = 20.0,
        max_attempts: int = 4,
        backoff_initial: float = 0.2,
        backoff_max: float = 3.0,
        pool_limit: int = 32,
    ) -> None:
        try:
            sample = list_address_template.format(slug="sales", domain="example.com")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"list_address_template {list_address_template!r}: {err}") from err
        if "{slug}" not in list_address_template or sample.count("@") != 1:
            raise ValueError("list_address_template must contain {slug} and yield one local@domain address")
        self.list_address_template = list_address_template
        self.default_domain = default_domain.lower() if default_domain else None
        policy = RetryPolicy(
            attempt_timeout=attempt_timeout,
            connect_timeout=connect_timeout,
            deadline=deadline,
            max_attempts=max_attempts,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )
        self.client = CleanmailClient(base_url, api_key, policy=policy, pool_limit=pool_limit)
        self._discovered_domain: str | None = None

    def __repr__(self) -> str:
        return f"CleanmailAdapter({str(self.client.base_url)!r})"

    @property
    def stats(self) -> dict[str, int]:
        return self.client.stats.as_dict()

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def check(self) -> None:
        # A readiness probe must answer quickly, not after the full retry budget.
        deadline = min(self.client.policy.deadline, READY_DEADLINE_S)
        try:
            await self.client.request("GET", ("domains",), params={"limit": 1}, deadline=deadline)
        except Transient:
            raise
        except AdapterError as err:
            raise Transient(f"Cleanmail is not usable: {err}") from err

    # --- shared listing helpers -------------------------------------------------------

    async def _page(
        self, resource: str, params: Mapping[str, str], offset: int, limit: int, convert: Callable[[Row], R]
    ) -> Page[R]:
        """One window of a listing, in as many calls as Cleanmail's page cap requires."""
        items: list[R] = []
        total = 0
        position = offset
        while True:
            size = min(limit - len(items), PAGE_SIZE)
            reply = await self.client.get(resource, params={**params, "offset": position, "limit": size})
            if not isinstance(reply, dict) or not isinstance(reply.get("items"), list):
                raise Transient(f"Cleanmail sent a malformed {resource} listing")
            total = int(reply.get("total", 0))
            rows = reply["items"]
            # A server that ignores paging sends everything from the start.
            start = int(reply.get("offset", position))
            rows = rows[max(0, position - start) :][:size]
            items.extend(convert(_row(r)) for r in rows)
            position += len(rows)
            if not rows or len(items) >= limit or position >= total:
                return Page(items=items, total=total)

    async def _all(self, resource: str, params: Mapping[str, str], convert: Callable[[Row], R]) -> list[R]:
        seen: dict[str, R] = {}
        offset = 0
        while True:
            page = await self._page(resource, params, offset, PAGE_SIZE, convert)
            for record in page.items:
                seen.setdefault(record.key, record)
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return list(seen.values())

    @staticmethod
    def _window(records: list[R], offset: int, limit: int) -> Page[R]:
        records.sort(key=lambda r: r.key)
        return Page(items=records[offset : offset + limit], total=len(records))

    # --- users ------------------------------------------------------------------------

    async def _mailbox(self, address: str) -> Row:
        reply = await self.client.request("GET", ("mailboxes", address), empty_is_not_found=True)
        return _row(reply)

    async def _mailbox_or_none(self, address: str) -> Row | None:
        try:
            return await self._mailbox(address)
        except NotFound:
            return None

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        conjunctions = to_conjunctions(filter, USER_FILTERS)
        if len(conjunctions) == 1 and "userName" not in conjunctions[0]:
            params = self._status_param(conjunctions[0])
            if params is None:
                return Page(items=[], total=0)
            return await self._page("mailboxes", params, offset, limit, user_record)
        found: dict[str, UserRecord] = {}
        for clause in conjunctions:
            for record in await self._users_matching(clause):
                found.setdefault(record.key, record)
        return self._window(list(found.values()), offset, limit)

    @staticmethod
    def _status_param(clause: Conjunction) -> dict[str, str] | None:
        if "active" not in clause:
            return {}
        status = wanted_status(clause["active"])
        return None if status is None else {"status": status}

    async def _users_matching(self, clause: Conjunction) -> list[UserRecord]:
        params = self._status_param(clause)
        if params is None:
            return []
        if "userName" not in clause:
            return await self._all("mailboxes", params, user_record)
        name = clause["userName"]
        if not isinstance(name, str) or "/" in name:
            return []
        row = await self._mailbox_or_none(name)
        if row is None or ("status" in params and row.get("status") != params["status"]):
            return []
        return [user_record(row)]

    async def get_user(self, key: str) -> UserRecord:
        row = await self._mailbox(key)
        _remember(row)
        return user_record(row)

    async def create_user(self, attributes: Mapping[str, Any]) -> UserRecord:
        body = new_mailbox(attributes)
        try:
            reply = await self.client.request("POST", ("mailboxes",), body=body)
        except AlreadyExists as err:
            raise AlreadyExists(err.existing_key or body["address"], str(err)) from None
        return user_record(_row(reply))

    async def update_user(self, key: str, changes: Mapping[str, Any]) -> UserRecord:
        # The gateway reads a mailbox right before it changes it: reuse that read (same request,
        # at most a moment old) instead of asking the platform twice.
        current = _recall(key) or await self._mailbox(key)
        fields = editable_fields(current)
        new_address = apply_user_changes(fields, flatten(changes))
        row = current
        # Attributes first, rename last: if the rename fails the key the caller holds
        # is still right, and repeating the whole update is harmless.
        if fields != editable_fields(current):
            reply = await self.client.request("PUT", ("mailboxes", current["address"]), body=fields)
            row = _row(reply)
        if new_address is not None and new_address != row["address"]:
            row = await self._rename(str(row["address"]), new_address)
        return user_record(row)

    async def _rename(self, old: str, new: str) -> Row:
        try:
            reply = await self.client.request("POST", ("mailboxes", old, "rename"), body={"new_address": new})
        except Transient as err:
            if not err.ambiguous:
                raise
            # Read back once: the rename may have been applied before the failure.
            try:
                renamed = await self._mailbox_or_none(new)
                still_there = renamed is not None and await self._mailbox_or_none(old) is not None
            except AdapterError:
                raise err from None
            if renamed is None or still_there:
                raise
            log.info("cleanmail rename %s -> %s was applied despite %s", old, new, err.detail)
            return renamed
        return _row(reply)

    async def delete_user(self, key: str) -> None:
        await self.client.request("DELETE", ("mailboxes", key))

    # --- groups -----------------------------------------------------------------------

    async def _lists_named(self, name: str) -> list[GroupRecord]:
        return await self._all("lists", {"display_name": name}, group_record)

    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        conjunctions = to_conjunctions(filter, GROUP_FILTERS)
        if conjunctions == [{}]:
            return await self._page("lists", {}, offset, limit, group_record)
        found: dict[str, GroupRecord] = {}
        for clause in conjunctions:
            name = clause.get("displayName")
            if not isinstance(name, str):
                continue
            for record in await self._lists_named(name):
                found.setdefault(record.key, record)
        return self._window(list(found.values()), offset, limit)

    async def get_group(self, key: str) -> GroupRecord:
        return group_record(_row(await self.client.get("lists", key)))

    async def _domain(self) -> str:
        if self.default_domain:
            return self.default_domain
        if self._discovered_domain:
            return self._discovered_domain
        reply = await self.client.get("domains", params={"limit": 2})
        rows = reply.get("items") if isinstance(reply, dict) else None
        names = [d.get("name") for d in rows if isinstance(d, dict)] if isinstance(rows, list) else []
        if len(names) != 1 or not isinstance(names[0], str):
            raise Rejected(
                "invalidValue",
                "cannot choose a domain for distribution-list addresses: Cleanmail has "
                f"{len(names) if len(names) < 2 else 'several'} domains; set the adapter's default_domain",
            )
        self._discovered_domain = names[0]
        return names[0]

    async def _unique_name(self, name: str, own_key: str | None = None) -> None:
        for other in await self._lists_named(name):
            if other.key != own_key and values_equal("displayName", other.attributes.get("displayName"), name):
                raise AlreadyExists(other.key, f"a group named {name!r} already exists")

    async def create_group(self, attributes: Mapping[str, Any], member_keys: Sequence[str]) -> GroupRecord:
        name = display_name(attributes.get("displayName"))
        await self._unique_name(name)
        address = self.list_address_template.format(slug=slugify(name), domain=await self._domain())
        body = {"address": address, "display_name": name, "members": [k.lower() for k in member_keys]}
        try:
            reply = await self.client.request("POST", ("lists",), body=body)
        except Transient as err:
            if not err.ambiguous:
                raise
            # Unlike a mailbox, the list's address is known only here, so the read-back
            # that keeps the create at-most-once happens here too.
            try:
                created = await self._group_or_none(address)
            except AdapterError:
                raise err from None
            if created is None or not values_equal("displayName", created.attributes.get("displayName"), name):
                raise
            return created
        except AlreadyExists:
            taken = await self._group_or_none(address)
            taken_name = taken.attributes.get("displayName") if taken else None
            if taken is None or values_equal("displayName", taken_name, name):
                raise AlreadyExists(address, f"a group named {name!r} already exists") from None
            raise Rejected(
                "uniqueness",
                f"the list address {address} derived from displayName {name!r} is already used by "
                f"the group {taken_name!r}; choose another displayName",
                409,
            ) from None
        return group_record(_row(reply))

    async def _group_or_none(self, key: str) -> GroupRecord | None:
        try:
            return await self.get_group(key)
        except NotFound:
            return None

    async def update_group(self, key: str, changes: Mapping[str, Any]) -> GroupRecord:
        current = _row(await self.client.get("lists", key))
        fields = editable_fields(current)
        for path, value in changes.items():
            if path == "displayName":
                fields["display_name"] = display_name(value)
            elif path == "members":
                fields["members"] = [str(k).lower() for k in value or []]
            else:
                raise Rejected("invalidPath", f"Cleanmail does not store group attribute {path!r}")
        if fields == editable_fields(current):
            return group_record(current)
        if fields["display_name"] != current.get("display_name"):
            await self._unique_name(fields["display_name"], own_key=str(current["address"]))
        reply = await self.client.request("PUT", ("lists", current["address"]), body=fields)
        return group_record(_row(reply))

    async def _edit_members(self, key: str, edit: str, member_keys: Sequence[str]) -> None:
        if not member_keys:
            return
        # Set semantics on the server make this call safe to repeat.
        await self.client.request(
            "POST", ("lists", key, "members"), body={edit: [k.lower() for k in member_keys]}, retry_safe=True
        )

    async def add_members(self, key: str, member_keys: Sequence[str]) -> None:
        await self._edit_members(key, "add", member_keys)

    async def remove_members(self, key: str, member_keys: Sequence[str]) -> None:
        await self._edit_members(key, "remove", member_keys)

    async def delete_group(self, key: str) -> None:
        await self.client.request("DELETE", ("lists", key))
