"""The Modoboa fixture serves a real Modoboa API: token auth, accounts, aliases, reset and both throttle modes."""

from __future__ import annotations

import dataclasses

from tests.realservers.modoboa import ModoboaServer

PASSWORD = "Xk9-pRt7-Lm2q"


def test_requests_need_the_token(modoboa: ModoboaServer) -> None:
    assert modoboa.api("GET", "/api/v2/accounts/")[0] == 200
    stranger = dataclasses.replace(modoboa, token="0" * 40, process=None)
    status, body = stranger.api("GET", "/api/v2/accounts/")
    assert status == 401
    assert body == {"detail": "Invalid token."}


def test_account_lifecycle(modoboa: ModoboaServer) -> None:
    domain_pk = modoboa.create_domain("example.com")
    created = modoboa.expect(
        201,
        "POST",
        "/api/v2/accounts/",
        {"username": "Alice.Smith@Example.com", "password": PASSWORD, "role": "SimpleUsers", "first_name": "Alice"},
    )
    pk = created["pk"]
    assert created["username"] == "alice.smith@example.com"

    fetched = modoboa.expect(200, "GET", f"/api/v2/accounts/{pk}/")
    assert fetched["mailbox"]["full_address"] == "alice.smith@example.com"
    listed = modoboa.expect(200, "GET", f"/api/v2/accounts/?domain={domain_pk}")
    assert [account["pk"] for account in listed["results"]] == [pk]

    patched = modoboa.expect(200, "PATCH", f"/api/v2/accounts/{pk}/", {"last_name": "Smith", "is_active": False})
    assert (patched["first_name"], patched["last_name"], patched["is_active"]) == ("Alice", "Smith", False)

    assert modoboa.api("DELETE", f"/api/v2/accounts/{pk}/") == (204, None)
    assert modoboa.api("GET", f"/api/v2/accounts/{pk}/")[0] == 404


def test_alias_lifecycle(modoboa: ModoboaServer) -> None:
    modoboa.create_domain("example.com")
    for user in ("ann", "bob"):
        body = {"username": f"{user}@example.com", "password": PASSWORD, "role": "SimpleUsers"}
        modoboa.expect(201, "POST", "/api/v2/accounts/", body)
    created = modoboa.expect(
        201, "POST", "/api/v2/aliases/", {"address": "team@example.com", "recipients": ["bob@example.com"]}
    )
    pk = created["pk"]
    assert created["enabled"] is True

    recipients = ["bob@example.com", "ann@example.com"]
    patched = modoboa.expect(200, "PATCH", f"/api/v2/aliases/{pk}/", {"recipients": recipients, "enabled": False})
    assert (patched["recipients"], patched["enabled"]) == (sorted(recipients), False)
    listed = modoboa.expect(200, "GET", "/api/v2/aliases/?domain=example.com")
    assert [alias["address"] for alias in listed["results"]] == ["team@example.com"]

    assert modoboa.api("DELETE", f"/api/v2/aliases/{pk}/") == (204, None)
    assert modoboa.api("GET", f"/api/v2/aliases/{pk}/")[0] == 404


def test_reset_leaves_only_the_superuser(modoboa: ModoboaServer) -> None:
    modoboa.create_domain("example.com")
    body = {"username": "carl@example.com", "password": PASSWORD, "role": "SimpleUsers"}
    modoboa.expect(201, "POST", "/api/v2/accounts/", body)
    modoboa.expect(201, "POST", "/api/v2/aliases/", {"address": "x@example.com", "recipients": ["carl@example.com"]})

    modoboa.reset()

    assert [account["username"] for account in modoboa.list_all("/api/v2/accounts/")] == ["admin"]
    assert modoboa.list_all("/api/v2/domains/") == []
    assert modoboa.list_all("/api/v2/aliases/") == []


def test_throttle_modes(modoboa: ModoboaServer, modoboa_default_throttle: ModoboaServer) -> None:
    # Invalid writes still count: a burst of them shows the rate without creating anything.
    burst = 8
    assert [modoboa.api("POST", "/api/v2/aliases/", {})[0] for _ in range(burst)] == [400] * burst

    answers = [modoboa_default_throttle.request("POST", "/api/v2/aliases/", {}) for _ in range(burst)]
    statuses = [answer.status for answer in answers]
    assert 429 in statuses, statuses
    throttled = answers[statuses.index(429)]
    assert throttled.headers["Retry-After"].isdigit()
    assert throttled.body["detail"].startswith("Request was throttled.")
