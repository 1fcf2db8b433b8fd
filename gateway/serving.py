"""Running the gateway process: logging, TLS, the event loop and graceful shutdown.

On SIGTERM aiohttp stops accepting connections, lets requests in flight finish (for up
to ``shutdown_timeout``) and only then runs the app's cleanup, which closes the
backend clients and the state store. A create that was waiting on the mail platform
therefore still completes and is recorded, instead of leaving a journal entry for the
next replica to settle.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import structlog
from aiohttp import web

from gateway.backends import plugin, validate_options
from gateway.config import Settings
from gateway.logs import configure_logging

log = structlog.get_logger("gateway.serving")


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context with the platform's secure defaults and nothing older than TLS 1.2."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # optional (e.g. on Windows)
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def secret_values(settings: Settings) -> Iterator[str]:
    """Every secret the settings hold, so the log can mask it even inside an exception message."""
    for secret in (settings.token, settings.log_hash_salt):
        if secret is not None:
            yield secret.get_secret_value()
    try:
        tenants = settings.effective_tenants()
    except ValueError:
        return  # reported as a configuration error when the app is built
    for tenant in tenants.values():
        try:
            backend = validate_options(plugin(tenant.backend.adapter), tenant.backend.options, "env")
        except ValueError:
            continue  # reported as a configuration error when the app is built
        yield from backend.secret_values()


async def _announce_shutdown(app: web.Application) -> None:
    log.info("shutting down: finishing requests in flight")


async def tune_gc(app: web.Application) -> None:
    """Fewer, cheaper collections: a request allocates many short-lived objects, and the
    cycle collector's full passes over a large, long-lived heap were seen as 100-200 ms pauses
    in the write p99. Objects alive after start-up (modules, settings) are frozen out of it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; 2 on a configuration error."""
    from gateway.http.app import create_app

    salt = settings.log_hash_salt.get_secret_value().encode() if settings.log_hash_salt is not None else None
    configure_logging(settings.log_format, settings.log_level, hash_user_names=settings.log_hash_user_names,
                      salt=salt, secret_values=secret_values(settings))
    try:
        app = create_app(settings)
        context = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            context = tls_context(settings.tls_cert_file, settings.tls_key_file)
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ssl.SSLError) as exc:
        print(f"configuration error: TLS certificate or key: {exc}", file=sys.stderr)
        return 2
    app.on_shutdown.append(_announce_shutdown)
    app.on_startup.append(tune_gc)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    scheme = "https" if context is not None else "http"
    print(f"SCIM gateway listening: Tenant URL {scheme}://{settings.host}:{settings.port}/scim/v2", flush=True)
    web.run_app(app, host=settings.host, port=settings.port, ssl_context=context,
                shutdown_timeout=settings.shutdown_timeout, print=None, access_log=None, loop=loop)
    return 0
