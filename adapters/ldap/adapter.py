"""The LDAP backend: mailboxes and distribution lists as entries of a directory (OpenLDAP and alike).

Keys. A mailbox's key, and a list's, is its DN in canonical spelling (``dn.normalize``).
Group members are DNs too, so a list's member keys are its member values as they are, with
no lookup per member, and a rename is the one place a key changes (the gateway follows it).
entryUUID would survive renames made outside the gateway, but turning thousands of member
DNs into UUIDs on every group read costs a search per list; the DN is what the directory
itself uses to link entries.

Writes, and what a lost answer means for each:

* create: uniqueness of the address is checked first (slapd does not enforce it), then one
  add, never repeated; a lost answer is ``Unavailable(may_apply=True)`` and the gateway
  re-reads by userName. A password follows with the password-modify operation; if the
  directory refuses it the new entry is removed again, so a create is all or nothing.
* update: one modify replacing the changed attributes, then the password, then (for a new
  address) the modrdn. If the modrdn is refused, the modify is undone. If its answer is
  lost, the entry is looked up under both names before it is tried once more.
* disable (generic profile): ``pwdAccountLockedTime: 000001010000Z`` (ppolicy: locked until
  an administrator unlocks); enable removes it. A password change removes the lock too, so a
  disabled mailbox is locked again right after one.
* delete, rename: memberships follow (the refint overlay may have done it already).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars

from adapters import telemetry
from adapters.base import (
    AlreadyExists,
    Attributes,
    BackendError,
    Capabilities,
    Filter,
    GroupRecord,
    NotFound,
    Page,
    Rejected,
    Unavailable,
    UserRecord,
)
from adapters.cleanmail.mapping import slugify
from adapters.ldap import dn as dns
from adapters.ldap.connection import ConnectionSettings, LdapPool, LdapResult, Safety
from adapters.ldap.directory import ENTRY_ALREADY_EXISTS, Directory, Entry, domain_error
from adapters.ldap.mapping import (
    LOCK_ATTRIBUTE,
    GroupState,
    Layout,
    UserState,
    Values,
    group_dn,
    group_name,
    group_record,
    is_active,
    ldap_filter,
    rdn_value,
    replacements,
    user_dn,
    user_name,
    user_record,
    user_values,
    with_changes,
)
from adapters.ldap.profiles import PERMANENTLY_LOCKED

log = logging.getLogger(__name__)

READY_DEADLINE_S = 3.0
# Calls a rename or delete makes besides one edit per list the mailbox is in (at most).
RENAME_CALLS = 6  # modify, password and re-lock, modrdn, the search for its lists
DELETE_CALLS = 2  # delete, the search for its lists
MAX_PAGE_SIZE = 10000
"""Every listing reads the whole container (LDAP has no offsets): large pages keep a full scan to a few reads."""


class LdapAdapter:
    name = "ldap"

    def __init__(self, layout: Layout, connection: ConnectionSettings) -> None:
        self.layout = layout
        self.profile = layout.profile
        self.pool = LdapPool(connection)
        self.directory = Directory(self.pool, layout)
        self.location = connection.url
        mapped = frozenset(self.profile.attribute_map)
        self.capabilities = Capabilities(
            user_attributes=self.profile.owned_user_paths(),
            user_filterable=frozenset({"userName"}) | mapped,
            groups=True,
            group_attributes=frozenset({"displayName", "members"}),
            group_filterable=frozenset({"displayName"}),
            max_page_size=MAX_PAGE_SIZE,
            counts_platform_calls=True,
        )
        self._user_filter_attributes = {"userName": self.profile.mail_attribute, **self.profile.attribute_map}

    def __repr__(self) -> str:
        return f"LdapAdapter({self.location!r})"

    async def start(self) -> None:
        await self.pool.start()

    async def close(self) -> None:
        await self.pool.close()

    def statistics(self) -> dict[str, int]:
        return self.pool.stats.as_dict()

    async def check(self) -> None:
        for container in (self.layout.users_dn, self.layout.groups_dn):

            def look(connection: ldap3.Connection, base: str = container) -> bool:
                return bool(connection.search(base, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["1.1"]))

            try:
                found = await self.pool.run("readiness check", look, Safety.REPEATABLE, deadline=READY_DEADLINE_S)
            except LdapResult as answer:
                raise Unavailable(f"the directory does not show {container}: {answer}") from None
            if not found:
                raise Unavailable(f"the directory does not show {container} to the service account")

    # --- users: reads ----------------------------------------------------------------

    def _user_filter(self, extra: str) -> str:
        return f"(&{self.layout.user_class_filter()}{extra})"

    async def _users(self, extra: str, label: str) -> list[UserRecord]:
        found = await self.directory.search(self.layout.users_dn, self._user_filter(extra),
                                            self.layout.user_attributes(), label)
        return [user_record(self.layout, dn, values) for dn, values in found]

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        records = await self._users(ldap_filter(filter, self._user_filter_attributes), "find users")
        return _window(records, offset, limit)

    async def get_user(self, key: str) -> UserRecord:
        found = await self._read_user(key)
        if found is None:
            raise _not_found("mailbox", key)
        return user_record(self.layout, *found)

    async def _read_user(self, dn: str) -> Entry | None:
        try:
            return await self.directory.read(dn, self._user_filter(""), self.layout.user_attributes(), "read mailbox")
        except dns.DnError:
            return None

    async def _user_with_address(self, address: str) -> UserRecord | None:
        flt = f"({self.profile.mail_attribute}={_escape(address)})"
        found = await self._users(flt, "look up address")
        return found[0] if found else None

    async def _list_with_address(self, address: str) -> str | None:
        mail = self.profile.group_mail_attribute
        if not mail:
            return None
        flt = f"(&{self.layout.group_class_filter()}({mail}={_escape(address)}))"
        lists = await self.directory.search(self.layout.groups_dn, flt, ["1.1"], "look up address")
        return lists[0][0] if lists else None

    async def _check_address_free(self, address: str, own_key: str | None = None) -> None:
        """slapd does not keep mail unique: the adapter does, across mailboxes and lists."""
        user = await self._user_with_address(address)
        if user is not None and user.key != own_key:
            raise AlreadyExists(user.key, f"the address {address} belongs to the mailbox {user.key}")
        listed = await self._list_with_address(address)
        if listed is not None:
            raise Rejected(f"the address {address} belongs to the distribution list {listed}",
                           scim_type="uniqueness", status=409)

    # --- users: writes ----------------------------------------------------------------

    async def create_user(self, attributes: Attributes) -> UserRecord:
        address = user_name(attributes)
        dn = user_dn(self.layout, attributes)
        values = user_values(self.layout, attributes)
        active = attributes.get("active", True) is not False
        if self.profile.disable == "ppolicy" and not active:
            values[LOCK_ATTRIBUTE] = [PERMANENTLY_LOCKED]
        try:
            await self.directory.add(dn, {"objectClass": list(self.profile.user_object_classes), **values},
                                     "create mailbox")
        except LdapResult as answer:
            assert answer.code == ENTRY_ALREADY_EXISTS
            taken = await self._user_with_address(address)
            if taken is not None:
                raise AlreadyExists(taken.key, f"the mailbox {address} already exists") from None
            raise Rejected(f"the entry {dn} already exists for another address; choose a user_dn_template that "
                           "tells these addresses apart", scim_type="uniqueness", status=409) from None
        try:
            await self._keep_address_unique(dn, address)
        except Unavailable as failure:
            raise Unavailable(f"{failure.detail}; the mailbox {dn} was created", may_apply=True) from None
        password = attributes.get("password")
        if isinstance(password, str) and password:
            await self._first_password(dn, password, active)
        return user_record(self.layout, dn, values)

    async def _keep_address_unique(self, dn: str, address: str) -> None:
        """slapd does not keep mail unique: look right after the add, and take the new entry back if it
        made a second holder of the address.

        Looking after rather than before makes the add the first thing a create sends (so a lost
        answer means "may have been applied"), and two creates racing for one address agree on
        which entry stays: the older one.
        """
        mail = self.profile.mail_attribute
        found = await self.directory.search(
            self.layout.users_dn, self._user_filter(f"({mail}={_escape(address)})"),
            ["createTimestamp", "entryCSN"], "create mailbox: address check")
        own = dns.normalize(dn)
        others = [entry for entry in found if dns.normalize(entry[0]) != own]
        listed = await self._list_with_address(address)
        if not others and listed is None:
            return
        keeper = min(found, key=lambda e: (e[1].get("createtimestamp", [""])[0], e[1].get("entrycsn", [""])[0],
                                           dns.normalize(e[0])))
        if listed is None and dns.normalize(keeper[0]) == own:
            return  # a create racing with this one made the other entry, and takes it back
        await self._undo_create(dn)
        if listed is not None:
            raise Rejected(f"the address {address} belongs to the distribution list {listed}",
                           scim_type="uniqueness", status=409)
        raise AlreadyExists(dns.normalize(keeper[0]), f"the address {address} belongs to the mailbox {keeper[0]}")

    async def _first_password(self, dn: str, password: str, active: bool) -> None:
        try:
            await self._set_password(dn, password, active)
        except Rejected:
            await self._undo_create(dn)
            raise
        except Unavailable as failure:
            if not await self._undo_create(dn):
                raise Unavailable(f"{failure.detail}; the mailbox {dn} was created without its password",
                                  may_apply=True) from None
            raise

    async def _undo_create(self, dn: str) -> bool:
        try:
            await self.directory.delete(dn, "undo create")
        except BackendError as err:
            log.error("ldap: could not remove %s after its password failed: %s", dn, err)
            return False
        return True

    async def _set_password(self, dn: str, password: str, active: bool) -> None:
        await self.directory.set_password(dn, password, "set password")
        if self.profile.disable == "ppolicy" and not active:
            # Any password change removes ppolicy's lock: a disabled mailbox must stay locked.
            await self.directory.replace(dn, {LOCK_ATTRIBUTE: [PERMANENTLY_LOCKED]}, "lock again after password")

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        state = await self._user_state(record)
        password = changes.get("password")
        wanted_attributes = with_changes(record.attributes, {k: v for k, v in changes.items() if k != "password"})
        current = state.values
        wanted = user_values(self.layout, wanted_attributes)
        mail = self.profile.mail_attribute.lower()
        # Other addresses an operator keeps in the mail attribute (aliases) stay.
        wanted[mail] = [*wanted[mail], *current.get(mail, [])[1:]]
        rdn_attribute = self.profile.rdn_attribute
        old_rdn = dns.split(state.dn)[0]
        new_rdn = dns.rdn(rdn_attribute, rdn_value(self.layout, wanted_attributes))
        renaming = "userName" in changes and dns.normalize(new_rdn) != dns.normalize(dns.join([old_rdn]))
        changed = replacements(current, wanted, skip=frozenset({rdn_attribute.lower()}))
        active = wanted_attributes.get("active", True) is not False
        if self.profile.disable == "ppolicy":
            changed.pop(LOCK_ATTRIBUTE, None)
            if active != is_active(self.layout, current):
                changed[LOCK_ATTRIBUTE] = [] if active else [PERMANENTLY_LOCKED]
        new_dn = f"{new_rdn},{dns.parent(state.dn)}" if renaming else state.dn
        if "userName" in changes:
            await self._check_address_free(user_name(wanted_attributes), own_key=record.key)
        if renaming and await self.directory.exists(new_dn, "rename mailbox"):
            raise Rejected(f"cannot rename to {new_dn}: another entry has that DN", scim_type="uniqueness", status=409)
        if renaming:
            await self._reserve_for_memberships(state.dn, RENAME_CALLS, "rename mailbox")
        try:
            await self.directory.replace(state.dn, changed, "update mailbox")
        except BackendError as err:
            raise _gone_as(err, "mailbox", record.key) from None
        if isinstance(password, str) and password:
            await self._set_password(state.dn, password, active)
        values = {**current, **changed}
        if renaming:
            await self._rename_user(state.dn, new_rdn, new_dn, current, changed)
            old_value, new_value = old_rdn[0].value.lower(), dns.split(new_rdn)[0][0].value
            others = [v for v in current.get(rdn_attribute.lower(), []) if v.lower() != old_value]
            values[rdn_attribute.lower()] = [new_value, *others]
            await self.directory.move_memberships(state.dn, new_dn, "rename mailbox: memberships")
        return user_record(self.layout, new_dn, values)

    async def _rename_user(self, dn: str, new_rdn: str, new_dn: str, before: Values, changed: Values) -> None:
        try:
            await self.directory.rename(dn, new_rdn, "rename mailbox")
            return
        except LdapResult as answer:
            refusal: BackendError = domain_error(answer, "rename mailbox")
        except Unavailable as lost:
            if not lost.may_apply:
                refusal = lost
            else:
                await self._settle_lost_rename(dn, new_rdn, new_dn, lost)
                return
        # All or nothing: put back what the modify changed.
        try:
            await self.directory.replace(dn, {name: before.get(name, []) for name in changed}, "undo update")
        except BackendError as err:
            log.error("ldap: %s keeps its new attributes but not its new DN %s: %s", dn, new_dn, err)
        raise refusal

    async def _settle_lost_rename(self, dn: str, new_rdn: str, new_dn: str, lost: Unavailable) -> None:
        """The modrdn's answer was lost: look under both names, and try once more only when it did not happen."""
        try:
            if await self.directory.exists(new_dn, "rename mailbox: read back"):
                return
            if await self.directory.exists(dn, "rename mailbox: read back"):
                await self.directory.rename(dn, new_rdn, "rename mailbox")
                return
        except (BackendError, LdapResult):
            pass
        raise lost

    async def _user_state(self, record: UserRecord) -> UserState:
        if isinstance(record.state, UserState):
            return record.state
        found = await self._read_user(record.key)
        if found is None:
            raise _not_found("mailbox", record.key)
        return UserState(*found)

    async def _reserve_for_memberships(self, dn: str, calls: int, label: str) -> None:
        """Refuse a rename or delete up front when the request's budget of platform calls cannot cover its
        membership edits as well: half done, it would leave lists naming an entry that is gone."""
        stats = telemetry.current()
        if stats is None or stats.budget is None:
            return
        lists = await self.directory.groups_with_member(dn, f"{label}: memberships")
        if stats.platform_calls + calls + len(lists) > stats.budget:
            raise telemetry.BudgetExhausted(stats.budget)

    async def delete_user(self, record: UserRecord) -> None:
        dn = record.state.dn if isinstance(record.state, UserState) else record.key
        await self._reserve_for_memberships(dn, DELETE_CALLS, "delete mailbox")
        try:
            await self.directory.delete(dn, "delete mailbox")
        except BackendError as err:
            raise _gone_as(err, "mailbox", record.key) from None
        await self.directory.move_memberships(dn, None, "delete mailbox: memberships")

    # --- groups ----------------------------------------------------------------------

    def _group_filter(self, extra: str) -> str:
        return f"(&{self.layout.group_class_filter()}{extra})"

    async def _groups(self, extra: str, label: str) -> list[GroupRecord]:
        found = await self.directory.search(self.layout.groups_dn, self._group_filter(extra),
                                            self.layout.group_attributes(), label)
        return [group_record(self.layout, dn, values) for dn, values in found]

    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        flt = ldap_filter(filter, {"displayName": self.profile.group_name_attribute})
        return _window(await self._groups(flt, "find groups"), offset, limit)

    async def get_group(self, key: str) -> GroupRecord:
        found = await self._read_group(key)
        if found is None:
            raise _not_found("distribution list", key)
        return group_record(self.layout, *found)

    async def _read_group(self, dn: str) -> Entry | None:
        try:
            return await self.directory.read(dn, self._group_filter(""), self.layout.group_attributes(), "read list")
        except dns.DnError:
            return None

    def _list_address(self, name: str) -> str | None:
        if not self.profile.group_mail_attribute or not self.layout.list_domain:
            return None
        return self.layout.list_address_template.format(slug=slugify(name), domain=self.layout.list_domain)

    async def create_group(self, attributes: Attributes, member_keys: Sequence[str]) -> GroupRecord:
        name = group_name(attributes)
        dn = group_dn(self.layout, name)
        members = list(dict.fromkeys(dns.normalize(k) for k in member_keys)) or [self.layout.placeholder_member]
        values: dict[str, list[str]] = {
            "objectClass": list(self.profile.group_object_classes),
            self.profile.group_name_attribute: [name],
            self.profile.member_attribute: members,
        }
        address = self._list_address(name)
        if address is not None and self.profile.group_mail_attribute:
            await self._check_address_free(address)
            values["objectClass"] += list(self.profile.group_mail_object_classes)
            values[self.profile.group_mail_attribute] = [address]
        try:
            await self.directory.add(dn, values, "create list")
        except LdapResult:
            raise AlreadyExists(dns.normalize(dn), f"a list named {name!r} already exists") from None
        return group_record(self.layout, dn, {k.lower(): v for k, v in values.items()})

    async def update_group(self, record: GroupRecord, changes: Attributes) -> GroupRecord:
        unknown = sorted(set(changes) - {"displayName"})
        if unknown:
            raise Rejected(f"the directory does not store group attribute(s) {', '.join(unknown)}",
                           scim_type="invalidPath")
        state = await self._group_state(record)
        name = group_name({"displayName": changes.get("displayName", record.attributes.get("displayName"))})
        new_rdn = dns.rdn(self.profile.group_name_attribute, name)
        if dns.normalize(new_rdn) == dns.normalize(dns.join([dns.split(state.dn)[0]])):
            return group_record(self.layout, state.dn, {self.profile.member_attribute.lower(): state.members})
        new_dn = f"{new_rdn},{dns.parent(state.dn)}"
        try:
            await self.directory.rename(state.dn, new_rdn, "rename list")
        except LdapResult as answer:
            if answer.code == ENTRY_ALREADY_EXISTS:
                raise AlreadyExists(dns.normalize(new_dn), f"a list named {name!r} already exists") from None
            raise _not_found("distribution list", record.key) from None
        return group_record(self.layout, new_dn, {self.profile.member_attribute.lower(): state.members})

    async def _group_state(self, record: GroupRecord) -> GroupState:
        if isinstance(record.state, GroupState):
            return record.state
        found = await self._read_group(record.key)
        if found is None:
            raise _not_found("distribution list", record.key)
        return GroupState(found[0], found[1].get(self.profile.member_attribute.lower(), []))

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        state = await self._group_state(record)
        await self.directory.edit_members(state.dn, state.members, member_keys, [], "add members")

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        state = await self._group_state(record)
        await self.directory.edit_members(state.dn, state.members, [], member_keys, "remove members")

    async def delete_group(self, record: GroupRecord) -> None:
        dn = record.state.dn if isinstance(record.state, GroupState) else record.key
        try:
            await self.directory.delete(dn, "delete list")
        except BackendError as err:
            raise _gone_as(err, "distribution list", record.key) from None


def _escape(value: str) -> str:
    return str(escape_filter_chars(value))


def _window(records: Sequence[Any], offset: int, limit: int) -> Page[Any]:
    ordered = sorted(records, key=lambda r: r.key)
    return Page(items=ordered[offset:offset + limit], total=len(ordered))


def _not_found(noun: str, key: str) -> BackendError:
    return NotFound(f"the {noun} {key} does not exist")


def _gone_as(err: BackendError, noun: str, key: str) -> BackendError:
    return _not_found(noun, key) if isinstance(err, NotFound) else err
