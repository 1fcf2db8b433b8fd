"""SCIM endpoints: parse the request, call the tenant's service, render the result."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.http.body import read_json
from gateway.http.middleware import TENANT_KEY
from gateway.http.render import scim_response
from gateway.provisioning.service import ResourceService
from gateway.scim import discovery
from gateway.scim.errors import ScimError
from gateway.scim.query import (
    list_response,
    parse_etag_list,
    parse_list_query,
    parse_projection,
    parse_search_request,
)

BASE_PATH = "/scim/v2"


class ScimHandlers:
    def __init__(self, *, max_page_size: int, max_operations: int, max_body_bytes: int) -> None:
        self.max_page_size = max_page_size
        self.max_operations = max_operations
        self.max_body_bytes = max_body_bytes

    # --- helpers -------------------------------------------------------------------

    @staticmethod
    def base_url(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{BASE_PATH}"

    @staticmethod
    def _service(request: web.Request) -> ResourceService:
        tenant = request[TENANT_KEY]
        kind = request.match_info["kind"]
        return tenant.users if kind == "Users" else tenant.groups

    @staticmethod
    async def _json(request: web.Request) -> Any:
        return await read_json(request)

    @staticmethod
    def _etag_headers(resource: dict[str, Any]) -> dict[str, str]:
        version = resource.get("meta", {}).get("version")
        return {"ETag": version} if isinstance(version, str) else {}

    # --- resources -------------------------------------------------------------------

    async def list(self, request: web.Request) -> web.Response:
        query = parse_list_query(request.query, max_count=self.max_page_size)
        resources, total = await self._service(request).list(query, self.base_url(request))
        return scim_response(list_response(resources, total, query.start_index))

    async def search(self, request: web.Request) -> web.Response:
        query = parse_search_request(await self._json(request), max_count=self.max_page_size)
        resources, total = await self._service(request).list(query, self.base_url(request))
        return scim_response(list_response(resources, total, query.start_index))

    async def get(self, request: web.Request) -> web.StreamResponse:
        service = self._service(request)
        resource = await service.get(request.match_info["id"], self.base_url(request), parse_projection(request.query))
        headers = self._etag_headers(resource)
        if_none_match = parse_etag_list(request.headers.get("If-None-Match"))
        if if_none_match and headers and any(
            t == "*" or t.removeprefix("W/") == headers["ETag"].removeprefix("W/") for t in if_none_match
        ):
            return web.Response(status=304, headers=headers)
        return scim_response(resource, headers=headers)

    async def create(self, request: web.Request) -> web.Response:
        service = self._service(request)
        resource = await service.create(await self._json(request), self.base_url(request),
                                        parse_projection(request.query))
        headers = self._etag_headers(resource)
        headers["Location"] = resource.get("meta", {}).get("location") or (
            f"{self.base_url(request)}/{request.match_info['kind']}/{resource['id']}"
        )
        return scim_response(resource, 201, headers)

    async def replace(self, request: web.Request) -> web.Response:
        service = self._service(request)
        resource = await service.replace(
            request.match_info["id"], await self._json(request), self.base_url(request),
            parse_projection(request.query), parse_etag_list(request.headers.get("If-Match")),
        )
        return scim_response(resource, headers=self._etag_headers(resource))

    async def patch(self, request: web.Request) -> web.Response:
        service = self._service(request)
        body = await self._json(request)
        projection = parse_projection(request.query)
        resource = await service.patch(
            request.match_info["id"], body, self.base_url(request), projection,
            parse_etag_list(request.headers.get("If-Match")),
        )
        # 200 with the resource for Groups too: RFC 7644 §3.5.2 allows 204, but strict clients
        # expect the body, and Entra accepts both.
        return scim_response(resource, headers=self._etag_headers(resource))

    async def root_search(self, request: web.Request) -> web.Response:
        raise ScimError(501, "Searching across resource types is not supported; use /Users/.search or "
                             "/Groups/.search.")

    async def delete(self, request: web.Request) -> web.Response:
        await self._service(request).delete(
            request.match_info["id"], parse_etag_list(request.headers.get("If-Match"))
        )
        return web.Response(status=204)

    # --- discovery -----------------------------------------------------------------

    async def service_provider_config(self, request: web.Request) -> web.Response:
        return scim_response(discovery.service_provider_config(
            self.base_url(request), max_results=self.max_page_size, max_operations=self.max_operations,
            max_payload_size=self.max_body_bytes,
        ))

    async def resource_types(self, request: web.Request) -> web.Response:
        docs = discovery.resource_types(self.base_url(request))
        return scim_response(discovery.list_response(docs))

    async def resource_type(self, request: web.Request) -> web.Response:
        doc = discovery.resource_type(self.base_url(request), request.match_info["id"])
        if doc is not None:
            return scim_response(doc)
        raise ScimError(404, f"No resource type {request.match_info['id']}; this gateway serves User and Group.")

    async def schemas(self, request: web.Request) -> web.Response:
        return scim_response(discovery.list_response(discovery.schemas(self.base_url(request))))

    async def schema(self, request: web.Request) -> web.Response:
        doc = discovery.schema(self.base_url(request), request.match_info["id"])
        if doc is not None:
            return scim_response(doc)
        raise ScimError(404, f"No schema {request.match_info['id']}.")
