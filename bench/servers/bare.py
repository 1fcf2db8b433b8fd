"""The stack's ceiling: a bare aiohttp server that answers every SCIM route with a fixed JSON body.

No authentication, no parsing beyond reading the request body, no SCIM work: what is left is
aiohttp + the event loop + orjson-free byte bodies. The gateway can only approach this.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "2441309d85324e7793ae",
    "externalId": "7fce0092-d52e-4f76-b727-3955bd72c939",
    "meta": {"resourceType": "User", "created": "2018-03-27T19:59:26.000Z",
             "lastModified": "2018-03-27T19:59:26.000Z"},
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "name": {"familyName": "familyName", "givenName": "givenName"},
    "active": True,
    "emails": [{"value": "Test_User_11bb11bb@testuser.com", "type": "work", "primary": True}],
}
LIST = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
        "Resources": [USER], "startIndex": 1, "itemsPerPage": 1}
GROUP = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "927fa2c08dcb4a7fae9e",
         "displayName": "displayName", "members": []}

LIST_BODY = json.dumps(LIST).encode()
USER_BODY = json.dumps(USER).encode()
GROUP_BODY = json.dumps(GROUP).encode()
CT = "application/scim+json"


async def list_users(request: web.Request) -> web.Response:
    return web.Response(body=LIST_BODY, content_type=CT)


async def create(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=USER_BODY if request.match_info["kind"] == "Users" else GROUP_BODY,
                        status=201, content_type=CT)


async def patch(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=USER_BODY if request.match_info["kind"] == "Users" else GROUP_BODY, content_type=CT)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/scim/v2/{kind:Users|Groups}", list_users)
    app.router.add_post("/scim/v2/{kind:Users|Groups}", create)
    app.router.add_patch("/scim/v2/{kind:Users|Groups}/{id}", patch)
    app.router.add_put("/scim/v2/{kind:Users|Groups}/{id}", patch)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    print(f"bare aiohttp ({args.loop}) on 127.0.0.1:{args.port}", flush=True)
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop)


if __name__ == "__main__":
    main()
