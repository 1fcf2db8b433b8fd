"""The mock Cleanmail API with its default (legacy) behaviour."""

from __future__ import annotations

from typing import Any

from tests.cleanmail.conftest import DOMAIN, MockClient

MAILBOXES = "/api/v1/mailboxes"
LISTS = "/api/v1/lists"


async def create(mock: MockClient, address: str, **fields: Any) -> dict[str, Any]:
    response = await mock.post(MAILBOXES, json={"address": address, **fields})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_api_key_is_required(mock: MockClient) -> None:
    missing = await mock.get(MAILBOXES, headers={"X-API-Key": ""})
    wrong = await mock.get(MAILBOXES, headers={"X-API-Key": "nope"})
    assert missing.status == wrong.status == 401
    assert (await wrong.json())["status"] == "error"
    health = await mock.get("/healthz", headers={"X-API-Key": ""})
    assert health.status == 200


async def test_domains_list_and_create(mock: MockClient) -> None:
    created = await mock.post("/api/v1/domains", json={"name": "Beispiel.CH"})
    assert created.status == 201
    listing = await (await mock.get("/api/v1/domains")).json()
    assert [d["name"] for d in listing["items"]] == ["beispiel.ch", DOMAIN]
    assert listing["total"] == 2


async def test_mailbox_create_read_and_lowercasing(mock: MockClient) -> None:
    body = await create(mock, "Anna.Muster@Example.CH", first_name="Anna", last_name="Muster")
    assert body["address"] == "anna.muster@example.ch"
    assert body["status"] == "active"
    assert isinstance(body["id"], int)
    assert "externalId" not in body and "external_id" not in body
    again = await (await mock.get(f"{MAILBOXES}/ANNA.MUSTER@example.ch")).json()
    assert again == body


async def test_mailbox_rejects_bad_values(mock: MockClient) -> None:
    bad_address = await (await mock.post(MAILBOXES, json={"address": "no-at-sign"})).json()
    assert bad_address["code"] == "invalid_value"
    bad_status = await (await mock.post(MAILBOXES, json={"address": f"a@{DOMAIN}", "status": "on"})).json()
    assert bad_status["code"] == "invalid_value" and bad_status["field"] == "status"
    not_json = await mock.post(MAILBOXES, data=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status == 400


async def test_unknown_domain_is_refused(mock: MockClient) -> None:
    reply = await (await mock.post(MAILBOXES, json={"address": "x@unknown.ch"})).json()
    assert reply["code"] == "domain_unknown"
    assert "unknown.ch" in reply["message"]


async def test_rename_moves_list_memberships_and_aliases(mock: MockClient) -> None:
    await create(mock, f"old@{DOMAIN}")
    await mock.post(LISTS, json={"address": f"team@{DOMAIN}", "members": [f"old@{DOMAIN}"]})
    await mock.post("/api/v1/aliases", json={"address": f"alt@{DOMAIN}", "target": f"old@{DOMAIN}"})
    renamed = await mock.post(f"{MAILBOXES}/old@{DOMAIN}/rename", json={"new_address": f"New@{DOMAIN}"})
    assert (await renamed.json())["address"] == f"new@{DOMAIN}"
    team = await (await mock.get(f"{LISTS}/team@{DOMAIN}")).json()
    assert team["members"] == [f"new@{DOMAIN}"]
    aliases = await (await mock.get("/api/v1/aliases", params={"target": f"new@{DOMAIN}"})).json()
    assert [a["address"] for a in aliases["items"]] == [f"alt@{DOMAIN}"]


async def test_rename_onto_a_taken_address_fails(mock: MockClient) -> None:
    await create(mock, f"a@{DOMAIN}")
    await create(mock, f"b@{DOMAIN}")
    reply = await (await mock.post(f"{MAILBOXES}/a@{DOMAIN}/rename", json={"new_address": f"B@{DOMAIN}"})).json()
    assert reply["code"] == "object_exists" and reply["existing"] == f"b@{DOMAIN}"


async def test_delete_mailbox_removes_it_from_every_list(mock: MockClient) -> None:
    for name in ("a", "b"):
        await create(mock, f"{name}@{DOMAIN}")
    members = [f"a@{DOMAIN}", f"b@{DOMAIN}"]
    for name in ("l1", "l2"):
        await mock.post(LISTS, json={"address": f"{name}@{DOMAIN}", "members": members})
    deleted = await mock.delete(f"{MAILBOXES}/a@{DOMAIN}")
    assert (await deleted.json())["status"] == "ok"
    for name in ("l1", "l2"):
        assert (await (await mock.get(f"{LISTS}/{name}@{DOMAIN}")).json())["members"] == [f"b@{DOMAIN}"]


async def test_list_members_must_exist_and_edits_are_set_like(mock: MockClient) -> None:
    await create(mock, f"a@{DOMAIN}")
    unknown = await (await mock.post(LISTS, json={"address": f"team@{DOMAIN}", "members": [f"ghost@{DOMAIN}"]})).json()
    assert unknown["code"] == "member_unknown" and unknown["missing"] == [f"ghost@{DOMAIN}"]
    created = await mock.post(LISTS, json={"address": f"team@{DOMAIN}", "display_name": "Team"})
    assert created.status == 201
    edit = f"{LISTS}/team@{DOMAIN}/members"
    for _ in range(2):
        body = await (await mock.post(edit, json={"add": [f"A@{DOMAIN}"]})).json()
        assert body["members"] == [f"a@{DOMAIN}"]
    for _ in range(2):
        body = await (await mock.post(edit, json={"remove": [f"a@{DOMAIN}", f"ghost@{DOMAIN}"]})).json()
        assert body["members"] == []


async def test_lists_filter_by_display_name_case_insensitively(mock: MockClient) -> None:
    await mock.post(LISTS, json={"address": f"sales@{DOMAIN}", "display_name": "Sales"})
    await mock.post(LISTS, json={"address": f"ops@{DOMAIN}", "display_name": "Ops"})
    found = await (await mock.get(LISTS, params={"display_name": "SALES"})).json()
    assert [d["address"] for d in found["items"]] == [f"sales@{DOMAIN}"]
    missing = await mock.get(f"{LISTS}/nothing@{DOMAIN}")
    assert missing.status == 404


async def test_mailbox_address_list_and_alias_share_one_namespace(mock: MockClient) -> None:
    await create(mock, f"a@{DOMAIN}")
    await mock.post(LISTS, json={"address": f"team@{DOMAIN}"})
    clash = await (await mock.post(MAILBOXES, json={"address": f"team@{DOMAIN}"})).json()
    assert clash["code"] == "address_in_use" and clash["owner"] == "list"
    alias = await (await mock.post("/api/v1/aliases", json={"address": f"a@{DOMAIN}", "target": f"a@{DOMAIN}"})).json()
    assert alias["code"] == "address_in_use"


async def test_listing_pages_are_sorted_by_address(mock: MockClient) -> None:
    for name in ("d", "b", "a", "c", "e"):
        await create(mock, f"{name}@{DOMAIN}", status="disabled" if name in "bd" else "active")
    page = await (await mock.get(MAILBOXES, params={"offset": "1", "limit": "2"})).json()
    assert [m["address"] for m in page["items"]] == [f"b@{DOMAIN}", f"c@{DOMAIN}"]
    assert page["total"] == 5 and page["offset"] == 1 and page["limit"] == 2
    disabled = await (await mock.get(MAILBOXES, params={"status": "disabled"})).json()
    assert [m["address"] for m in disabled["items"]] == [f"b@{DOMAIN}", f"d@{DOMAIN}"]
    by_address = await (await mock.get(MAILBOXES, params={"address": f"E@{DOMAIN}"})).json()
    assert by_address["total"] == 1
    bad = await mock.get(MAILBOXES, params={"limit": "many"})
    assert bad.status == 400


async def test_alias_delete(mock: MockClient) -> None:
    await create(mock, f"a@{DOMAIN}")
    alias = await (
        await mock.post("/api/v1/aliases", json={"address": f"alt@{DOMAIN}", "target": f"a@{DOMAIN}"})
    ).json()
    assert (await mock.delete(f"/api/v1/aliases/{alias['id']}")).status == 200
    again = await (await mock.delete(f"/api/v1/aliases/{alias['id']}")).json()
    assert again["code"] == "not_found"
