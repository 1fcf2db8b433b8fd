"""Entra's hot-path requests, defined once and rendered for both load generators.

Each scenario turns a request number ``n`` (0, 1, 2, … within one run) into one HTTP
request. ``python_request`` is used by the aiohttp load generator and by pre-flight checks;
``lua`` renders the same formula as a wrk script. Bodies follow Microsoft's documented
Entra requests (reference/entra-scim.md E2, E4/E5, E8, E10 "without feature flag", E19).

Every write is a real change: POST userNames are unique per run (``tag``), PATCH values
carry ``n``, ``patch_active`` alternates "False"/"True" over a pool of users that are all
active when the run starts, and ``group_add`` adds (group, user) pairs that are new within
the run (fresh groups per run).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# Names of the hot-path scenarios, in report order.
HOT_PATHS = ("filter_hit", "filter_miss", "post_user", "patch_replace", "patch_active", "group_add")
TITLES = {
    "filter_hit": 'GET /Users?filter=userName eq "…" (hit)',
    "filter_miss": 'GET /Users?filter=userName eq "…" (miss)',
    "post_user": "POST /Users",
    "patch_replace": "PATCH /Users replace (E8)",
    "patch_active": 'PATCH /Users active "False"/"True"',
    "group_add": "PATCH /Groups add member",
}


def user_body(user_name: str, external_id: str) -> dict[str, object]:
    """Entra's create body (E2) for one user."""
    return {
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
    }


MS_GROUP_URN = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def group_body(display_name: str, external_id: str, microsoft_urn: bool = True) -> dict[str, object]:
    """Entra's create body (E15): no members, with Microsoft's non-standard schema URI (scim2-server
    refuses that URI with a 400, so it is seeded without it)."""
    return {
        "schemas": [GROUP_URN, MS_GROUP_URN] if microsoft_urn else [GROUP_URN],
        "externalId": external_id,
        "displayName": display_name,
        "meta": {"resourceType": "Group"},
    }


def patch_replace_body(value: str) -> dict[str, object]:
    """E8: multi-valued and complex replace."""
    return {"schemas": [PATCH_URN], "Operations": [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": f"{value}@example.com"},
        {"op": "Replace", "path": "name.familyName", "value": value},
    ]}


def patch_active_body(active: bool) -> dict[str, object]:
    """E10 as the default engine sends it: a string, capitalised."""
    return {"schemas": [PATCH_URN], "Operations": [
        {"op": "Replace", "path": "active", "value": "True" if active else "False"}]}


def member_add_body(user_ids: Sequence[str]) -> dict[str, object]:
    """E19: members by our id, with the ``"$ref": null`` Entra sends."""
    return {"schemas": [PATCH_URN], "Operations": [
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": u} for u in user_ids]}]}


def member_remove_body(user_ids: Sequence[str]) -> dict[str, object]:
    """E20, default engine."""
    return {"schemas": [PATCH_URN], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": u} for u in user_ids]}]}


def filter_path(base: str, kind: str, attr: str, value: str, extra: str = "") -> str:
    """Entra's encoding: ``+`` for spaces, the value quoted and percent-encoded."""
    return f"{base}/{kind}?{extra}filter={attr}+eq+%22{quote(value, safe='')}%22"


@dataclass
class Target:
    """What a run needs to know about the server and its seeded data."""

    base: str  # "/scim/v2" (gateway, bare) or "/v2" (scim2-server)
    token: str
    hit_name_fmt: str = "bench.user{}@example.com"  # userName of seeded user i
    hit_count: int = 1  # users 0 … hit_count-1 exist
    user_ids: list[str] = field(default_factory=list)  # for patch_replace and group_add members
    active_ids: list[str] = field(default_factory=list)  # all active at the start of the run
    group_ids: list[str] = field(default_factory=list)  # fresh (empty) groups
    tag: str = "r0"  # unique per run: makes POSTed userNames and PATCHed values new
    api_key: str = ""  # set for the Cleanmail mock: sent as X-API-Key instead of a bearer token

    def headers(self) -> dict[str, str]:
        auth = {"X-API-Key": self.api_key} if self.api_key else {"Authorization": f"Bearer {self.token}"}
        return {**auth, "Content-Type": "application/scim+json"}


Request = tuple[str, str, bytes | None]


def _dumps(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def python_request(scenario: str, t: Target, seed: int = 42) -> Callable[[int], Request]:
    """The request function of a scenario for the Python load generator."""
    rnd = random.Random(seed)
    if scenario == "filter_hit":
        return lambda n: ("GET", filter_path(t.base, "Users", "userName",
                                             t.hit_name_fmt.format(rnd.randrange(t.hit_count))), None)
    if scenario == "filter_miss":
        return lambda n: ("GET", filter_path(t.base, "Users", "userName", f"{n:08x}-{t.tag}-0000-miss"), None)
    if scenario == "post_user":
        return lambda n: ("POST", f"{t.base}/Users",
                          _dumps(user_body(f"{t.tag}-{n}@example.com", f"{t.tag}-{n}")))
    if scenario == "backend_get":  # the Cleanmail mock's own read of one mailbox
        return lambda n: ("GET", f"{t.base}/mailboxes/{t.hit_name_fmt.format(rnd.randrange(t.hit_count))}", None)
    if scenario == "patch_replace":
        return lambda n: ("PATCH", f"{t.base}/Users/{t.user_ids[n % len(t.user_ids)]}",
                          _dumps(patch_replace_body(f"{t.tag}-{n}")))
    if scenario == "patch_active":
        return lambda n: ("PATCH", f"{t.base}/Users/{t.active_ids[n % len(t.active_ids)]}",
                          _dumps(patch_active_body((n // len(t.active_ids)) % 2 == 1)))
    if scenario == "group_add":
        def group_add(n: int) -> Request:
            groups = len(t.group_ids)
            user = t.user_ids[(n // groups) % len(t.user_ids)]
            return "PATCH", f"{t.base}/Groups/{t.group_ids[n % groups]}", _dumps(member_add_body([user]))
        return group_add
    raise ValueError(f"unknown scenario {scenario!r}")


# --- wrk (Lua) rendering ------------------------------------------------------------------

def _lua_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for these values


def _lua_list(values: Sequence[str]) -> str:
    return "{" + ",".join(_lua_str(v) for v in values) + "}"


def _lua_json(body: object, holes: dict[str, str]) -> str:
    """A Lua expression building ``body`` as JSON text, with placeholder strings replaced by Lua
    expressions (``holes``: placeholder → Lua expression)."""
    text = json.dumps(body, separators=(",", ":"))
    parts: list[str] = []
    rest = text
    while True:
        hits = [(rest.find(p), p) for p in holes if rest.find(p) >= 0]
        if not hits:
            parts.append(_lua_str(rest))
            break
        pos, placeholder = min(hits)
        parts.append(_lua_str(rest[:pos]))
        parts.append(f"({holes[placeholder]})")
        rest = rest[pos + len(placeholder):]
    return " .. ".join(p for p in parts if p != '""')


LUA_REPORT = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,' ..
    '"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


def lua(scenario: str, t: Target, seed: int = 42) -> str:
    """A wrk script (one thread) issuing the same requests as ``python_request``."""
    head = [
        f"math.randomseed({seed})",
        "local n = -1",
        f"local base = {_lua_str(t.base)}",
        f"local tag = {_lua_str(t.tag)}",
    ]
    head += [f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in t.headers().items()]
    if scenario == "filter_hit":
        before, _, after = t.hit_name_fmt.partition("{}")
        head += [
            f"local pre = base .. {_lua_str('/Users?filter=userName+eq+%22' + quote(before, safe=''))}",
            f"local post = {_lua_str(quote(after, safe='') + '%22')}",
            f"local count = {t.hit_count}",
            "request = function()\n  n = n + 1\n"
            '  return wrk.format("GET", pre .. tostring(math.random(0, count - 1)) .. post)\nend',
        ]
    elif scenario == "backend_get":
        before, _, after = t.hit_name_fmt.partition("{}")
        head += [
            f"local pre = base .. {_lua_str('/mailboxes/' + before)}",
            f"local post = {_lua_str(after)}",
            f"local count = {t.hit_count}",
            "request = function()\n  n = n + 1\n"
            '  return wrk.format("GET", pre .. tostring(math.random(0, count - 1)) .. post)\nend',
        ]
    elif scenario == "filter_miss":
        head += [
            "request = function()\n  n = n + 1\n"
            '  return wrk.format("GET", base .. "/Users?filter=userName+eq+%22" .. string.format("%08x", n) .. '
            '"-" .. tag .. "-0000-miss%22")\nend',
        ]
    elif scenario == "post_user":
        body = _lua_json(user_body("@NAME@", "@EXT@"), {
            "@NAME@": 'tag .. "-" .. n .. "@example.com"', "@EXT@": 'tag .. "-" .. n'})
        head += [
            "request = function()\n  n = n + 1\n"
            f'  return wrk.format("POST", base .. "/Users", nil, {body})\nend',
        ]
    elif scenario == "patch_replace":
        body = _lua_json(patch_replace_body("@V@"), {"@V@": 'tag .. "-" .. n'})
        head += [
            f"local ids = {_lua_list(t.user_ids)}",
            "request = function()\n  n = n + 1\n"
            f'  return wrk.format("PATCH", base .. "/Users/" .. ids[(n % #ids) + 1], nil, {body})\nend',
        ]
    elif scenario == "patch_active":
        on = _lua_json(patch_active_body(True), {})
        off = _lua_json(patch_active_body(False), {})
        head += [
            f"local ids = {_lua_list(t.active_ids)}",
            f"local on = {on}",
            f"local off = {off}",
            "request = function()\n  n = n + 1\n"
            "  local body = off\n"
            "  if math.floor(n / #ids) % 2 == 1 then body = on end\n"
            '  return wrk.format("PATCH", base .. "/Users/" .. ids[(n % #ids) + 1], nil, body)\nend',
        ]
    elif scenario == "group_add":
        body = _lua_json(member_add_body(["@U@"]), {"@U@": "uids[(math.floor(n / #gids) % #uids) + 1]"})
        head += [
            f"local uids = {_lua_list(t.user_ids)}",
            f"local gids = {_lua_list(t.group_ids)}",
            "request = function()\n  n = n + 1\n"
            f'  return wrk.format("PATCH", base .. "/Groups/" .. gids[(n % #gids) + 1], nil, {body})\nend',
        ]
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    return "\n".join(head) + "\n" + LUA_REPORT
