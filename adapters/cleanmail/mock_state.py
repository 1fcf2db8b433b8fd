"""The in-memory data of the mock Cleanmail admin API, free of any HTTP concern.

Addresses are stored lower-cased, as mailcow and PostfixAdmin do, so uniqueness is
case-insensitive. Lookups by address go through dicts; listings slice lists kept
sorted by address, so a page costs O(page) while an insert or delete costs one
binary search plus a memmove. Sorting by address (not by creation) also means an
insert shifts later pages, which is the paging instability clients must tolerate.

Every mutation happens synchronously, without an ``await`` between its check and its
write, so a handler cancelled mid-request can never leave half an update behind.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

STATUSES = ("active", "disabled")
POLICIES = ("standard", "no-report")
REPORTS = ("daily", "twice-daily", "weekly", "monthly", "never")
MAX_NAME = 128

_ADDRESS = re.compile(r"^[a-z0-9._%+'=-]{1,64}@([a-z0-9-]+\.)+[a-z0-9-]{2,63}$")
_DOMAIN = re.compile(r"^([a-z0-9-]+\.)+[a-z0-9-]{2,63}$")


@dataclass(frozen=True)
class MockQuirks:
    """Legacy habits of the mock; the defaults are how real mail-admin APIs behave."""

    paging: bool = True
    """offset/limit honoured and capped at ``max_page_size``; off: every item at once."""
    max_page_size: int = 100
    full_replace_put: bool = True
    """PUT clears omitted fields (and re-activates a mailbox whose status is omitted)."""
    errors_as_200: bool = True
    """Failed writes answer HTTP 200 with ``{"status": "error", ...}``."""
    not_found_as_empty: bool = True
    """``GET /api/v1/mailboxes/{address}`` of a missing mailbox answers 200 ``{}``."""
    reject_duplicates: bool = True
    """Off: creating an existing mailbox silently adds a second row with a new id."""
    dedicated_rename: bool = True
    """PUT refuses an address change; only the rename call may change it."""
    auto_create_domains: bool = False
    """Create unknown domains on first use instead of refusing the mailbox."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: Mapping[str, Any]) -> MockQuirks:
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown quirk {name!r}")
            wanted = int if name == "max_page_size" else bool
            if type(value) is not wanted:
                raise ValueError(f"quirk {name!r} must be {wanted.__name__}")
        if changes.get("max_page_size", 1) < 1:
            raise ValueError("max_page_size must be positive")
        return replace(self, **dict(changes))


class MockError(Exception):
    """A refusal the HTTP layer renders as an error body (``code`` is machine-readable)."""

    def __init__(self, code: str, message: str, status: int, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"status": "error", "code": self.code, "message": self.message, **self.extra}


def _invalid(message: str, field_name: str) -> MockError:
    return MockError("invalid_value", message, 400, field=field_name)


def normalise_address(value: Any, field_name: str = "address") -> str:
    if not isinstance(value, str):
        raise _invalid(f"{field_name} must be a string", field_name)
    address = value.strip().lower()
    if not _ADDRESS.match(address):
        raise _invalid(f"{field_name} {value!r} is not a valid mail address", field_name)
    return address


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise _invalid(f"{name} must be a string of at most {MAX_NAME} characters", name)
    return value or None


def _choice(data: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = data.get(name, default)
    if value is None:
        return default
    if value not in allowed:
        raise _invalid(f"{name} must be one of {', '.join(allowed)}", name)
    return str(value)


@dataclass
class Domain:
    name: str
    policy: str = "standard"


@dataclass
class Mailbox:
    id: int
    address: str
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    status: str = "active"
    policy: str = "standard"
    quarantine_report: str = "daily"

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "domain": self.domain}


@dataclass
class Alias:
    id: int
    address: str
    target: str


@dataclass
class DistList:
    id: int
    address: str
    display_name: str | None = None
    description: str | None = None
    members: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # vars() is a shallow copy, far cheaper than asdict(); only members is mutable.
        return {**vars(self), "members": list(self.members)}


_MAILBOX_FIELDS = ("first_name", "last_name", "display_name")


class MockStore:
    def __init__(self, quirks: MockQuirks, on_change: Callable[[], None] = lambda: None) -> None:
        self.quirks = quirks
        self._on_change = on_change
        self.clear()

    def clear(self) -> None:
        self.next_id = 1
        self.domains: dict[str, Domain] = {}
        self.mailboxes: dict[int, Mailbox] = {}
        self._mailbox_ids: dict[str, list[int]] = {}
        self._mailbox_order: list[tuple[str, int]] = []
        self.aliases: dict[int, Alias] = {}
        self._alias_ids: dict[str, int] = {}
        self._aliases_of: dict[str, set[int]] = {}
        self.lists: dict[str, DistList] = {}
        self._list_order: list[str] = []
        self._lists_named: dict[str, set[str]] = {}
        self._member_of: dict[str, set[str]] = {}

    def _changed(self) -> None:
        self._on_change()

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    # --- domains ----------------------------------------------------------------------

    def add_domain(self, name: Any, policy: Any = None) -> Domain:
        if not isinstance(name, str) or not _DOMAIN.match(name.strip().lower()):
            raise _invalid(f"domain name {name!r} is not valid", "name")
        key = name.strip().lower()
        if key in self.domains:
            raise MockError("object_exists", f"domain {key} already exists", 409, existing=key)
        domain = Domain(key, _choice({"policy": policy}, "policy", POLICIES, "standard"))
        self.domains[key] = domain
        self._changed()
        return domain

    def _require_domain(self, address: str) -> None:
        name = address.rpartition("@")[2]
        if name in self.domains:
            return
        if not self.quirks.auto_create_domains:
            raise MockError(
                "domain_unknown",
                f"domain {name} is not configured; an administrator must add it first",
                422,
                domain=name,
            )
        self.domains[name] = Domain(name)

    # --- the shared address namespace ------------------------------------------------

    def _address_owner(self, address: str) -> str | None:
        if address in self._mailbox_ids:
            return "mailbox"
        if address in self._alias_ids:
            return "alias"
        if address in self.lists:
            return "list"
        return None

    def _claim(self, address: str, kind: str) -> None:
        """Refuse an address already used by any mailbox, alias or list."""
        owner = self._address_owner(address)
        if owner == kind:
            raise MockError("object_exists", f"{kind} {address} already exists", 409, existing=address)
        if owner is not None:
            article = "an" if owner == "alias" else "a"
            raise MockError(
                "address_in_use",
                f"{address} is already used by {article} {owner}",
                409,
                existing=address,
                owner=owner,
            )

    # --- mailboxes --------------------------------------------------------------------

    def get_mailbox(self, address: str) -> Mailbox | None:
        ids = self._mailbox_ids.get(address.strip().lower())
        return self.mailboxes[ids[0]] if ids else None

    def _require_mailbox(self, address: str) -> Mailbox:
        mailbox = self.get_mailbox(address)
        if mailbox is None:
            raise MockError("not_found", f"mailbox {address.lower()} does not exist", 404)
        return mailbox

    def list_mailboxes(
        self,
        offset: int,
        limit: int | None,
        *,
        address: str | None = None,
        domain: str | None = None,
        status: str | None = None,
    ) -> tuple[list[Mailbox], int]:
        if address is not None:
            ids = self._mailbox_ids.get(address.strip().lower(), [])
            rows: list[Mailbox] = [self.mailboxes[i] for i in ids]
        elif domain is None and status is None:
            total = len(self._mailbox_order)
            end = total if limit is None else offset + limit
            return [self.mailboxes[i] for _, i in self._mailbox_order[offset:end]], total
        else:
            rows = [self.mailboxes[i] for _, i in self._mailbox_order]
        if domain is not None:
            rows = [m for m in rows if m.domain == domain.lower()]
        if status is not None:
            rows = [m for m in rows if m.status == status]
        end = len(rows) if limit is None else offset + limit
        return rows[offset:end], len(rows)

    def _mailbox_fields(self, data: Mapping[str, Any], base: Mailbox | None) -> dict[str, Any]:
        """Field values for a create or a PUT; ``base`` keeps omitted fields (merge mode)."""
        values: dict[str, Any] = {}
        for name in _MAILBOX_FIELDS:
            if name in data or base is None:
                values[name] = _optional_text(data, name)
            else:
                values[name] = getattr(base, name)
        for name, allowed, default in (
            ("status", STATUSES, "active"),
            ("policy", POLICIES, "standard"),
            ("quarantine_report", REPORTS, "daily"),
        ):
            fallback = default if base is None else getattr(base, name)
            values[name] = _choice(data, name, allowed, fallback)
        return values

    def create_mailbox(self, data: Mapping[str, Any]) -> Mailbox:
        address = normalise_address(data.get("address"))
        self._require_domain(address)
        fields_ = self._mailbox_fields(data, None)
        owner = self._address_owner(address)
        if not (owner == "mailbox" and not self.quirks.reject_duplicates):
            self._claim(address, "mailbox")
        mailbox = Mailbox(self._new_id(), address, **fields_)
        self._index_mailbox(mailbox)
        self._changed()
        return mailbox

    def _index_mailbox(self, mailbox: Mailbox) -> None:
        self.mailboxes[mailbox.id] = mailbox
        self._mailbox_ids.setdefault(mailbox.address, []).append(mailbox.id)
        bisect.insort(self._mailbox_order, (mailbox.address, mailbox.id))

    def _unindex_mailbox(self, mailbox: Mailbox) -> None:
        del self.mailboxes[mailbox.id]
        ids = self._mailbox_ids[mailbox.address]
        ids.remove(mailbox.id)
        if not ids:
            del self._mailbox_ids[mailbox.address]
        entry = (mailbox.address, mailbox.id)
        del self._mailbox_order[bisect.bisect_left(self._mailbox_order, entry)]

    def replace_mailbox(self, address: str, data: Mapping[str, Any]) -> Mailbox:
        mailbox = self._require_mailbox(address)
        new_address = mailbox.address
        if data.get("address") is not None:
            new_address = normalise_address(data["address"])
            if new_address != mailbox.address and self.quirks.dedicated_rename:
                raise MockError(
                    "address_immutable",
                    "the address cannot be changed by PUT; use the rename call",
                    400,
                    field="address",
                )
        base = None if self.quirks.full_replace_put else mailbox
        fields_ = self._mailbox_fields(data, base)
        if new_address != mailbox.address:
            self._rename_mailbox(mailbox, new_address)
        for name, value in fields_.items():
            setattr(mailbox, name, value)
        self._changed()
        return mailbox

    def rename_mailbox(self, address: str, new_address: Any) -> Mailbox:
        mailbox = self._require_mailbox(address)
        target = normalise_address(new_address, "new_address")
        if target != mailbox.address:
            self._rename_mailbox(mailbox, target)
            self._changed()
        return mailbox

    def _rename_mailbox(self, mailbox: Mailbox, target: str) -> None:
        self._require_domain(target)
        self._claim(target, "mailbox")
        old = mailbox.address
        self._unindex_mailbox(mailbox)
        mailbox.address = target
        self._index_mailbox(mailbox)
        if old in self._mailbox_ids:
            return
        # The last row under the old address is gone: references follow the mailbox.
        for list_address in self._member_of.pop(old, set()):
            members = self.lists[list_address].members
            members[members.index(old)] = target
            self._member_of.setdefault(target, set()).add(list_address)
        for alias_id in self._aliases_of.pop(old, set()):
            self.aliases[alias_id].target = target
            self._aliases_of.setdefault(target, set()).add(alias_id)

    def delete_mailbox(self, address: str) -> Mailbox:
        mailbox = self._require_mailbox(address)
        self._unindex_mailbox(mailbox)
        if mailbox.address not in self._mailbox_ids:
            for list_address in self._member_of.pop(mailbox.address, set()):
                self.lists[list_address].members.remove(mailbox.address)
            for alias_id in self._aliases_of.pop(mailbox.address, set()):
                del self._alias_ids[self.aliases.pop(alias_id).address]
        self._changed()
        return mailbox

    # --- aliases ----------------------------------------------------------------------

    def list_aliases(self, offset: int, limit: int | None, target: str | None) -> tuple[list[Alias], int]:
        if target is None:
            # Ids only grow, so dict order is id order.
            end = None if limit is None else offset + limit
            return list(itertools.islice(self.aliases.values(), offset, end)), len(self.aliases)
        rows = [self.aliases[i] for i in sorted(self._aliases_of.get(target.lower(), ()))]
        end = len(rows) if limit is None else offset + limit
        return rows[offset:end], len(rows)

    def create_alias(self, data: Mapping[str, Any]) -> Alias:
        address = normalise_address(data.get("address"))
        target = normalise_address(data.get("target"), "target")
        self._require_domain(address)
        if target not in self._mailbox_ids:
            raise MockError("member_unknown", f"target mailbox {target} does not exist", 422, missing=[target])
        self._claim(address, "alias")
        alias = Alias(self._new_id(), address, target)
        self.aliases[alias.id] = alias
        self._alias_ids[address] = alias.id
        self._aliases_of.setdefault(target, set()).add(alias.id)
        self._changed()
        return alias

    def delete_alias(self, alias_id: int) -> Alias:
        alias = self.aliases.pop(alias_id, None)
        if alias is None:
            raise MockError("not_found", f"alias {alias_id} does not exist", 404)
        del self._alias_ids[alias.address]
        self._aliases_of[alias.target].discard(alias_id)
        self._changed()
        return alias

    # --- distribution lists -----------------------------------------------------------

    def get_list(self, address: str) -> DistList:
        found = self.lists.get(address.strip().lower())
        if found is None:
            raise MockError("not_found", f"list {address.lower()} does not exist", 404)
        return found

    def list_lists(
        self, offset: int, limit: int | None, *, address: str | None = None, display_name: str | None = None
    ) -> tuple[list[DistList], int]:
        if address is not None:
            found = self.lists.get(address.strip().lower())
            rows = [found] if found else []
        elif display_name is not None:
            rows = [self.lists[a] for a in sorted(self._lists_named.get(display_name.lower(), ()))]
        else:
            end = len(self._list_order) if limit is None else offset + limit
            return [self.lists[a] for a in self._list_order[offset:end]], len(self._list_order)
        end = len(rows) if limit is None else offset + limit
        return rows[offset:end], len(rows)

    def _members(self, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise _invalid("members must be a list of mailbox addresses", "members")
        members: list[str] = []
        for item in value:
            address = normalise_address(item, "members")
            if address not in members:
                members.append(address)
        missing = [m for m in members if m not in self._mailbox_ids]
        if missing:
            raise MockError("member_unknown", f"no such mailbox: {', '.join(missing)}", 422, missing=missing)
        return members

    def create_list(self, data: Mapping[str, Any]) -> DistList:
        address = normalise_address(data.get("address"))
        self._require_domain(address)
        display_name = _optional_text(data, "display_name")
        description = _optional_text(data, "description")
        members = self._members(data.get("members") or [])
        self._claim(address, "list")
        dist = DistList(self._new_id(), address, display_name, description, [])
        self.lists[address] = dist
        bisect.insort(self._list_order, address)
        self._name_index(dist, add=True)
        self._set_members(dist, members)
        self._changed()
        return dist

    def _name_index(self, dist: DistList, *, add: bool) -> None:
        if dist.display_name is None:
            return
        key = dist.display_name.lower()
        if add:
            self._lists_named.setdefault(key, set()).add(dist.address)
            return
        named = self._lists_named[key]
        named.discard(dist.address)
        if not named:
            del self._lists_named[key]

    def _set_members(self, dist: DistList, members: Iterable[str]) -> None:
        for old in dist.members:
            self._member_of[old].discard(dist.address)
        dist.members = list(members)
        for new in dist.members:
            self._member_of.setdefault(new, set()).add(dist.address)

    def replace_list(self, address: str, data: Mapping[str, Any]) -> DistList:
        dist = self.get_list(address)
        full = self.quirks.full_replace_put
        display_name, description = dist.display_name, dist.description
        if full or "display_name" in data:
            display_name = _optional_text(data, "display_name")
        if full or "description" in data:
            description = _optional_text(data, "description")
        members = list(dist.members)
        if full or "members" in data:
            members = self._members(data.get("members") or [])
        self._name_index(dist, add=False)
        dist.display_name, dist.description = display_name, description
        self._name_index(dist, add=True)
        self._set_members(dist, members)
        self._changed()
        return dist

    def edit_members(self, address: str, add: Any, remove: Any) -> DistList:
        """Set-like edit: adding a member twice or removing an absent one changes nothing."""
        dist = self.get_list(address)
        to_add = self._members(add or [])
        if not isinstance(remove or [], list):
            raise _invalid("remove must be a list of addresses", "remove")
        # Unknown addresses are fine here: the member may have been deleted meanwhile.
        to_remove = {normalise_address(a, "remove") for a in remove or []}
        members = [m for m in dist.members if m not in to_remove]
        members.extend(m for m in to_add if m not in members and m not in to_remove)
        if members != dist.members:
            self._set_members(dist, members)
            self._changed()
        return dist

    def delete_list(self, address: str) -> DistList:
        dist = self.get_list(address)
        self._set_members(dist, [])
        self._name_index(dist, add=False)
        del self.lists[dist.address]
        del self._list_order[bisect.bisect_left(self._list_order, dist.address)]
        self._changed()
        return dist

    # --- snapshots --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": 1,
            "next_id": self.next_id,
            "domains": [dict(vars(d)) for d in self.domains.values()],
            "mailboxes": [dict(vars(self.mailboxes[i])) for _, i in self._mailbox_order],
            "aliases": [dict(vars(a)) for a in self.aliases.values()],
            "lists": [self.lists[a].to_json() for a in self._list_order],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a snapshot written by :meth:`snapshot` (trusted: it is our own file)."""
        self.clear()
        for row in data.get("domains", []):
            self.domains[row["name"]] = Domain(**row)
        for row in data.get("mailboxes", []):
            self._index_mailbox(Mailbox(**row))
        for row in data.get("aliases", []):
            alias = Alias(**row)
            self.aliases[alias.id] = alias
            self._alias_ids[alias.address] = alias.id
            self._aliases_of.setdefault(alias.target, set()).add(alias.id)
        for row in data.get("lists", []):
            dist = DistList(row["id"], row["address"], row.get("display_name"), row.get("description"))
            self.lists[dist.address] = dist
            bisect.insort(self._list_order, dist.address)
            self._name_index(dist, add=True)
            self._set_members(dist, row.get("members", []))
        known = [0, *self.mailboxes, *self.aliases, *(d.id for d in self.lists.values())]
        self.next_id = max(int(data.get("next_id", 1)), max(known) + 1)
