"""Helpers shared by the Entra compatibility suite and the HTTP behaviour tests.

Requests are sent as raw text whenever the reference gives a body verbatim, so that the
gateway sees exactly what Entra puts on the wire (key order, whitespace, ``null``s, odd
capitalisation) rather than a re-serialised approximation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

from aiohttp.test_utils import TestClient

from tests.conftest import BASE, SCIM_JSON

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH_URN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
SCIM_CT = "application/scim+json"

# The reference allows 200 with the resource or 204 for a PATCH (E8, Q24); the gateway always answers
# 200 with the resource (strict RFC clients read it), for Users and Groups alike.
PATCH_OK = 200

Client = TestClient[Any, Any]


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str
    content_type: str
    body: Any

    @property
    def json(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), f"expected a JSON object, got {self.text[:500]!r}"
        return self.body


def _parse(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


async def call(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    expect: int | Iterable[int] | None = None,
) -> Reply:
    """Send one request; check the status (when given) and the SCIM media type of any body."""
    send_headers: dict[str, str] = {}
    data: str | bytes | None = None
    if raw is not None:
        data = raw
        send_headers.update(SCIM_JSON)
    elif body is not None:
        data = json.dumps(body)
        send_headers.update(SCIM_JSON)
    if headers:
        send_headers.update(headers)
    async with client.request(method, path, data=data, headers=send_headers) as resp:
        text = await resp.text(errors="replace")
        reply = Reply(resp.status, resp.headers.copy(), text, resp.content_type, _parse(text))
    if expect is not None:
        wanted = {expect} if isinstance(expect, int) else set(expect)
        assert reply.status in wanted, (
            f"{method} {path}: expected {sorted(wanted)}, got {reply.status}: {text[:1500]}"
        )
    if path.startswith(BASE) and reply.status not in (204, 304):
        assert reply.content_type == SCIM_CT, (
            f"{method} {path} -> {reply.status} with Content-Type {reply.content_type!r}, not {SCIM_CT}"
        )
    return reply


async def get(client: Client, path: str) -> dict[str, Any]:
    return (await call(client, "GET", path, expect=200)).json


async def create_user(client: Client, body: Mapping[str, Any] | str) -> dict[str, Any]:
    reply = await _post(client, f"{BASE}/Users", body)
    user = reply.json
    assert isinstance(user.get("id"), str) and user["id"], f"create returned no id: {user}"
    return user


async def create_group(client: Client, body: Mapping[str, Any] | str) -> dict[str, Any]:
    reply = await _post(client, f"{BASE}/Groups", body)
    group = reply.json
    assert isinstance(group.get("id"), str) and group["id"], f"create returned no id: {group}"
    return group


async def _post(client: Client, path: str, body: Mapping[str, Any] | str) -> Reply:
    if isinstance(body, str):
        return await call(client, "POST", path, raw=body, expect=201)
    return await call(client, "POST", path, dict(body), expect=201)


async def get_user(client: Client, uid: str) -> dict[str, Any]:
    user = await get(client, f"{BASE}/Users/{uid}")
    assert user["id"] == uid
    return user


async def get_group(client: Client, gid: str) -> dict[str, Any]:
    group = await get(client, f"{BASE}/Groups/{gid}")
    assert group["id"] == gid
    return group


async def patch_user(
    client: Client, uid: str, body: Mapping[str, Any] | str, *, expect: int | Iterable[int] = PATCH_OK
) -> dict[str, Any]:
    """PATCH a user, then return the user as a fresh GET sees it.

    A 200 reply must carry the same resource the GET returns, because Entra and the validator
    read attribute values from either.
    """
    path = f"{BASE}/Users/{uid}"
    if isinstance(body, str):
        reply = await call(client, "PATCH", path, raw=body, expect=expect)
    else:
        reply = await call(client, "PATCH", path, dict(body), expect=expect)
    after = await get_user(client, uid)
    if reply.status == 200:
        returned = reply.json
        assert returned["id"] == uid
        assert strip_meta(returned) == strip_meta(after), "PATCH reply differs from the resource read back"
    return after


async def patch_group(
    client: Client, gid: str, body: Mapping[str, Any] | str, *, expect: int | Iterable[int] = PATCH_OK
) -> dict[str, Any]:
    path = f"{BASE}/Groups/{gid}"
    if isinstance(body, str):
        reply = await call(client, "PATCH", path, raw=body, expect=expect)
    else:
        reply = await call(client, "PATCH", path, dict(body), expect=expect)
    after = await get_group(client, gid)
    if reply.status == 200:
        returned = reply.json
        assert returned["id"] == gid
        assert strip_meta(returned) == strip_meta(after), "PATCH reply differs from the group read back"
    return after


def strip_meta(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def filter_path(resource: str, expr: str, **params: str) -> str:
    """A list URL encoded the way Entra encodes it: spaces as ``+``, quotes as ``%22``."""
    query = {**params, "filter": expr}
    return f"{BASE}/{resource}?{urlencode(query, quote_via=quote_plus)}"


async def search(client: Client, resource: str, expr: str, **params: str) -> dict[str, Any]:
    body = await get(client, filter_path(resource, expr, **params))
    assert_list_response(body)
    return body


async def find_one(client: Client, resource: str, expr: str, **params: str) -> dict[str, Any]:
    body = await search(client, resource, expr, **params)
    assert body["totalResults"] == 1, f"filter {expr!r} matched {body['totalResults']}: {body}"
    assert len(body["Resources"]) == 1
    found: dict[str, Any] = body["Resources"][0]
    return found


def assert_list_response(body: Mapping[str, Any]) -> None:
    assert body["schemas"] == [LIST_URN]
    assert isinstance(body["totalResults"], int)
    if body["totalResults"] > 0:
        assert isinstance(body.get("Resources"), list), body


def assert_empty_list(body: Mapping[str, Any]) -> None:
    """E5: the exact shape Entra's Test Connection and the validator accept for no match."""
    assert body["schemas"] == [LIST_URN]
    assert body["totalResults"] == 0
    assert body["Resources"] == []
    assert body["startIndex"] == 1
    assert isinstance(body["itemsPerPage"], int)


def assert_error(reply: Reply, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert reply.status == status, f"expected {status}, got {reply.status}: {reply.text[:1500]}"
    assert reply.content_type == SCIM_CT, f"error served as {reply.content_type!r}"
    err = reply.json
    assert err["schemas"] == [ERROR_URN], err
    assert err["status"] == str(status), f"status must be the string {str(status)!r}: {err}"
    if scim_type is not None:
        assert err.get("scimType") == scim_type, f"expected scimType {scim_type!r}: {err}"
    assert isinstance(err.get("detail"), str) and err["detail"].strip(), f"error without a detail: {err}"
    return err


def patch_body(*ops: Mapping[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_URN], "Operations": [dict(op) for op in ops]}


def minimal_user(user_name: str, **attrs: Any) -> dict[str, Any]:
    return {"schemas": [USER_URN], "userName": user_name, "active": True, **attrs}


def minimal_group(display_name: str, **attrs: Any) -> dict[str, Any]:
    return {"schemas": [GROUP_URN], "displayName": display_name, **attrs}


def ent(resource: Mapping[str, Any]) -> dict[str, Any]:
    value = resource.get(ENTERPRISE, {})
    assert isinstance(value, dict), f"enterprise extension must be an object: {value!r}"
    return value


def manager_of(user: Mapping[str, Any]) -> Any:
    """The manager as Entra parses it: only under the enterprise URN, as a complex object."""
    assert "manager" not in user, f"manager must live under {ENTERPRISE}, not at the top level: {user}"
    manager = ent(user).get("manager")
    if manager is not None:
        assert isinstance(manager, dict), f"manager must be an object, not {manager!r}"
    return manager


def typed(resource: Mapping[str, Any], attr: str, type_: str) -> list[dict[str, Any]]:
    return [v for v in resource.get(attr) or [] if v.get("type") == type_]


def work_email(user: Mapping[str, Any]) -> str | None:
    works = typed(user, "emails", "work")
    assert len(works) <= 1, f"more than one work email: {user.get('emails')}"
    return works[0].get("value") if works else None


def member_ids(group: Mapping[str, Any]) -> list[str]:
    """Member ids in order, so a duplicate member shows up as a failure."""
    return sorted(m["value"] for m in group.get("members") or [])


def assert_no_nulls(obj: Any, where: str = "$") -> None:
    if obj is None:
        raise AssertionError(f"null value at {where}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert_no_nulls(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            assert_no_nulls(v, f"{where}[{i}]")


# E24: the SCIM Validator's full create body, verbatim.
VALIDATOR_USER = """{"userName":"julien.vonrueden@ondricka.us","active":true,"displayName":"NDSQQTECVAAC","title":"CJSGUNOAAMMQ",
 "emails":[{"type":"work","value":"thaddeus@hammes.info","primary":true}],"preferredLanguage":"hi",
 "name":{"givenName":"Elfrieda","familyName":"Urban","formatted":"Myah","middleName":"Cindy",
         "honorificPrefix":"Minerva","honorificSuffix":"Micaela"},
 "addresses":[{"type":"work","formatted":"ZQEHBLETAAQE","streetAddress":"25928 Katlyn Row","locality":"YRAKBQCGOHZF",
               "region":"XCCVLAIDMQYR","postalCode":"cx47 4mz","primary":true,"country":"Sierra Leone"}],
 "phoneNumbers":[{"type":"work","value":"10-040-1308","primary":true},{"type":"mobile","value":"10-040-1308"},
                 {"type":"fax","value":"10-040-1308"}],
 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"OXYYEGWVLTGW","department":"ZYWTBPDFHIIP",
   "costCenter":"ASHTVSKANCGL","organization":"DPQRRHJMBXZE","division":"WXNFEJQDRAVI","manager":{"value":"XYMKVVRYDIOO"}},
 "roles":[{"primary":"True","display":"MRONYWGFFHXQ","value":"WDEIISGWWQBE","type":"XVTUOHMYUFRL"}],
 "userType":"GZILLRZCFPNC","nickName":"FOGSIQTKHIPG","locale":"RJWNTUNNOHNZ","timezone":"America/Guayaquil",
 "profileUrl":"BAPNQLJSRQGD",
 "schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]}"""  # noqa: E501

VALIDATOR_USER_NAME = "julien.vonrueden@ondricka.us"


def assert_validator_user(user: Mapping[str, Any]) -> None:
    """Every attribute of the E24 body reads back exactly as sent (Q21)."""
    assert user["userName"] == "julien.vonrueden@ondricka.us"
    assert user["active"] is True
    assert user["displayName"] == "NDSQQTECVAAC"
    assert user["title"] == "CJSGUNOAAMMQ"
    assert user["emails"] == [{"type": "work", "value": "thaddeus@hammes.info", "primary": True}]
    assert user["preferredLanguage"] == "hi"
    assert user["name"] == {
        "givenName": "Elfrieda", "familyName": "Urban", "formatted": "Myah", "middleName": "Cindy",
        "honorificPrefix": "Minerva", "honorificSuffix": "Micaela",
    }
    assert user["addresses"] == [{
        "type": "work", "formatted": "ZQEHBLETAAQE", "streetAddress": "25928 Katlyn Row",
        "locality": "YRAKBQCGOHZF", "region": "XCCVLAIDMQYR", "postalCode": "cx47 4mz", "primary": True,
        "country": "Sierra Leone",
    }]
    assert user["phoneNumbers"] == [
        {"type": "work", "value": "10-040-1308", "primary": True},
        {"type": "mobile", "value": "10-040-1308"},
        {"type": "fax", "value": "10-040-1308"},
    ]
    extension = dict(ent(user))
    # The server may decorate the manager with $ref/displayName; Entra compares only the value.
    assert manager_of(user)["value"] == "XYMKVVRYDIOO"
    extension.pop("manager")
    assert extension == {
        "employeeNumber": "OXYYEGWVLTGW", "department": "ZYWTBPDFHIIP", "costCenter": "ASHTVSKANCGL",
        "organization": "DPQRRHJMBXZE", "division": "WXNFEJQDRAVI",
    }
    assert user["userType"] == "GZILLRZCFPNC"
    assert user["nickName"] == "FOGSIQTKHIPG"
    assert user["locale"] == "RJWNTUNNOHNZ"
    assert user["timezone"] == "America/Guayaquil"
    assert user["profileUrl"] == "BAPNQLJSRQGD"
    assert USER_URN in user["schemas"]
    assert ENTERPRISE in user["schemas"]
    # Roles are optional for a mail platform, but if kept the string "True" must come back as a boolean.
    for role in user.get("roles") or []:
        assert role.get("primary") in (True, None), role


def verbose_replace(manager_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validator's "Replace Attributes Verbose" PATCH over the E24 attributes (36 operations).

    Returns the PatchOp body and the values each attribute must read back with.
    """
    new: dict[str, Any] = {
        "userName": "cleo.kuhn@schimmel.biz",
        "active": True,
        "displayName": "QWPMSBXHNAKE",
        "title": "LJTFYZXUEPCN",
        'emails[type eq "work"].value': "reyes@bergstrom.name",
        'emails[type eq "work"].primary': True,
        "preferredLanguage": "fr",
        "name.givenName": "Ottilie",
        "name.familyName": "Runolfsdottir",
        "name.formatted": "Brennan",
        "name.middleName": "Aaliyah",
        "name.honorificPrefix": "Kamren",
        "name.honorificSuffix": "Lavada",
        'addresses[type eq "work"].formatted': "MXVXKJUBHTSU",
        'addresses[type eq "work"].streetAddress': "1403 Jenkins Walk",
        'addresses[type eq "work"].locality': "GYTQOPVNRIZL",
        'addresses[type eq "work"].region': "WJPRVKZTQDLO",
        'addresses[type eq "work"].postalCode': "rh2 6bq",
        'addresses[type eq "work"].country': "Bhutan",
        'addresses[type eq "work"].primary': True,
        'phoneNumbers[type eq "work"].value': "51-752-0987",
        'phoneNumbers[type eq "work"].primary': True,
        'phoneNumbers[type eq "mobile"].value': "51-752-0988",
        'phoneNumbers[type eq "fax"].value': "51-752-0989",
        f"{ENTERPRISE}:employeeNumber": "HWZXGVBNQUUE",
        f"{ENTERPRISE}:department": "KFAAXRBFDWIO",
        f"{ENTERPRISE}:costCenter": "PZEBUTMRKDVB",
        f"{ENTERPRISE}:organization": "NIUQDLFVPYGS",
        f"{ENTERPRISE}:division": "EZMYBOXWTDJR",
        f"{ENTERPRISE}:manager": manager_id,
        "userType": "TYVQJSEHNOMW",
        "nickName": "BGFRUKXLJZCA",
        "locale": "EVWRKPHQNXCS",
        "timezone": "Asia/Kolkata",
        "profileUrl": "JUCNXFTVBWYE",
        "externalId": "4f2e7b3c-9d1a-4c55-8e0f-1b2a3c4d5e6f",
    }
    ops = [{"op": "replace", "path": path, "value": value} for path, value in new.items()]
    assert len(ops) == 36
    return patch_body(*ops), new


def assert_verbose_applied(user: Mapping[str, Any], manager_id: str) -> None:
    _, new = verbose_replace(manager_id)
    assert user["userName"] == new["userName"]
    assert user["active"] is True
    assert user["displayName"] == new["displayName"]
    assert user["title"] == new["title"]
    assert typed(user, "emails", "work") == [{"type": "work", "value": "reyes@bergstrom.name", "primary": True}]
    assert user["preferredLanguage"] == "fr"
    assert user["name"] == {
        "givenName": "Ottilie", "familyName": "Runolfsdottir", "formatted": "Brennan", "middleName": "Aaliyah",
        "honorificPrefix": "Kamren", "honorificSuffix": "Lavada",
    }
    assert typed(user, "addresses", "work") == [{
        "type": "work", "formatted": "MXVXKJUBHTSU", "streetAddress": "1403 Jenkins Walk",
        "locality": "GYTQOPVNRIZL", "region": "WJPRVKZTQDLO", "postalCode": "rh2 6bq", "country": "Bhutan",
        "primary": True,
    }]
    assert typed(user, "phoneNumbers", "work") == [{"type": "work", "value": "51-752-0987", "primary": True}]
    assert [p["value"] for p in typed(user, "phoneNumbers", "mobile")] == ["51-752-0988"]
    assert [p["value"] for p in typed(user, "phoneNumbers", "fax")] == ["51-752-0989"]
    extension = dict(ent(user))
    assert manager_of(user)["value"] == manager_id
    extension.pop("manager")
    assert extension == {
        "employeeNumber": "HWZXGVBNQUUE", "department": "KFAAXRBFDWIO", "costCenter": "PZEBUTMRKDVB",
        "organization": "NIUQDLFVPYGS", "division": "EZMYBOXWTDJR",
    }
    assert user["userType"] == "TYVQJSEHNOMW"
    assert user["nickName"] == "BGFRUKXLJZCA"
    assert user["locale"] == "EVWRKPHQNXCS"
    assert user["timezone"] == "Asia/Kolkata"
    assert user["profileUrl"] == "JUCNXFTVBWYE"
    assert user["externalId"] == "4f2e7b3c-9d1a-4c55-8e0f-1b2a3c4d5e6f"
