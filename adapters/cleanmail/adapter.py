"""The Cleanmail backend: mailboxes as SCIM Users, distribution lists as SCIM Groups.

* A user's key is its mailbox address (lower-cased by Cleanmail); a userName change is
  a rename through Cleanmail's dedicated rename call.
* A group's key is its list address, derived once from ``list_address_template`` when
  the group is created. Renaming the group changes only the list's display name: mail
  already sent to the old address keeps arriving.
* Cleanmail only knows full-replace PUTs, so every update merges the changes into the
  object the gateway read just before (kept in the record's ``state``) and sends the
  whole object back, including fields the gateway does not own (policy, quarantine
  report), which would otherwise be reset.
* Domains are configured by the operator in Cleanmail; a mailbox or list in an unknown
  domain is refused with a detail saying so, never created on the fly.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, model_validator
from yarl import URL

from adapters.base import (
    AlreadyExists,
    BackendError,
    Capabilities,
    GroupRecord,
    NotFound,
    Page,
    Rejected,
    Unavailable,
    UserRecord,
)
from adapters.cleanmail.client import CleanmailClient
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
from adapters.plugins import BackendContext, BackendPlugin, BackendSettingsModel
from adapters.retry import RetryPolicy
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
    counts_platform_calls=True,
)


def _row(value: Any) -> Row:
    if not isinstance(value, dict) or "address" not in value:
        raise Unavailable("Cleanmail sent a reply without the expected object")
    return value


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

    def statistics(self) -> dict[str, int]:
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
        except Unavailable:
            raise
        except BackendError as err:
            raise Unavailable(f"Cleanmail is not usable: {err}") from err

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
                raise Unavailable(f"Cleanmail sent a malformed {resource} listing")
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
        return user_record(await self._mailbox(key))

    async def create_user(self, attributes: Mapping[str, Any]) -> UserRecord:
        body = new_mailbox(attributes)
        try:
            reply = await self.client.request("POST", ("mailboxes",), body=body)
        except AlreadyExists as err:
            raise AlreadyExists(err.existing_key or body["address"], str(err)) from None
        return user_record(_row(reply))

    async def update_user(self, record: UserRecord, changes: Mapping[str, Any]) -> UserRecord:
        # The gateway read the mailbox right before: its row is the base of the full-replace PUT.
        current = record.state if isinstance(record.state, dict) else await self._mailbox(record.key)
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
        except Unavailable as err:
            if not err.may_apply:
                raise
            # Read back once: the rename may have been applied before the failure.
            try:
                renamed = await self._mailbox_or_none(new)
                still_there = renamed is not None and await self._mailbox_or_none(old) is not None
            except BackendError:
                raise err from None
            if renamed is None or still_there:
                raise
            log.info("cleanmail rename %s -> %s was applied despite %s", old, new, err.detail)
            return renamed
        return _row(reply)

    async def delete_user(self, record: UserRecord) -> None:
        await self.client.request("DELETE", ("mailboxes", record.key))

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
        except AlreadyExists:
            taken = await self._group_or_none(address)
            taken_name = taken.attributes.get("displayName") if taken else None
            if taken is None or values_equal("displayName", taken_name, name):
                raise AlreadyExists(address, f"a group named {name!r} already exists") from None
            raise Rejected(
                f"the list address {address} derived from displayName {name!r} is already used by "
                f"the group {taken_name!r}; choose another displayName",
                scim_type="uniqueness", status=409,
            ) from None
        return group_record(_row(reply))

    async def _group_or_none(self, key: str) -> GroupRecord | None:
        try:
            return await self.get_group(key)
        except NotFound:
            return None

    async def update_group(self, record: GroupRecord, changes: Mapping[str, Any]) -> GroupRecord:
        current = record.state if isinstance(record.state, dict) else _row(await self.client.get("lists", record.key))
        fields = editable_fields(current)
        for path, value in changes.items():
            if path == "displayName":
                fields["display_name"] = display_name(value)
            elif path == "members":
                fields["members"] = [str(k).lower() for k in value or []]
            else:
                raise Rejected(f"Cleanmail does not store group attribute {path!r}", scim_type="invalidPath")
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

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        await self._edit_members(record.key, "add", member_keys)

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        await self._edit_members(record.key, "remove", member_keys)

    async def delete_group(self, record: GroupRecord) -> None:
        await self.client.request("DELETE", ("lists", record.key))


class CleanmailSettings(BackendSettingsModel):
    url: str = Field(default="http://127.0.0.1:8081", description="Base URL of the Cleanmail admin API.")
    api_key: SecretStr | None = Field(default=None, description="API key (prefer api_key_env or api_key_file).")
    api_key_env: str | None = Field(default=None, description="Name of an environment variable holding the API key.")
    api_key_file: Path | None = Field(default=None, description="File holding the API key (a mounted secret).")
    domain: str | None = Field(default=None, description="Older name of the tenant's list_domain.")
    attempt_timeout: float = Field(default=5.0, gt=0, description="Seconds one call may take.")
    deadline: float = Field(default=20.0, gt=0, description="Seconds all attempts of one call may take.")

    @model_validator(mode="after")
    def _one_key_source(self) -> CleanmailSettings:
        given = [n for n in ("api_key", "api_key_env", "api_key_file") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"set only one of api_key, api_key_env, api_key_file (got {', '.join(given)})")
        return self

    def secret_values(self) -> Iterator[str]:
        with contextlib.suppress(ValueError):
            key = self.resolve_api_key()
            if key:
                yield key

    def resolve_api_key(self) -> str:
        """The API key from wherever the configuration says it lives."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env is not None:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ValueError(f"environment variable {self.api_key_env} (api_key_env) is not set")
            return value
        if self.api_key_file is not None:
            try:
                return self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read api_key_file {self.api_key_file}: {exc.strerror}") from None
        return ""


def _create(settings: CleanmailSettings, context: BackendContext) -> CleanmailAdapter:
    return CleanmailAdapter(
        settings.url, settings.resolve_api_key(), default_domain=context.list_domain or settings.domain,
        list_address_template=context.list_address_template, attempt_timeout=settings.attempt_timeout,
        deadline=settings.deadline,
    )


def _endpoint(settings: CleanmailSettings) -> tuple[str, int]:
    url = URL(settings.url)
    return str(url.host), int(url.port or 80)


def _relocate(settings: CleanmailSettings, host: str, port: int) -> CleanmailSettings:
    return settings.model_copy(update={"url": str(URL(settings.url).with_host(host).with_port(port))})


PLUGIN = BackendPlugin(
    name="cleanmail", summary="A Cleanmail-like mail-admin REST API (the mock shipped with the gateway).",
    settings=CleanmailSettings, create=_create, location=lambda s: s.url, endpoint=_endpoint, relocate=_relocate,
)
