"""The Modoboa backend: SimpleUsers accounts as SCIM Users, aliases as SCIM Groups (see ``lists.py``).

* A user's key is its address, Modoboa's ``username`` (which Modoboa lower-cases); the
  account's primary key travels in the record's state. A userName change renames the
  account with one PATCH: Modoboa moves the mailbox and rewrites the lists it is on.
* Only accounts of role ``SimpleUsers`` are users: administrators' accounts are never
  listed, changed or deleted.
* Modoboa's account search is fuzzy (prefix of names and address, part of username):
  lookups keep the exact matches only.
* A create needs a password that passes Modoboa's validators. A SCIM client that sends one
  (Okta) has it passed through; without one (Entra) the mailbox gets a random one that is
  never kept, so nobody can log in until an admin sets a password.
* Modoboa disables the lists whose only member is disabled, and does not enable them again
  with the member: a re-enabled account enables the gateway's lists it is on. Its internal
  self-alias stays disabled: no API reaches it (see the README).
* Modoboa deletes a list whose last member is deleted: before deleting an account, the
  lists it alone belongs to get their empty-list stand-in, so the SCIM group survives.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from yarl import URL

from adapters.base import (
    AlreadyExists,
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
from adapters.modoboa.client import (
    DomainMissing,
    FieldErrors,
    ModoboaClient,
    PageMissing,
    page_rows,
)
from adapters.modoboa.domains import Domains
from adapters.modoboa.lists import Lists
from adapters.modoboa.mapping import (
    ROLE,
    Row,
    account_changes,
    domain_of,
    is_managed_account,
    new_account,
    user_record,
    wanted_names,
)
from adapters.modoboa.pacing import Rates
from adapters.plugins import BackendContext, BackendPlugin, BackendSettingsModel
from adapters.retry import RetryPolicy

log = logging.getLogger(__name__)

SELF_ALIAS_REPAIR_SQL = """\
UPDATE admin_alias AS self_alias SET enabled = true
  FROM core_user AS account
 WHERE self_alias.internal AND NOT self_alias.enabled
   AND self_alias.address = account.email AND account.is_active
   AND NOT EXISTS (SELECT 1 FROM admin_alias AS forward
                    WHERE forward.address = self_alias.address AND NOT forward.internal);"""
"""Enables again the self-alias of every active account that Modoboa left disabled (PostgreSQL).

Modoboa disables an account's internal self-alias with the account and never enables it
again; no API call reaches it. An account with a forward that keeps no copy is left alone:
there Modoboa disables the self-alias on purpose.
"""

READY_DEADLINE_S = 3.0
SEARCH_PAGE = 100
EMPTY_LIST_RECIPIENT = "nobody@empty-list.invalid"

CAPABILITIES = Capabilities(
    user_attributes=frozenset({"userName", "active", "name.givenName", "name.familyName", "password"}),
    user_filterable=frozenset({"userName"}),
    groups=True,
    group_attributes=frozenset({"displayName", "members"}),
    group_filterable=frozenset({"displayName"}),
    # Modoboa takes about 9 ms per account in a listing: larger pages risk the request deadline.
    max_page_size=200,
    counts_platform_calls=True,
)


def _duplicate(err: FieldErrors) -> bool:
    return err.says("username", "already exists", "already used")


class ModoboaAdapter:
    name = "modoboa"
    capabilities = CAPABILITIES

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        list_domain: str | None = None,
        list_address_template: str = "{slug}@{domain}",
        domains: frozenset[str] = frozenset(),
        create_domains: bool = False,
        empty_list_recipient: str = EMPTY_LIST_RECIPIENT,
        rates: Rates | None = None,
        max_concurrency: int = 4,
        policy: RetryPolicy | None = None,
        verify_tls: bool = True,
    ) -> None:
        self.client = ModoboaClient(base_url, token, policy=policy, rates=rates, max_concurrency=max_concurrency,
                                    verify_tls=verify_tls)
        self.scope = frozenset(d.lower() for d in domains)
        """The tenant's mail domains (empty: all): users outside them are neither listed nor found."""
        self.domains = Domains(self.client, create_missing=create_domains)
        only_domain = next(iter(self.scope)) if len(self.scope) == 1 else None
        self.lists = Lists(self.client, self.domains, list_domain=list_domain or only_domain,
                           template=list_address_template, placeholder=empty_list_recipient)

    def __repr__(self) -> str:
        return f"ModoboaAdapter({str(self.client.root)!r})"

    def statistics(self) -> dict[str, int]:
        return self.client.stats.as_dict()

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def check(self) -> None:
        # A readiness probe must answer quickly, not after the whole retry budget.
        deadline = min(self.client.policy.deadline, READY_DEADLINE_S)
        try:
            await self.client.get("domains", params={"page_size": 1}, deadline=deadline)
        except Unavailable:
            raise
        except BackendError as err:
            raise Unavailable(f"Modoboa is not usable: {err}") from err

    # --- users: reading -------------------------------------------------------------------------

    def _in_scope(self, address: str) -> bool:
        return not self.scope or domain_of(address) in self.scope

    async def _accounts_at(self, address: str, *, any_role: bool = False) -> list[Row]:
        """The accounts named exactly ``address``, out of Modoboa's fuzzy search."""
        params: dict[str, str | int] = {"search": address, "page_size": SEARCH_PAGE, "ordering": "username"}
        if not any_role:
            params["role"] = ROLE
        rows, count, _ = page_rows(await self.client.get("accounts", params=params))
        if count > len(rows):
            # Many fuzzy matches: the exact one may be on a later page.
            params["page_size"] = count
            rows, _, _ = page_rows(await self.client.get("accounts", params=params))
        return [r for r in rows if str(r.get("username", "")).lower() == address.lower()]

    async def _account(self, address: str) -> Row:
        if self._in_scope(address):
            for row in await self._accounts_at(address):
                if is_managed_account(row):
                    return row
        raise NotFound(f"no mailbox {address} in Modoboa")

    async def account_exists(self, address: str) -> bool:
        """Whether any account (of any role) is named ``address``."""
        return bool(await self._accounts_at(address, any_role=True))

    async def get_user(self, key: str) -> UserRecord:
        return user_record(await self._account(key.lower()))

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        names = wanted_names(filter, "userName")
        if names is None:
            return await self._listing(offset, limit)
        found: dict[str, UserRecord] = {}
        for name in names:
            with contextlib.suppress(NotFound):
                record = await self.get_user(name)
                found.setdefault(record.key, record)
        records = sorted(found.values(), key=lambda r: r.key)
        return Page(items=records[offset:offset + limit], total=len(records))

    async def _listing(self, offset: int, limit: int) -> Page[UserRecord]:
        """A window of every user in scope, domain after domain, each by username."""
        sources: list[dict[str, str | int]] = []
        if not self.scope:
            sources.append({})
        for domain in sorted(self.scope):
            pk = await self.domains.pk(domain)
            if pk is not None:
                sources.append({"domain": pk})  # by primary key here; alias listings filter by name
        items: list[UserRecord] = []
        total = 0
        position = offset
        for source in sources:
            need = limit - len(items)
            rows, count = await self._slice(source, position, need)
            items.extend(user_record(r) for r in rows)
            position = max(0, position - count)
            total += count
        return Page(items=items, total=total)

    async def _slice(self, source: Mapping[str, str | int], start: int, size: int) -> tuple[list[Row], int]:
        """Rows ``start … start+size`` of one listing, and its length, in at most two page calls."""
        params: dict[str, str | int] = {**source, "role": ROLE, "ordering": "username"}
        if size <= 0:
            _, count, _ = page_rows(await self._page({**params, "page_size": 1, "page": 1}, source))
            return [], count
        first = start // size
        rows: list[Row] = []
        count = 0
        for page in (first + 1, first + 2):
            try:
                chunk, count, more = page_rows(await self._page({**params, "page_size": size, "page": page}, source))
            except PageMissing:
                if page == first + 1:
                    return [], (await self._slice(source, 0, 0))[1]
                break
            rows.extend(chunk)
            if start % size == 0 or not more:
                break
        skip = start - first * size
        return rows[skip:skip + size], count

    async def _page(self, params: dict[str, str | int], source: Mapping[str, str | int]) -> Any:
        try:
            return await self.client.get("accounts", params=params)
        except FieldErrors as err:
            if "domain" in source and err.says("domain", "valid choice"):
                # The cached key of a domain that was deleted (and perhaps made again).
                self.domains.forget_pk(int(source["domain"]))
                return {"count": 0, "next": None, "results": []}
            raise

    # --- users: writing -------------------------------------------------------------------------

    async def create_user(self, attributes: Mapping[str, Any]) -> UserRecord:
        body = new_account(attributes)
        address = body["username"]
        # The POST comes first, so that a lost answer is always a create that may have been
        # applied. An alias already at the address stays: Modoboa then treats it as the new
        # mailbox's forward, as its own user interface would.
        try:
            reply = await self._send_account("POST", ("accounts",), body, address)
        except FieldErrors as err:
            if _duplicate(err):
                raise await self._taken(address, str(err)) from None
            raise
        return user_record(_account_row(reply))

    async def _send_account(self, method: str, segments: Sequence[str], body: dict[str, Any], address: str) -> Any:
        """A write that names ``address``, creating its mail domain first when that is allowed and needed."""
        try:
            return await self.client.request(method, segments, body=body)
        except DomainMissing:
            await self.domains.create(domain_of(address))
            return await self.client.request(method, segments, body=body)

    async def _taken(self, address: str, reason: str) -> BackendError:
        holders = await self._accounts_at(address, any_role=True)
        if holders and not is_managed_account(holders[0]):
            return Rejected(f"{address} is a Modoboa account of role {holders[0].get('role')}, which the gateway "
                            "does not manage; choose another userName", scim_type="uniqueness", status=409)
        return AlreadyExists(address, f"Modoboa: {reason}")

    async def _current(self, record: UserRecord) -> Row:
        if isinstance(record.state, dict) and "pk" in record.state:
            return record.state
        return await self._account(record.key)

    async def update_user(self, record: UserRecord, changes: Mapping[str, Any]) -> UserRecord:
        row = await self._current(record)
        body = account_changes(changes)
        if not body:
            return user_record(row)
        target = body.get("username", record.key)
        try:
            reply = await self._send_account("PATCH", ("accounts", str(row["pk"])), body, target)
        except FieldErrors as err:
            if "username" in body and _duplicate(err):
                raise await self._taken(body["username"], str(err)) from None
            raise
        updated = _account_row(reply)
        if body.get("is_active") is True:
            await self._reenable_lists(row, updated)
        return user_record(updated)

    async def _alias_addresses(self, row: Row) -> list[str]:
        """The aliases the account is a recipient of (write answers leave the field out: read it then)."""
        if not isinstance(row.get("aliases"), list):
            reply = await self.client.get("accounts", str(row["pk"]))
            row = _account_row(reply)
        return [str(a) for a in row.get("aliases") or []]

    async def _reenable_lists(self, before: Row, after: Row) -> None:
        fixed = await self.lists.reenable(await self._alias_addresses(before))
        if fixed:
            log.info("modoboa: re-enabled %d list(s) of %s that Modoboa disabled with it", fixed, after["username"])

    async def delete_user(self, record: UserRecord) -> None:
        row = await self._current(record)
        address = str(row["username"]).lower()
        kept = await self.lists.keep_after_last_member(address, await self._alias_addresses(row))
        try:
            await self.client.request("DELETE", ("accounts", str(row["pk"])))
        except NotFound:
            raise
        except Exception:
            await self.lists.undo_keep(address, kept)
            raise

    # --- groups ---------------------------------------------------------------------------------

    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        return await self.lists.find(wanted_names(filter, "displayName"), offset, limit)

    async def get_group(self, key: str) -> GroupRecord:
        return self.lists.record(await self.lists.row(key.lower()))

    async def create_group(self, attributes: Mapping[str, Any], member_keys: Sequence[str]) -> GroupRecord:
        return await self.lists.create(attributes, member_keys, self.account_exists)

    async def update_group(self, record: GroupRecord, changes: Mapping[str, Any]) -> GroupRecord:
        return await self.lists.rename(record, changes)

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        current = self.lists.current_members(record)
        await self.lists.set_members(record, current + [k.lower() for k in member_keys])

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        gone = {k.lower() for k in member_keys}
        await self.lists.set_members(record, [m for m in self.lists.current_members(record) if m not in gone])

    async def delete_group(self, record: GroupRecord) -> None:
        await self.lists.delete(record)


def _account_row(reply: Any) -> Row:
    if not isinstance(reply, dict) or "username" not in reply or "pk" not in reply:
        raise Unavailable("Modoboa sent a reply without the expected account")
    return reply


# --- the plugin ---------------------------------------------------------------------------------


class ModoboaSettings(BackendSettingsModel):
    url: str = Field(description="Base URL of Modoboa (the site's root; /api/v2/ is added), e.g. "
                                 "https://mail.example.com.")
    token: SecretStr | None = Field(default=None, description="API token of the Modoboa account the gateway acts "
                                                              "as (sent as 'Authorization: Token …').")
    token_file: Path | None = Field(default=None, description="File holding the API token (a mounted secret), "
                                                              "instead of token.")
    create_domains: bool = Field(default=False, description="Create a mail domain that does not exist yet in "
                                                            "Modoboa when a user or list needs it (needs a "
                                                            "SuperAdmins token).")
    requests_per_minute: int = Field(default=300, ge=0, description="Modoboa's throttle rate 'user' for the "
                                                                    "token: requests per minute (0: no pacing).")
    writes_per_second: int = Field(default=5, ge=0, description="Modoboa's throttle rate 'ddos': writes per "
                                                                "second to one URL pattern (0: no pacing).")
    reads_per_minute: int = Field(default=200, ge=0, description="Modoboa's throttle rate 'ddos_lesser': reads "
                                                                 "per minute of one URL pattern (0: no pacing).")
    max_concurrency: int = Field(default=4, ge=1, description="Requests in flight to Modoboa at once.")
    empty_list_recipient: str = Field(default=EMPTY_LIST_RECIPIENT, description="Stand-in recipient of an empty "
                                      "distribution list (Modoboa refuses an alias without one); the list is "
                                      "disabled meanwhile, so nothing is ever sent there.")
    attempt_timeout: float = Field(default=10.0, gt=0, description="Seconds one request to Modoboa may take.")
    deadline: float = Field(default=25.0, gt=0, description="Seconds one call may take: pacing, attempts and "
                                                            "backoff together.")
    verify_tls: bool = Field(default=True, description="Check Modoboa's TLS certificate.")

    @field_validator("empty_list_recipient")
    @classmethod
    def _one_address(cls, value: str) -> str:
        local, at, domain = value.strip().rpartition("@")
        if not (local and at and "." in domain):
            raise ValueError("must be a mail address (local@domain)")
        return value.strip().lower()

    @model_validator(mode="after")
    def _one_token_source(self) -> ModoboaSettings:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("set exactly one of token and token_file")
        return self

    def resolve_token(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_file is not None
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read token_file {self.token_file}: {exc.strerror}") from None

    def secret_values(self) -> Iterator[str]:
        with contextlib.suppress(ValueError):
            token = self.resolve_token()
            if token:
                yield token


def _create(settings: ModoboaSettings, context: BackendContext) -> ModoboaAdapter:
    return ModoboaAdapter(
        settings.url, settings.resolve_token(), list_domain=context.list_domain,
        list_address_template=context.list_address_template, domains=context.domains,
        create_domains=settings.create_domains, empty_list_recipient=settings.empty_list_recipient,
        rates=Rates(settings.requests_per_minute, settings.writes_per_second, settings.reads_per_minute),
        max_concurrency=settings.max_concurrency, verify_tls=settings.verify_tls,
        policy=RetryPolicy(attempt_timeout=settings.attempt_timeout, deadline=settings.deadline),
    )


def _endpoint(settings: ModoboaSettings) -> tuple[str, int]:
    url = URL(settings.url)
    return str(url.host), int(url.port or (443 if url.scheme == "https" else 80))


def _relocate(settings: ModoboaSettings, host: str, port: int) -> ModoboaSettings:
    return settings.model_copy(update={"url": str(URL(settings.url).with_host(host).with_port(port))})


SELF_ALIAS_NOTE = (
    "Modoboa bug: disabling an account also disables its internal self-alias, and enabling it again does not "
    "(no API reaches it). Mail to an account the gateway disabled and enabled again still reaches the mailbox, "
    "unless its domain has a catch-all alias: then the catch-all takes it. See the README (Modoboa) for the "
    "SQL statement that repairs it."
)

PLUGIN = BackendPlugin(
    name="modoboa", summary="Modoboa's REST API (v2): accounts as mailboxes, aliases as distribution lists.",
    settings=ModoboaSettings, create=_create, location=lambda s: s.url, endpoint=_endpoint, relocate=_relocate,
    notes=(SELF_ALIAS_NOTE,),
)
