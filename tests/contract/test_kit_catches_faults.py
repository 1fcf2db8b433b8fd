"""The kit fails adapters that break the contract: each broken adapter here trips the check that guards it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adapters.base import Attributes, Filter, GroupRecord, Page, Unavailable, UserRecord
from adapters.contract import CHECKS, KitFailure, KitTarget
from adapters.memory import MemoryAdapter

DOMAIN = "kit.example"


class CaseSensitiveLookup(MemoryAdapter):
    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        page = await super().find_users(filter, offset, limit)
        wanted = getattr(filter, "value", None)
        return Page([r for r in page.items if wanted is None or r.attributes["userName"] == wanted], page.total)


class ForgetfulRename(MemoryAdapter):
    """Renames a mailbox but leaves the lists naming the old key."""

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        lists = {k: list(g.member_keys) for k, g in self._groups.items()}
        updated = await super().update_user(record, changes)
        for key, members in lists.items():
            self._groups[key].member_keys = members
        return updated


class StrictMembers(MemoryAdapter):
    """Refuses to add a member twice, as some platforms do, instead of succeeding."""

    async def add_members(self, record: GroupRecord, member_keys: Sequence[str]) -> None:
        present = set(self._groups[record.key].member_keys)
        if present & set(member_keys):
            raise Unavailable("member already present")
        await super().add_members(record, member_keys)


class PagingRepeats(MemoryAdapter):
    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        return await super().find_users(filter, max(0, offset - 1), limit)


@pytest.mark.parametrize(
    ("adapter", "check_name"),
    [
        (CaseSensitiveLookup(), "user_case_insensitive"),
        (ForgetfulRename(), "membership_follows_user"),
        (StrictMembers(), "members_idempotent"),
        (PagingRepeats(), "paging"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
async def test_broken_adapter_fails_its_check(adapter: MemoryAdapter, check_name: str) -> None:
    check = next(c for c in CHECKS if c.name == check_name)
    with pytest.raises((KitFailure, Unavailable)):
        await check.run(KitTarget(adapter, DOMAIN))
