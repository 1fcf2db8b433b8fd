"""Each legacy habit of the mock, switched on (the default) and off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from adapters.cleanmail.mock_state import MockQuirks
from tests.cleanmail.conftest import DOMAIN, MockClient

Factory = Callable[..., Awaitable[MockClient]]
MAILBOXES = "/api/v1/mailboxes"
A = f"a@{DOMAIN}"


async def _seed(mock: MockClient, count: int) -> None:
    for i in range(count):
        response = await mock.post(MAILBOXES, json={"address": f"user{i:03}@{DOMAIN}"})
        assert response.status == 201


async def test_paging_on_caps_the_page(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(max_page_size=3))
    await _seed(mock, 5)
    page = await (await mock.get(MAILBOXES, params={"offset": "2", "limit": "50"})).json()
    assert len(page["items"]) == 3 and page["limit"] == 3 and page["total"] == 5
    default = await (await mock.get(MAILBOXES)).json()
    assert default["offset"] == 0 and len(default["items"]) == 3


async def test_paging_off_returns_everything(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(paging=False, max_page_size=3))
    await _seed(mock, 5)
    page = await (await mock.get(MAILBOXES, params={"offset": "2", "limit": "1"})).json()
    assert len(page["items"]) == 5 and page["offset"] == 0 and page["total"] == 5


async def test_full_replace_put_clears_omitted_fields(mock_factory: Factory) -> None:
    mock = await mock_factory()
    await mock.post(
        MAILBOXES,
        json={"address": A, "first_name": "A", "last_name": "B", "status": "disabled", "policy": "no-report"},
    )
    body = await (await mock.put(f"{MAILBOXES}/{A}", json={"first_name": "Z"})).json()
    assert body["first_name"] == "Z" and body["last_name"] is None
    # The legacy trap: leaving out the status re-activates the mailbox.
    assert body["status"] == "active" and body["policy"] == "standard"


async def test_merge_put_keeps_omitted_fields(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(full_replace_put=False))
    await mock.post(MAILBOXES, json={"address": A, "first_name": "A", "last_name": "B", "status": "disabled"})
    body = await (await mock.put(f"{MAILBOXES}/{A}", json={"first_name": "Z"})).json()
    assert (body["first_name"], body["last_name"], body["status"]) == ("Z", "B", "disabled")


async def test_full_replace_put_on_lists_clears_members(mock_factory: Factory) -> None:
    for quirks, expected in ((MockQuirks(), []), (MockQuirks(full_replace_put=False), [A])):
        mock = await mock_factory(quirks)
        await mock.post(MAILBOXES, json={"address": A})
        await mock.post("/api/v1/lists", json={"address": f"l@{DOMAIN}", "members": [A]})
        body = await (await mock.put(f"/api/v1/lists/l@{DOMAIN}", json={"display_name": "L"})).json()
        assert body["members"] == expected and body["display_name"] == "L"


async def test_errors_as_200(mock_factory: Factory) -> None:
    mock = await mock_factory()
    await mock.post(MAILBOXES, json={"address": A})
    again = await mock.post(MAILBOXES, json={"address": A})
    assert again.status == 200
    assert await again.json() == {
        "status": "error",
        "code": "object_exists",
        "message": f"mailbox {A} already exists",
        "existing": A,
    }
    # Reads keep real statuses even with the quirk on.
    assert (await mock.get(f"/api/v1/lists/x@{DOMAIN}")).status == 404


async def test_errors_with_real_statuses(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(errors_as_200=False))
    await mock.post(MAILBOXES, json={"address": A})
    assert (await mock.post(MAILBOXES, json={"address": A})).status == 409
    assert (await mock.post(MAILBOXES, json={"address": "x@unknown.ch"})).status == 422
    assert (await mock.delete(f"{MAILBOXES}/nobody@{DOMAIN}")).status == 404
    assert (await mock.post(MAILBOXES, json={"address": 5})).status == 400


async def test_not_found_as_empty_object(mock_factory: Factory) -> None:
    mock = await mock_factory()
    response = await mock.get(f"{MAILBOXES}/nobody@{DOMAIN}")
    assert response.status == 200 and await response.json() == {}


async def test_not_found_as_404(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(not_found_as_empty=False))
    response = await mock.get(f"{MAILBOXES}/nobody@{DOMAIN}")
    assert response.status == 404 and (await response.json())["code"] == "not_found"


async def test_duplicates_rejected_case_insensitively(mock_factory: Factory) -> None:
    mock = await mock_factory()
    await mock.post(MAILBOXES, json={"address": A})
    again = await (await mock.post(MAILBOXES, json={"address": A.upper()})).json()
    assert again["code"] == "object_exists"


async def test_duplicates_silently_created(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(reject_duplicates=False))
    first = await (await mock.post(MAILBOXES, json={"address": A, "first_name": "One"})).json()
    second = await (await mock.post(MAILBOXES, json={"address": A.upper(), "first_name": "Two"})).json()
    assert second["id"] != first["id"]
    rows = await (await mock.get(MAILBOXES, params={"address": A})).json()
    assert [r["first_name"] for r in rows["items"]] == ["One", "Two"]
    # Reads by address see the first row, as a legacy UNIQUE-less table would.
    assert (await (await mock.get(f"{MAILBOXES}/{A}")).json())["id"] == first["id"]
    await mock.delete(f"{MAILBOXES}/{A}")
    assert (await (await mock.get(f"{MAILBOXES}/{A}")).json())["id"] == second["id"]


async def test_dedicated_rename_refuses_address_change_by_put(mock_factory: Factory) -> None:
    mock = await mock_factory()
    await mock.post(MAILBOXES, json={"address": A})
    refused = await (await mock.put(f"{MAILBOXES}/{A}", json={"address": f"b@{DOMAIN}"})).json()
    assert refused["code"] == "address_immutable"
    same = await mock.put(f"{MAILBOXES}/{A}", json={"address": A.upper(), "first_name": "A"})
    assert (await same.json())["first_name"] == "A"


async def test_put_may_rename_without_dedicated_rename(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(dedicated_rename=False))
    await mock.post(MAILBOXES, json={"address": A})
    moved = await (await mock.put(f"{MAILBOXES}/{A}", json={"address": f"b@{DOMAIN}"})).json()
    assert moved["address"] == f"b@{DOMAIN}"
    assert await (await mock.get(f"{MAILBOXES}/{A}")).json() == {}


async def test_domains_are_not_created_on_first_use(mock_factory: Factory) -> None:
    mock = await mock_factory()
    refused = await (await mock.post(MAILBOXES, json={"address": "x@new.ch"})).json()
    assert refused["code"] == "domain_unknown"


async def test_domains_auto_created_when_switched_on(mock_factory: Factory) -> None:
    mock = await mock_factory(MockQuirks(auto_create_domains=True))
    assert (await mock.post(MAILBOXES, json={"address": "x@new.ch"})).status == 201
    names = [d["name"] for d in (await (await mock.get("/api/v1/domains")).json())["items"]]
    assert "new.ch" in names


async def test_quirks_switch_at_run_time(mock_factory: Factory) -> None:
    mock = await mock_factory()
    changed = await mock.post("/__mock__/quirks", json={"not_found_as_empty": False})
    assert (await changed.json())["not_found_as_empty"] is False
    assert (await mock.get(f"{MAILBOXES}/nobody@{DOMAIN}")).status == 404
    bad = await mock.post("/__mock__/quirks", json={"paging": "yes"})
    assert bad.status == 400
    unknown = await mock.post("/__mock__/quirks", json={"telepathy": True})
    assert unknown.status == 400
