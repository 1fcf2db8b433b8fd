"""The PostfixAdmin backend: mailboxes and distribution lists as rows that Postfix and Dovecot read.

Users are ``mailbox`` rows plus their self-alias (``alias.address = goto = username``),
written together as PostfixAdmin does. Groups are ``alias`` rows whose ``goto`` lists the
member addresses. Owned attributes: ``userName`` (the address), ``active`` (mailbox and
self-alias), ``displayName`` (``mailbox.name``) and the write-only ``password``; everything
else Entra sends (given and family name included) stays in the gateway's shadow store, so it
reads back exactly as sent.

See ``mapping`` for the list addresses and ``db`` for what is retried.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.base import (
    AlreadyExists,
    Attributes,
    Capabilities,
    GroupRecord,
    NotFound,
    Page,
    Rejected,
    Unavailable,
    UserRecord,
)
from adapters.postfixadmin import statements as sql
from adapters.postfixadmin.db import Database, SchemaProblem, Session, UniqueViolation
from adapters.postfixadmin.mapping import (
    Address,
    ListAddresses,
    display_name,
    group_names,
    group_record,
    like_escape,
    mailbox_address,
    replace_target,
    split_goto,
    unique,
    user_condition,
    user_record,
)
from adapters.postfixadmin.passwords import PasswordHashing
from adapters.postfixadmin.probe import probe_schema
from gateway.scim.filter_ast import Filter

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(
    user_attributes=frozenset({"userName", "active", "displayName", "password"}),
    user_filterable=frozenset({"userName", "active"}),
    groups=True,
    group_attributes=frozenset({"displayName", "members"}),
    group_filterable=frozenset({"displayName"}),
    max_page_size=1000,
    counts_platform_calls=True,
)


class PostfixAdminAdapter:
    name = "postfixadmin"
    capabilities = CAPABILITIES

    def __init__(self, db: Database, *, lists: ListAddresses, hashing: PasswordHashing | None = None,
                 domains: Iterable[str] = (), create_domains: bool = False) -> None:
        self.db = db
        self.lists = lists
        self.hashing = hashing or PasswordHashing()
        self.domains = tuple(sorted(d.lower() for d in domains))
        """The tenant's mail domains: only their mailboxes are listed (empty: every domain)."""
        self.create_domains = create_domains
        self._schema_checked = False

    def __repr__(self) -> str:
        return f"PostfixAdminAdapter({self.db.target.location!r})"

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Check the schema when the database answers; a database that is down now is no reason not to start."""
        try:
            await self._ensure_schema()
        except SchemaProblem:
            raise
        except Unavailable as exc:
            log.warning("postfixadmin database not reachable at start-up (%s); checking the schema on first use",
                        exc.detail)

    async def close(self) -> None:
        await self.db.close()

    async def check(self) -> None:
        await probe_schema(self.db)
        self._schema_checked = True

    def statistics(self) -> dict[str, int]:
        s = self.db.stats
        return {"calls": s.calls, "round_trips": s.round_trips, "retries": s.retries, "timeouts": s.timeouts,
                "ambiguous": s.ambiguous, "failures": s.failures, "connections_opened": s.connections_opened,
                "database_us": s.database_us}

    async def _ensure_schema(self) -> None:
        if not self._schema_checked:
            await probe_schema(self.db)
            self._schema_checked = True

    # --- users: reads ---------------------------------------------------------------------

    def _domain_condition(self, args: list[Any]) -> str:
        if not self.domains:
            return ""
        args.extend(self.domains)
        return f" AND domain IN ({sql.marks(len(self.domains))})"

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        await self._ensure_schema()
        args: list[Any] = []
        where = user_condition(filter, args) + self._domain_condition(args)
        page_sql = (f"SELECT {sql.MAILBOX_COLUMNS}, count(*) OVER () AS total FROM mailbox WHERE {where}"
                    " ORDER BY username LIMIT %s OFFSET %s")

        async def work(session: Session) -> Page[UserRecord]:
            rows = await session.fetch(page_sql, *args, limit, offset)
            if rows:
                return Page([user_record(r) for r in rows], int(rows[0]["total"]))
            if offset == 0 and limit > 0:
                return Page([], 0)
            counted = await session.fetch(f"SELECT count(*) AS total FROM mailbox WHERE {where}", *args)
            return Page([], int(counted[0]["total"]))

        return await self.db.read(work)

    async def get_user(self, key: str) -> UserRecord:
        await self._ensure_schema()
        rows = await self.db.read(lambda s: s.fetch(sql.GET_MAILBOX, key.lower()))
        if not rows:
            raise NotFound(f"mailbox {key} not found")
        return user_record(rows[0])

    # --- users: writes --------------------------------------------------------------------

    async def create_user(self, attributes: Attributes) -> UserRecord:
        await self._ensure_schema()
        address = mailbox_address(attributes.get("userName"))
        name = display_name(attributes.get("displayName"))
        active = attributes.get("active", True)
        if not isinstance(active, bool):
            raise Rejected("active must be true or false")
        password = attributes.get("password")
        stored = await (self.hashing.hash(password) if password is not None else self.hashing.unusable())
        maildir = address.maildir
        for _ in range(2):
            postgresql, mysql = sql.create_mailbox(
                address=address.value, local_part=address.local_part, domain=address.domain, password=stored,
                name=name, maildir=maildir, active=active, create_domain=self.create_domains)
            try:
                results = await self.db.atomic(postgresql, mysql)
            except UniqueViolation:
                raise await self._taken(address.value) from None
            if sql.created(results, self.db.dialect):
                return UserRecord(key=address.value, attributes=_user_attributes(address.value, name, active))
            await self._usable_domain(address.domain)
            if not await self._maildir_taken(maildir):
                break  # a concurrent change got in between: report it as unavailable below
            # A renamed mailbox keeps its maildir: never hand that directory to someone else.
            maildir = f"{address.domain}/{address.local_part}-{secrets.token_hex(3)}/"
        raise Unavailable(f"mailbox {address.value} was not created (the domain or maildir changed meanwhile); "
                          "try again")

    async def _maildir_taken(self, maildir: str) -> bool:
        return bool(await self.db.read(lambda s: s.fetch(sql.MAILDIR_TAKEN, maildir)))

    async def _taken(self, address: str) -> Exception:
        rows = await self.db.read(lambda s: s.fetch(sql.ADDRESS_TAKEN, address, address))
        kinds = {r["kind"] for r in rows}
        if "mailbox" in kinds or not kinds:
            return AlreadyExists(address, f"mailbox {address} already exists")
        return Rejected(f"{address} is already an alias or distribution list in PostfixAdmin; a mailbox cannot "
                        "have the same address", scim_type="uniqueness", status=409)

    async def _usable_domain(self, domain: str) -> None:
        """Rejected (400) with what to do when ``domain`` cannot hold mailboxes or lists."""
        rows = await self.db.read(lambda s: s.fetch(sql.DOMAIN_STATE, domain))
        if not rows:
            raise Rejected(f"the mail domain {domain} does not exist in PostfixAdmin: add it there first (or allow "
                           "the gateway to add domains: create_domains = true)")
        if not rows[0]["active"]:
            raise Rejected(f"the mail domain {domain} is disabled in PostfixAdmin: enable it there first")
        if rows[0]["backupmx"]:
            raise Rejected(f"the mail domain {domain} is a backup MX domain in PostfixAdmin: mail for it is relayed, "
                           "not delivered to mailboxes here")

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        await self._ensure_schema()
        fields: dict[str, Any] = {}
        new_address: Address | None = None
        for path, value in changes.items():
            if path == "userName":
                candidate = mailbox_address(value)
                if candidate.value != record.key:
                    new_address = candidate
            elif path == "active":
                if not isinstance(value, bool):
                    raise Rejected("active must be true or false")
                fields["active"] = value
            elif path == "displayName":
                fields["name"] = display_name(value)
            elif path == "password":
                fields["password"] = await self.hashing.hash(value)
            else:
                raise Rejected(f"PostfixAdmin does not store {path!r}", scim_type="invalidPath")
        if new_address is not None:
            return await self._rename(record.key, new_address, fields)
        if not fields:
            return await self.get_user(record.key)
        postgresql, mysql = sql.update_mailbox(record.key, fields)
        # Setting the same values twice leaves the same rows: safe to repeat after a lost answer.
        results = await self.db.atomic(postgresql, mysql, retry_safe=True)
        rows = results[-1]
        if not rows:
            raise NotFound(f"mailbox {record.key} not found")
        return user_record(rows[0])

    async def _rename(self, old: str, new: Address, fields: Mapping[str, Any]) -> UserRecord:
        async def work(session: Session) -> UserRecord:
            current = await session.fetch(sql.LOCK_MAILBOX, old)
            if not current:
                raise NotFound(f"mailbox {old} not found")
            await self._domain_in(session, new.domain)
            if await session.fetch(sql.ADDRESS_TAKEN, new.value, new.value):
                raise AlreadyExists(new.value, f"{new.value} is already a mailbox or alias in PostfixAdmin")
            await session.execute(sql.MOVE_MAILBOX, new.value, new.local_part, new.domain, old)
            if fields:
                sets = ", ".join(f"{column} = %s" for column in fields)
                await session.execute(f"UPDATE mailbox SET {sets} WHERE username = %s", *fields.values(), new.value)
            await session.execute(sql.MOVE_ALIAS, new.value, new.domain, old)
            if "active" in fields:
                await session.execute("UPDATE alias SET active = %s WHERE address = %s", fields["active"], new.value)
            await _rewrite_gotos(session, old, new.value)
            rows = await session.fetch(sql.GET_MAILBOX, new.value)
            return user_record(rows[0])

        try:
            return await self.db.transaction(work)
        except UniqueViolation:
            raise AlreadyExists(new.value, f"{new.value} is already a mailbox or alias in PostfixAdmin") from None

    async def _domain_in(self, session: Session, domain: str) -> None:
        """Inside a transaction: ``domain`` can hold the address (created first when allowed)."""
        if self.create_domains:
            statement, args = sql.insert_domain(domain)
            await session.execute(statement, *args)
        rows = await session.fetch(sql.DOMAIN_STATE, domain)
        if not rows or not rows[0]["active"] or rows[0]["backupmx"]:
            await self._usable_domain(domain)

    async def delete_user(self, record: UserRecord) -> None:
        await self._ensure_schema()
        key = record.key.lower()

        async def work(session: Session) -> None:
            if not await session.execute(sql.DELETE_MAILBOX, key):
                if session.attempt.after_ambiguous:
                    return  # the earlier attempt whose answer was lost did it
                raise NotFound(f"mailbox {key} not found")
            await session.execute(sql.DELETE_ALIAS, key)
            await _rewrite_gotos(session, key, None)

        await self.db.transaction(work, retry_safe=True)

    # --- groups ---------------------------------------------------------------------------

    async def _groups(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> list[GroupRecord]:
        targets = unique([t for r in rows for t in split_goto(r["goto"])])
        mailboxes: set[str] = set()
        for start in range(0, len(targets), 500):
            chunk = targets[start:start + 500]
            found = await session.fetch(sql.MAILBOXES_AMONG.format(marks=sql.marks(len(chunk))), *chunk)
            mailboxes.update(str(r["username"]).lower() for r in found)
        return [group_record(self.lists, str(r["address"]), r["goto"], mailboxes) for r in rows]

    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        await self._ensure_schema()
        names = group_names(filter)
        if self.lists.domain is None:
            return Page([], 0)
        if names is not None:
            addresses = []
            for name in names:
                try:
                    addresses.append(self.lists.address(name))
                except Rejected:
                    continue
            addresses = list(dict.fromkeys(addresses))
            if not addresses:
                return Page([], 0)

            async def by_address(session: Session) -> list[GroupRecord]:
                rows = await session.fetch(sql.GET_LIST.format(marks=sql.marks(len(addresses))), *addresses)
                return await self._groups(session, sorted(rows, key=lambda r: str(r["address"])))

            found = await self.db.read(by_address)
            return Page(found[offset:offset + limit], len(found))
        pattern = self.lists.like_pattern()

        async def page(session: Session) -> Page[GroupRecord]:
            rows = await session.fetch(sql.PAGE_LISTS, self.lists.list_domain, pattern, limit, offset)
            if rows:
                return Page(await self._groups(session, rows), int(rows[0]["total"]))
            if offset == 0 and limit > 0:
                return Page([], 0)
            counted = await session.fetch(sql.COUNT_LISTS, self.lists.list_domain, pattern)
            return Page([], int(counted[0]["total"]))

        return await self.db.read(page)

    async def get_group(self, key: str) -> GroupRecord:
        await self._ensure_schema()

        async def work(session: Session) -> list[GroupRecord]:
            return await self._groups(session, await session.fetch(sql.GET_LIST.format(marks="%s"), key.lower()))

        found = await self.db.read(work)
        if not found:
            raise NotFound(f"distribution list {key} not found")
        return found[0]

    async def create_group(self, attributes: Attributes, member_keys: Sequence[str]) -> GroupRecord:
        await self._ensure_schema()
        name = attributes.get("displayName")
        address = self.lists.address(name)
        domain = address.rpartition("@")[2]
        members = unique(member_keys)
        postgresql, mysql = sql.create_list(address, domain, ",".join(members), create_domain=self.create_domains)
        try:
            results = await self.db.atomic(postgresql, mysql)
        except UniqueViolation:
            raise await self._list_taken(address, str(name)) from None
        if not sql.created(results, self.db.dialect):
            await self._usable_domain(domain)
            raise Unavailable(f"distribution list {address} was not created (its domain changed meanwhile); try again")
        return GroupRecord(key=address, attributes={"displayName": name}, member_keys=members)

    async def _list_taken(self, address: str, name: str) -> Exception:
        rows = await self.db.read(lambda s: s.fetch(sql.ADDRESS_TAKEN, address, address))
        if any(r["kind"] == "mailbox" for r in rows):
            return Rejected(f"the list address {address} made from displayName {name!r} is a mailbox's address; "
                            "choose another displayName", scim_type="uniqueness", status=409)
        if self.lists.name(address) is None:
            return Rejected(f"the list address {address} made from displayName {name!r} is an alias in PostfixAdmin "
                            "already; choose another displayName", scim_type="uniqueness", status=409)
        return AlreadyExists(address, f"a group named {name!r} already exists")

    async def update_group(self, record: GroupRecord, changes: Attributes) -> GroupRecord:
        await self._ensure_schema()
        unknown = [p for p in changes if p != "displayName"]
        if unknown:
            raise Rejected(f"PostfixAdmin does not store group attribute {unknown[0]!r}", scim_type="invalidPath")
        if "displayName" not in changes:
            return await self.get_group(record.key)
        name = changes["displayName"]
        new = self.lists.address(name)
        if new == record.key:
            return GroupRecord(record.key, {"displayName": name}, list(record.member_keys))
        domain = new.rpartition("@")[2]

        async def work(session: Session) -> GroupRecord:
            if not await session.fetch(sql.LOCK_LIST, record.key):
                raise NotFound(f"distribution list {record.key} not found")
            await self._domain_in(session, domain)
            taken = await session.fetch(sql.ADDRESS_TAKEN, new, new)
            if taken:
                raise AlreadyExists(new, f"the list address {new} for displayName {name!r} is taken")
            await session.execute(sql.MOVE_ALIAS, new, domain, record.key)
            await _rewrite_gotos(session, record.key, new)
            found = await self._groups(session, await session.fetch(sql.GET_LIST.format(marks="%s"), new))
            return GroupRecord(new, {"displayName": name}, found[0].member_keys)

        try:
            return await self.db.transaction(work)
        except UniqueViolation:
            raise AlreadyExists(new, f"the list address {new} for displayName {name!r} is taken") from None

    async def _edit_members(self, record: GroupRecord, add: Sequence[str], remove: Sequence[str]) -> None:
        await self._ensure_schema()
        adding, removing = unique(add), set(unique(remove))

        async def work(session: Session) -> None:
            rows = await session.fetch(sql.LOCK_LIST, record.key)
            if not rows:
                raise NotFound(f"distribution list {record.key} not found")
            goto = str(rows[0]["goto"] or "")
            targets = [t for t in split_goto(goto) if t.lower() not in removing]
            present = {t.lower() for t in targets}
            targets += [k for k in adding if k not in present]
            new_goto = ",".join(targets)
            if new_goto != goto:
                await session.execute(sql.SET_GOTO, new_goto, record.key)

        # Row-locked read-modify-write with set semantics: repeating it changes nothing more.
        await self.db.transaction(work, retry_safe=True)

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        if member_keys:
            await self._edit_members(record, member_keys, ())

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        if member_keys:
            await self._edit_members(record, (), member_keys)

    async def delete_group(self, record: GroupRecord) -> None:
        await self._ensure_schema()
        key = record.key.lower()

        async def work(session: Session) -> None:
            if not await session.execute(sql.DELETE_LIST, key, key) and not session.attempt.after_ambiguous:
                raise NotFound(f"distribution list {key} not found")

        await self.db.transaction(work, retry_safe=True)


def _user_attributes(address: str, name: str, active: bool) -> Attributes:
    attributes: Attributes = {"userName": address, "active": active}
    if name:
        attributes["displayName"] = name
    return attributes


async def _rewrite_gotos(session: Session, old: str, new: str | None) -> None:
    """Inside a transaction: every alias target ``old`` becomes ``new`` (or goes, for None)."""
    rows = await session.fetch(sql.LOCK_GOTO_CONTAINING, f"%{like_escape(old.lower())}%")
    for row in rows:
        goto = str(row["goto"])
        rewritten = replace_target(goto, old.lower(), new)
        if rewritten != goto:
            await session.execute(sql.SET_GOTO, rewritten, row["address"])
