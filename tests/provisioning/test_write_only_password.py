"""A backend that owns ``password`` gets it on create and update; the gateway keeps it nowhere.

Not in the mapping's record of what the client sent, not in the journal of a write whose
answer was lost: a state store (SQLite file, PostgreSQL) must never hold a password.
"""

from __future__ import annotations

from typing import Any

from adapters.base import Attributes, Capabilities, Unavailable, UserRecord
from adapters.memory import USER_ATTRIBUTES, MemoryAdapter
from gateway.http.app import STORE_KEY, create_app
from tests.conftest import AUTH, BASE, ClientFactory, make_settings
from tests.entra.helpers import PATCH_URN, USER_URN, call

SECRET = "Write-Only-Secret"


class PasswordPlatform(MemoryAdapter):
    """Takes passwords (remembering what it was sent, as a platform would hash it) and never returns them."""

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = Capabilities(user_attributes=USER_ATTRIBUTES | {"password"})
        self.passwords: list[str] = []
        self.lose_next_answer = False

    async def create_user(self, attributes: Attributes) -> UserRecord:
        self.passwords.append(str(attributes.get("password")))
        return await super().create_user({k: v for k, v in attributes.items() if k != "password"})

    async def update_user(self, record: UserRecord, changes: Attributes) -> UserRecord:
        if "password" in changes:
            self.passwords.append(str(changes["password"]))
        updated = await super().update_user(record, {k: v for k, v in changes.items() if k != "password"})
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise Unavailable("answer lost", may_apply=True)
        return updated


def _patch(**values: Any) -> dict[str, Any]:
    ops = [{"op": "replace", "path": path, "value": value} for path, value in values.items()]
    return {"schemas": [PATCH_URN], "Operations": ops}


async def test_passwords_reach_the_backend_and_stay_out_of_the_state(aiohttp_client: ClientFactory) -> None:
    platform = PasswordPlatform()
    app = create_app(make_settings(), adapter=platform)
    client = await aiohttp_client(app, headers=AUTH)
    body = {"schemas": [USER_URN], "userName": "pw@example.org", "password": SECRET + "-1"}
    user = (await call(client, "POST", f"{BASE}/Users", body, expect=201)).json
    await call(client, "PATCH", f"{BASE}/Users/{user['id']}", _patch(password=SECRET + "-2"), expect=(200, 204))

    platform.lose_next_answer = True
    await call(client, "PATCH", f"{BASE}/Users/{user['id']}",
               _patch(password=SECRET + "-3", displayName="Lost"), expect=503)

    assert platform.passwords == [SECRET + "-1", SECRET + "-2", SECRET + "-3"]
    store = app[STORE_KEY]
    stored = await store.get("default", "User", user["id"])
    pending = await store.journal_pending("default", "User")
    assert stored is not None and pending, "the lost answer leaves a journal entry to settle"
    assert SECRET not in repr(stored) and SECRET not in repr(pending)
    assert "password" not in (await call(client, "GET", f"{BASE}/Users/{user['id']}", expect=200)).text
