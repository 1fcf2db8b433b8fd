"""Directory operations the adapter is built from: searches, entry writes, member edits.

Each method is one logical call through the pool (retried as ``connection`` decides) or a
short, bounded sequence of them. Result codes the callers interpret arrive as
``LdapResult``; ``domain_error`` turns the others into the gateway's errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars

from adapters.base import BackendError, NotFound, Rejected, Unavailable
from adapters.ldap import dn as dns
from adapters.ldap.connection import CLIENT_REFUSED, LdapPool, LdapResult, Safety, entries, truncated
from adapters.ldap.mapping import Layout, Values

PAGED_RESULTS = "1.2.840.113556.1.4.319"
PAGE_SIZE = 500
MEMBER_EDIT_ROUNDS = 4

NO_SUCH_ATTRIBUTE = 16
ATTRIBUTE_OR_VALUE_EXISTS = 20
NO_SUCH_OBJECT = 32
INVALID_DN_SYNTAX = 34
OBJECT_CLASS_VIOLATION = 65
ENTRY_ALREADY_EXISTS = 68

Entry = tuple[str, Values]

# Verdicts on the request itself (a value, the schema): the SCIM client's request cannot succeed as sent.
_REQUEST_ERRORS = {
    CLIENT_REFUSED: "a value cannot be sent to the directory",
    17: "the directory's schema has no such attribute (check attribute_map and the profile)",
    18: "inappropriate matching",
    19: "a constraint of the directory refused a value",
    21: "a value has the wrong syntax for its attribute",
    34: "the value does not make a valid DN",
    64: "the entry cannot be named this way (check user_dn_template)",
    65: "the entry would break its object classes' rules (check the profile's object classes and attributes)",
    67: "that change would touch the entry's RDN",
    69: "object classes cannot be changed",
}


def domain_error(answer: LdapResult, what: str) -> BackendError:
    """The gateway's error for a result code the caller did not handle itself."""
    detail = f"{what}: {answer.name}" + (f" ({answer.message})" if answer.message else "")
    if answer.code == NO_SUCH_OBJECT:
        return NotFound(f"{what}: no such entry")
    if answer.code == ENTRY_ALREADY_EXISTS:
        return Rejected(f"{what}: an entry with that DN already exists", scim_type="uniqueness", status=409)
    if answer.code in _REQUEST_ERRORS:
        return Rejected(f"{detail}: {_REQUEST_ERRORS[answer.code]}")
    return Unavailable(f"{detail}; try again later")


def _paged_cookie(connection: ldap3.Connection) -> bytes | None:
    controls = (connection.result or {}).get("controls") or {}
    value = (controls.get(PAGED_RESULTS) or {}).get("value") or {}
    cookie = value.get("cookie")
    return cookie if isinstance(cookie, bytes) and cookie else None


class Directory:
    def __init__(self, pool: LdapPool, layout: Layout) -> None:
        self.pool = pool
        self.layout = layout

    # --- reads ---------------------------------------------------------------------

    async def search(self, base: str, ldap_filter: str, attributes: Sequence[str], label: str) -> list[Entry]:
        """Every entry below ``base`` (subtree) matching ``ldap_filter``.

        One plain search first: most are lookups of one entry, and encoding the paged-results
        control costs more CPU in ldap3 than the rest of the request. Only a search the server
        cuts short (its size limit) is repeated in pages, which some servers limit less.
        """

        def run(connection: ldap3.Connection) -> list[Entry]:
            connection.search(base, ldap_filter, search_scope=ldap3.SUBTREE, attributes=list(attributes))
            if not truncated(connection):
                return entries(connection)
            found: list[Entry] = []
            cookie: bytes | None = None
            while True:
                connection.search(base, ldap_filter, search_scope=ldap3.SUBTREE, attributes=list(attributes),
                                  paged_size=PAGE_SIZE, paged_cookie=cookie)
                found.extend(entries(connection))
                cookie = _paged_cookie(connection)
                if cookie is None:
                    return found

        try:
            return await self.pool.run(label, run, Safety.REPEATABLE)
        except LdapResult as answer:
            if answer.code == NO_SUCH_OBJECT:
                raise Unavailable(f"{label}: the container {base} does not exist (check users_dn/groups_dn)") from None
            raise domain_error(answer, label) from None

    async def read(self, dn: str, ldap_filter: str, attributes: Sequence[str], label: str) -> Entry | None:
        """The entry ``dn`` if it exists and matches ``ldap_filter``."""

        def run(connection: ldap3.Connection) -> list[Entry]:
            connection.search(dn, ldap_filter, search_scope=ldap3.BASE, attributes=list(attributes))
            return entries(connection)

        try:
            found = await self.pool.run(label, run, Safety.REPEATABLE)
        except LdapResult as answer:
            if answer.code in (NO_SUCH_OBJECT, INVALID_DN_SYNTAX, CLIENT_REFUSED):
                return None
            raise domain_error(answer, label) from None
        return found[0] if found else None

    async def exists(self, dn: str, label: str) -> bool:
        return await self.read(dn, "(objectClass=*)", ["1.1"], label) is not None

    # --- entry writes ----------------------------------------------------------------

    async def add(self, dn: str, values: dict[str, list[str]], label: str) -> None:
        """Add an entry (never sent twice); LdapResult for entryAlreadyExists, other verdicts as domain errors."""
        present = {name: list(v) for name, v in values.items() if v}

        def run(connection: Any) -> None:  # ldap3's stubs leave add/modify/delete untyped
            connection.add(dn, attributes=present)

        try:
            await self.pool.run(label, run, Safety.ONCE)
        except LdapResult as answer:
            if answer.code == ENTRY_ALREADY_EXISTS:
                raise
            raise domain_error(answer, label) from None

    async def replace(self, dn: str, replacements: dict[str, list[str]], label: str) -> None:
        """Replace whole attributes (``[]`` removes one): the same request twice changes nothing more."""
        if not replacements:
            return
        changes: dict[str, Any] = {name: [(ldap3.MODIFY_REPLACE, values)] for name, values in replacements.items()}

        def run(connection: Any) -> None:
            connection.modify(dn, changes)

        try:
            await self.pool.run(label, run, Safety.REPEATABLE)
        except LdapResult as answer:
            raise domain_error(answer, label) from None

    async def rename(self, dn: str, new_rdn: str, label: str) -> None:
        """modrdn, dropping the old RDN value; LdapResult for entryAlreadyExists / noSuchObject."""

        def run(connection: ldap3.Connection) -> None:
            connection.modify_dn(dn, new_rdn, delete_old_dn=True)

        try:
            await self.pool.run(label, run, Safety.ONCE)
        except LdapResult as answer:
            if answer.code in (ENTRY_ALREADY_EXISTS, NO_SUCH_OBJECT):
                raise
            raise domain_error(answer, label) from None

    async def delete(self, dn: str, label: str) -> None:
        def run(connection: Any) -> None:
            connection.delete(dn)

        try:
            await self.pool.delete(label, run)
        except LdapResult as answer:
            raise domain_error(answer, label) from None

    async def set_password(self, dn: str, password: str, label: str) -> None:
        """The password-modify extended operation (RFC 3062): the server hashes and stores it.

        Not repeated when its answer is lost: with a password history, a second identical
        change would be refused, which would turn a success into an error.
        """

        def run(connection: ldap3.Connection) -> None:
            connection.extend.standard.modify_password(user=dn, new_password=password)

        try:
            await self.pool.run(label, run, Safety.ONCE)
        except LdapResult as answer:
            if answer.code == 19:
                raise Rejected(f"{label}: the directory's password policy refused the password"
                               f"{' (' + answer.message + ')' if answer.message else ''}") from None
            raise domain_error(answer, label) from None

    # --- group members ---------------------------------------------------------------

    async def edit_members(self, group_dn: str, current: Sequence[str] | None, add: Sequence[str],
                           remove: Sequence[str], label: str) -> None:
        """Make ``add`` members and ``remove`` non-members of a group, whatever it holds meanwhile.

        ``current`` is the member values as last read (None: read them now). A group left
        without a real member gets the placeholder, which goes again with the first real
        member. When the group changed since ``current`` was read (the directory answers
        attributeOrValueExists / noSuchAttribute / objectClassViolation), its members are
        read again and the edit recomputed, so repeating an edit is harmless.
        """
        members = list(current) if current is not None else await self._members(group_dn, label)
        for _ in range(MEMBER_EDIT_ROUNDS):
            plan = self._member_plan(members, add, remove)
            if plan is None:
                return
            to_add, to_delete = plan
            changes: dict[str, Any] = {self.layout.profile.member_attribute: [
                *([(ldap3.MODIFY_ADD, to_add)] if to_add else []),
                *([(ldap3.MODIFY_DELETE, to_delete)] if to_delete else []),
            ]}

            def run(connection: Any, changes: dict[str, Any] = changes) -> None:
                connection.modify(group_dn, changes)

            try:
                await self.pool.run(label, run, Safety.REPEATABLE)
                return
            except LdapResult as answer:
                if answer.code not in (NO_SUCH_ATTRIBUTE, ATTRIBUTE_OR_VALUE_EXISTS, OBJECT_CLASS_VIOLATION):
                    raise domain_error(answer, label) from None
            members = await self._members(group_dn, label)
        raise Unavailable(f"{label}: the group kept changing while its members were edited; try again")

    def _member_plan(self, members: Sequence[str], add: Sequence[str], remove: Sequence[str]
                     ) -> tuple[list[str], list[str]] | None:
        present: dict[str, str] = {}
        for value in members:
            try:
                present.setdefault(dns.normalize(value), value)
            except dns.DnError:
                present.setdefault(value, value)
        gone = {dns.normalize(k) for k in remove}
        to_delete = [present[k] for k in gone if k in present]
        to_add = [k for k in dict.fromkeys(dns.normalize(k) for k in add) if k not in present and k not in gone]
        remaining = (set(present) - gone) | set(to_add)
        placeholder = self.layout.placeholder_key
        if remaining - {placeholder}:
            if placeholder in present:
                to_delete.append(present[placeholder])
        elif placeholder not in present:
            to_add.append(self.layout.placeholder_member)
        elif placeholder in gone:
            to_delete.remove(present[placeholder])
        if not to_add and not to_delete:
            return None
        return to_add, to_delete

    async def _members(self, group_dn: str, label: str) -> list[str]:
        member = self.layout.profile.member_attribute
        found = await self.read(group_dn, "(objectClass=*)", [member], label)
        if found is None:
            raise NotFound(f"{label}: the group {group_dn} does not exist")
        return found[1].get(member.lower(), [])

    async def groups_with_member(self, member_dn: str, label: str) -> list[Entry]:
        member = self.layout.profile.member_attribute
        flt = f"(&{self.layout.group_class_filter()}({member}={escape_filter_chars(member_dn)}))"
        return await self.search(self.layout.groups_dn, flt, [member], label)

    async def move_memberships(self, old_dn: str, new_dn: str | None, label: str) -> None:
        """Point every group membership of ``old_dn`` at ``new_dn`` (None: drop it).

        With the refint overlay the directory has done it already and nothing is found;
        without it, the member values would keep naming an entry that is gone.
        """
        for group_dn, values in await self.groups_with_member(old_dn, label):
            current = values.get(self.layout.profile.member_attribute.lower(), [])
            await self.edit_members(group_dn, current, [new_dn] if new_dn else [], [old_dn], label)
