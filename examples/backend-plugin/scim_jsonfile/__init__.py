"""A backend that keeps mailboxes and distribution lists in one JSON file.

The file looks like::

    {"mailboxes": {"ann@example.org": {"userName": "Ann@example.org", "active": true, ...}},
     "lists": {"sales@lists.example.org": {"displayName": "Sales", "members": ["ann@example.org"]}}}

Keys are lower-cased addresses; a list's address comes from the tenant's list template.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from adapters.base import (
    AlreadyExists,
    Attributes,
    Capabilities,
    Filter,
    GroupRecord,
    NotFound,
    Page,
    Rejected,
    UserRecord,
)
from adapters.plugins import BackendContext, BackendPlugin, BackendSettingsModel
from adapters.records import record_filter, set_dotted

OWNED = frozenset({"userName", "active", "name.givenName", "name.familyName", "displayName"})


class JsonFileSettings(BackendSettingsModel):
    path: Path = Field(description="The JSON file holding mailboxes and lists (created when missing).")


def _address(value: Any) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or not all(value.split("@")):
        raise Rejected(f"userName {value!r} must be a mail address (local@domain)")
    return value.lower()


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:64] or "list"


class JsonFileAdapter:
    name = "jsonfile"
    capabilities = Capabilities(user_attributes=OWNED, user_filterable=frozenset({"userName", "active"}))

    def __init__(self, path: Path, list_template: str, list_domain: str) -> None:
        self.path = path
        self.list_template = list_template
        self.list_domain = list_domain
        self._lock = asyncio.Lock()  # one change at a time: read, modify, write back

    async def start(self) -> None:
        if not self.path.exists():
            self._save({"mailboxes": {}, "lists": {}})

    async def close(self) -> None:
        return None

    async def check(self) -> None:  # HealthCheck: the file must be readable
        self._load()

    # --- the file -------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        with open(self.path, encoding="utf-8") as handle:
            data: dict[str, Any] = json.load(handle)
        return data

    def _save(self, data: dict[str, Any]) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, indent=1)
        os.replace(temporary, self.path)  # atomic: the file is old or new, never half-written

    # --- mailboxes ------------------------------------------------------------------------

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        selected = record_filter(filter, "User")
        rows = sorted(self._load()["mailboxes"].items())
        found = [UserRecord(key, attrs) for key, attrs in rows if selected(attrs)]
        return Page(found[offset:offset + limit], len(found))

    async def get_user(self, key: str) -> UserRecord:
        attrs = self._load()["mailboxes"].get(key)
        if attrs is None:
            raise NotFound(f"mailbox {key} not found")
        return UserRecord(key, attrs)

    async def create_user(self, attributes: Attributes) -> UserRecord:
        key = _address(attributes.get("userName"))
        async with self._lock:
            data = self._load()
            if key in data["mailboxes"]:
                raise AlreadyExists(key, f"mailbox {key} already exists")
            attrs = {"active": True, **{k: v for k, v in attributes.items() if v is not None}}
            data["mailboxes"][key] = attrs
            self._save(data)
        return UserRecord(key, copy.deepcopy(attrs))

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        async with self._lock:
            data = self._load()
            attrs = data["mailboxes"].get(record.key)
            if attrs is None:
                raise NotFound(f"mailbox {record.key} not found")
            new_key = _address(changes["userName"]) if "userName" in changes else record.key
            if new_key != record.key and new_key in data["mailboxes"]:
                raise AlreadyExists(new_key, f"mailbox {new_key} already exists")
            for path, value in changes.items():
                set_dotted(attrs, path, value)
            del data["mailboxes"][record.key]
            data["mailboxes"][new_key] = attrs
            for group in data["lists"].values():  # a renamed mailbox stays on its lists
                group["members"] = [new_key if m == record.key else m for m in group["members"]]
            self._save(data)
        return UserRecord(new_key, attrs)

    async def delete_user(self, record: UserRecord) -> None:
        async with self._lock:
            data = self._load()
            if data["mailboxes"].pop(record.key, None) is None:
                raise NotFound(f"mailbox {record.key} not found")
            for group in data["lists"].values():
                group["members"] = [m for m in group["members"] if m != record.key]
            self._save(data)

    # --- distribution lists -------------------------------------------------------------------

    @staticmethod
    def _group(key: str, row: dict[str, Any]) -> GroupRecord:
        return GroupRecord(key, {"displayName": row["displayName"]}, list(row["members"]))

    async def find_groups(self, filter: Filter | None, offset: int, limit: int) -> Page[GroupRecord]:
        selected = record_filter(filter, "Group")
        rows = sorted(self._load()["lists"].items())
        found = [self._group(key, row) for key, row in rows if selected({"displayName": row["displayName"]})]
        return Page(found[offset:offset + limit], len(found))

    async def get_group(self, key: str) -> GroupRecord:
        row = self._load()["lists"].get(key)
        if row is None:
            raise NotFound(f"list {key} not found")
        return self._group(key, row)

    async def create_group(self, attributes: Attributes, member_keys: Sequence[str]) -> GroupRecord:
        name = attributes.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise Rejected("a list needs a displayName")
        key = self.list_template.format(slug=_slug(name), domain=self.list_domain).lower()
        async with self._lock:
            data = self._load()
            if key in data["lists"] or any(r["displayName"].lower() == name.lower() for r in data["lists"].values()):
                raise AlreadyExists(key, f"a list named {name!r} already exists")
            self._known(data, member_keys)
            data["lists"][key] = {"displayName": name, "members": list(dict.fromkeys(member_keys))}
            self._save(data)
            return self._group(key, data["lists"][key])

    async def update_group(self, record: GroupRecord, changes: Attributes) -> GroupRecord:
        async with self._lock:
            data = self._load()
            row = self._row(data, record.key)
            name = changes.get("displayName", row["displayName"])
            if not isinstance(name, str) or not name.strip():
                raise Rejected("a list needs a displayName")
            taken = [k for k, r in data["lists"].items() if r["displayName"].lower() == name.lower()]
            if any(k != record.key for k in taken):
                raise AlreadyExists(taken[0], f"a list named {name!r} already exists")
            row["displayName"] = name  # the address stays: mail sent to it keeps arriving
            self._save(data)
            return self._group(record.key, row)

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        async with self._lock:
            data = self._load()
            row = self._row(data, record.key)
            self._known(data, member_keys)
            row["members"].extend(k for k in dict.fromkeys(member_keys) if k not in row["members"])
            self._save(data)

    async def remove_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        async with self._lock:
            data = self._load()
            row = self._row(data, record.key)
            row["members"] = [m for m in row["members"] if m not in set(member_keys)]
            self._save(data)

    async def delete_group(self, record: GroupRecord) -> None:
        async with self._lock:
            data = self._load()
            self._row(data, record.key)
            del data["lists"][record.key]
            self._save(data)

    @staticmethod
    def _row(data: dict[str, Any], key: str) -> dict[str, Any]:
        row: dict[str, Any] | None = data["lists"].get(key)
        if row is None:
            raise NotFound(f"list {key} not found")
        return row

    @staticmethod
    def _known(data: dict[str, Any], member_keys: Sequence[str]) -> None:
        unknown = [k for k in member_keys if k not in data["mailboxes"]]
        if unknown:
            raise Rejected(f"no mailbox for member(s) {', '.join(unknown)}")


def _create(settings: JsonFileSettings, context: BackendContext) -> JsonFileAdapter:
    return JsonFileAdapter(settings.path, context.list_address_template, context.list_domain or "lists.invalid")


PLUGIN = BackendPlugin(
    name="jsonfile", summary="Example plugin: mailboxes and lists kept in a JSON file.",
    settings=JsonFileSettings, create=_create, location=lambda s: str(s.path),
)
