"""Distribution lists as Modoboa aliases: the group side of the Modoboa backend.

* A list is an alias whose description starts with ``LIST_MARKER`` followed by the group's
  displayName, so the name reads back exactly and the gateway tells its own lists apart
  from the aliases an operator made (which it never lists, changes or deletes).
* Its address comes from the displayName through the tenant's list template when the
  group is created and stays when the group is renamed: mail already sent keeps arriving.
* Every change sends the whole recipient list (Modoboa answers a PATCH without it with an
  HTTP 500 page). An empty list holds one stand-in recipient and is disabled, because
  Modoboa refuses an alias without recipients; a list with members is always enabled.
* Aliases cannot be searched by description, so a lookup by displayName reads every alias
  of the list domain in one call (about 0.7 ms per alias on Modoboa's side).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from adapters.base import AlreadyExists, GroupRecord, NotFound, Page, Rejected, Unavailable
from adapters.modoboa.client import DomainMissing, FieldErrors, ModoboaClient, page_rows
from adapters.modoboa.domains import Domains
from adapters.modoboa.mapping import (
    Row,
    display_name,
    group_record,
    is_gateway_list,
    list_body,
    list_description,
    members_of,
    slugify,
)

log = logging.getLogger(__name__)

SCAN_PAGE = 1000


class Lists:
    def __init__(self, client: ModoboaClient, domains: Domains, *, list_domain: str | None, template: str,
                 placeholder: str) -> None:
        self.client = client
        self.domains = domains
        self.list_domain = list_domain.lower() if list_domain else None
        self.template = template
        self.placeholder = placeholder.lower()

    def record(self, row: Mapping[str, Any]) -> GroupRecord:
        return group_record(row, self.placeholder)

    # --- reading ------------------------------------------------------------------------------

    async def aliases_at(self, address: str) -> list[Row]:
        """Every alias (the gateway's or not) at exactly ``address``."""
        reply = await self.client.get("aliases", params={"search": address, "page_size": SCAN_PAGE})
        rows, _, _ = page_rows(reply)
        return [r for r in rows if str(r.get("address", "")).lower() == address.lower()]

    async def row(self, key: str) -> Row:
        for row in await self.aliases_at(key):
            if is_gateway_list(row):
                return row
        raise NotFound(f"no distribution list {key} in Modoboa")

    async def scan(self) -> list[GroupRecord]:
        """Every list of the gateway's in the list domain (every domain when none is set)."""
        params: dict[str, str | int] = {"page_size": SCAN_PAGE, "ordering": "address"}
        if self.list_domain:
            params["domain"] = self.list_domain  # by name here; account listings filter by pk
        found: list[GroupRecord] = []
        page = 1
        while True:
            try:
                reply = await self.client.get("aliases", params={**params, "page": page})
            except FieldErrors as err:
                if err.says("domain", "valid choice"):
                    return []  # the list domain does not exist (yet): no lists
                raise
            rows, _, more = page_rows(reply)
            found.extend(self.record(r) for r in rows if is_gateway_list(r))
            if not more:
                return found
            page += 1

    async def find(self, names: list[str] | None, offset: int, limit: int) -> Page[GroupRecord]:
        records = await self.scan()
        if names is not None:
            wanted = {n.lower() for n in names}
            records = [r for r in records if str(r.attributes.get("displayName", "")).lower() in wanted]
        records.sort(key=lambda r: r.key)
        return Page(items=records[offset:offset + limit], total=len(records))

    async def named(self, name: str) -> GroupRecord | None:
        page = await self.find([name], 0, 2)
        return page.items[0] if page.items else None

    # --- writing ------------------------------------------------------------------------------

    def _address(self, name: str) -> str:
        if not self.list_domain:
            raise Rejected("cannot create a distribution list: no list domain is configured for this tenant "
                           "(set list_domain, e.g. SCIM_GATEWAY_LIST_DOMAIN)")
        return self.template.format(slug=slugify(name), domain=self.list_domain).lower()

    async def create(self, attributes: Mapping[str, Any], member_keys: Sequence[str],
                     account_exists: Callable[[str], Awaitable[bool]]) -> GroupRecord:
        name = display_name(attributes.get("displayName"))
        address = self._address(name)
        taken = await self.named(name)
        if taken is not None:
            raise AlreadyExists(taken.key, f"a group named {name!r} already exists")
        if await account_exists(address):
            raise Rejected(f"the list address {address} derived from displayName {name!r} is a mailbox in "
                           "Modoboa; a list there would take that mailbox's mail; choose another displayName",
                           scim_type="uniqueness", status=409)
        body = {"address": address, **list_body(list(member_keys), self.placeholder),
                "description": list_description(name)}
        try:
            reply = await self._post(body)
        except FieldErrors as err:
            if not err.says("address", "already exists"):
                raise
            raise await self._address_taken(address, name) from None
        return self.record(reply)

    async def _post(self, body: dict[str, Any]) -> Any:
        try:
            return await self.client.request("POST", ("aliases",), body=body)
        except DomainMissing:
            await self.domains.create(str(body["address"]).rpartition("@")[2])
            return await self.client.request("POST", ("aliases",), body=body)

    async def _address_taken(self, address: str, name: str) -> Exception:
        rows = await self.aliases_at(address)
        mine = next((r for r in rows if is_gateway_list(r)), None)
        if mine is not None:
            other = self.record(mine).attributes.get("displayName", "")
            if str(other).lower() == name.lower():
                return AlreadyExists(address, f"a group named {name!r} already exists")
            holder = f"the group {other!r}"
        else:
            holder = "an alias that the gateway does not manage"
        return Rejected(f"the list address {address} derived from displayName {name!r} is already used by "
                        f"{holder}; choose another displayName", scim_type="uniqueness", status=409)

    async def _patch(self, row: Row, body: dict[str, Any]) -> Row:
        reply = await self.client.request("PATCH", ("aliases", str(row["pk"])), body=body)
        if not isinstance(reply, dict) or "address" not in reply:
            raise Unavailable("Modoboa sent a malformed alias")
        return reply

    async def rename(self, record: GroupRecord, changes: Mapping[str, Any]) -> GroupRecord:
        row = record.state if isinstance(record.state, dict) else await self.row(record.key)
        body = list_body(members_of(row, self.placeholder), self.placeholder)
        for path, value in changes.items():
            if path != "displayName":
                raise Rejected(f"Modoboa does not store group attribute {path!r}", scim_type="invalidPath")
            body["description"] = list_description(display_name(value))
        if "description" not in body:
            return self.record(row)
        return self.record(await self._patch(row, body))

    async def set_members(self, record: GroupRecord, members: list[str]) -> None:
        """Send ``members`` as the whole recipient list; ``record.state`` follows what Modoboa answered."""
        row = record.state if isinstance(record.state, dict) else await self.row(record.key)
        body = list_body(members, self.placeholder)
        unchanged = sorted(members_of(row, self.placeholder)) == sorted(members_of(body, self.placeholder))
        if unchanged and row.get("enabled") is body["enabled"]:
            return
        record.state = await self._patch(row, body)

    def current_members(self, record: GroupRecord) -> list[str]:
        row = record.state if isinstance(record.state, dict) else None
        return members_of(row, self.placeholder) if row is not None else list(record.member_keys)

    async def delete(self, record: GroupRecord) -> None:
        row = record.state if isinstance(record.state, dict) else await self.row(record.key)
        await self.client.request("DELETE", ("aliases", str(row["pk"])))

    # --- what accounts do to lists --------------------------------------------------------------

    async def member_lists(self, addresses: Sequence[str]) -> list[Row]:
        """The gateway's lists among the aliases at ``addresses`` (an account's ``aliases`` field)."""
        rows: list[Row] = []
        for address in addresses:
            rows.extend(r for r in await self.aliases_at(str(address)) if is_gateway_list(r))
        return rows

    async def reenable(self, addresses: Sequence[str]) -> int:
        """Enable the gateway's lists that Modoboa disabled along with their only member; how many."""
        fixed = 0
        for row in await self.member_lists(addresses):
            members = members_of(row, self.placeholder)
            if members and not row.get("enabled"):
                await self._patch(row, list_body(members, self.placeholder))
                fixed += 1
        return fixed

    async def keep_after_last_member(self, address: str, addresses: Sequence[str]) -> list[Row]:
        """Before ``address`` is deleted: give the lists it alone belongs to their stand-in recipient.

        Modoboa deletes an alias whose last recipient goes away; a SCIM group must outlive
        its members. Returns the lists changed (to undo if the deletion fails).
        """
        kept: list[Row] = []
        for row in await self.member_lists(addresses):
            if members_of(row, self.placeholder) == [address]:
                body = {"recipients": [address, self.placeholder], "enabled": False}
                await self._patch(row, body)
                kept.append(row)
        return kept

    async def undo_keep(self, address: str, rows: list[Row]) -> None:
        for row in rows:
            try:
                await self._patch(row, list_body([address], self.placeholder))
            except Exception as exc:  # best effort: the deletion's own error is what the caller reports
                log.warning("could not restore list %s after a failed deletion of %s: %s", row.get("address"),
                            address, exc)
