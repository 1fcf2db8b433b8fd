"""Modoboa's mail domains, as the adapter needs them: a name's primary key, and creation on demand."""

from __future__ import annotations

import asyncio

from adapters.base import Rejected, Unavailable
from adapters.modoboa.client import FieldErrors, ModoboaClient, page_rows


class Domains:
    def __init__(self, client: ModoboaClient, *, create_missing: bool) -> None:
        self.client = client
        self.create_missing = create_missing
        self._pks: dict[str, int] = {}
        self._creating: dict[str, asyncio.Lock] = {}

    async def pk(self, name: str) -> int | None:
        """The primary key of domain ``name`` (the account listing filters by it), None when absent."""
        name = name.lower()
        if name in self._pks:
            return self._pks[name]
        reply = await self.client.get("domains", params={"search": name, "page_size": 100})
        rows, _, _ = page_rows(reply)
        for row in rows:
            if str(row.get("name", "")).lower() == name and isinstance(row.get("pk"), int):
                self._pks[name] = row["pk"]
                return int(row["pk"])
        return None

    def forget_pk(self, pk: int) -> None:
        """Drop a cached key that Modoboa no longer knows (the domain was deleted and made again)."""
        for name, known in list(self._pks.items()):
            if known == pk:
                del self._pks[name]

    async def create(self, name: str) -> None:
        """Create domain ``name`` when the settings allow it; Rejected saying what to do when not.

        Concurrent creates into one new domain all find it missing: one of them makes it, the
        others wait for that and find it there (Modoboa answers a race of its own with HTTP 500).
        """
        name = name.lower()
        if not self.create_missing:
            raise Rejected(f"the mail domain {name} does not exist in Modoboa: add it there first (or let the "
                           "gateway create missing domains with the modoboa backend's create_domains setting)")
        lock = self._creating.setdefault(name, asyncio.Lock())
        async with lock:
            self._pks.pop(name, None)
            if await self.pk(name) is not None:
                return
            try:
                reply = await self.client.request(
                    "POST", ("domains",), body={"name": name, "quota": 0, "default_mailbox_quota": 0})
            except FieldErrors as err:
                if err.says("name", "already exists"):
                    return  # made meanwhile by another client
                raise Rejected(f"Modoboa refused to create the mail domain {name}: {err.reason}") from None
            except Unavailable:
                if await self.pk(name) is not None:
                    return  # made after all, or by another client
                raise
            except Rejected as err:
                if err.status != 403:
                    raise
                raise Rejected(f"the mail domain {name} does not exist in Modoboa and the gateway's API token may "
                               "not create domains: add it in Modoboa, or use a SuperAdmins token",
                               status=403) from None
        if isinstance(reply, dict) and isinstance(reply.get("pk"), int):
            self._pks[name] = reply["pk"]
