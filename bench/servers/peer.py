"""The peer baseline: scim2-server (python-scim2) served the fastest way its package allows.

scim2-server's own ``scim2-server`` command serves through the standard library's threaded
``wsgiref`` server (HTTP/1.0, one thread per request, no keep-alive), which would measure
wsgiref more than scim2-server. Here its ASGI application runs under uvicorn with uvloop and
httptools, one process: the same single-process async model as the gateway, so the
comparison is between the two SCIM implementations, not between web servers.
``--wsgi`` serves it exactly as the ``scim2-server`` command does, for reference.
"""

from __future__ import annotations

import argparse
import os
import secrets


def build_provider(bearer: bool):  # type: ignore[no-untyped-def]
    from scim2_models import ScimProvider
    from scim2_server.testserver.application import BEARER_TOKEN_SCHEME
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    config = load_default_service_provider_config()
    if bearer:
        config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )


def asgi_app(token: str):  # type: ignore[no-untyped-def]
    from scim2_models import UnauthorizedException
    from scim2_server.applications.asgi import ASGIApplication
    from scim2_server.memory import AsyncInMemoryStorage
    from scim2_server.requests import ScimRequest
    from scim2_server.service import ScimService

    class BearerASGI(ASGIApplication):
        def check_auth(self, request: ScimRequest) -> None:
            scheme, _, given = (request.header("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or given != token:
                raise UnauthorizedException

    provider = build_provider(bearer=True)
    service = ScimService(provider, secret=os.environ.get("SCIM2_SERVER_SECRET") or secrets.token_urlsafe(32))
    return BearerASGI(AsyncInMemoryStorage(), provider, service=service)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--wsgi", action="store_true", help="serve as the scim2-server command does (wsgiref)")
    args = parser.parse_args()
    if args.wsgi:
        import sys

        from scim2_server.testserver.cli import main as cli_main

        sys.argv = ["scim2-server", "--hostname", "127.0.0.1", "--port", str(args.port), "--bearer-token", args.token]
        cli_main()
        return
    import uvicorn

    print(f"peer listening on 127.0.0.1:{args.port}", flush=True)
    uvicorn.run(asgi_app(args.token), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
