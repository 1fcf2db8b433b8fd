"""structlog set-up: JSON lines in production, readable lines on a terminal.

A processor drops secrets by key name, so a token or API key that reaches a log call
by mistake is still never written; registered secret values and bearer credentials are
also masked inside any text (exception messages, tracebacks). Standard-library loggers
(aiohttp, the HTTP clients) go through the same processors, so every line has one format.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sys
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import Processor

SECRET_KEYS = frozenset({
    "authorization", "token", "api_key", "apikey", "password", "secret", "x-api-key", "client_secret",
    "cleanmail_api_key", "credentials",
})
USER_NAME_KEYS = frozenset({"username", "user_name", "address", "mailbox", "email", "new_address"})
MIN_SECRET_LENGTH = 8
"""Shorter values would mask ordinary words; real tokens and keys are far longer."""
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_secret_values: set[str] = set()
EventDict = MutableMapping[str, Any]

REQUEST_ID: ContextVar[str | None] = ContextVar("scim_gateway_request_id", default=None)
"""The id of the request being served; set by the HTTP layer, added to every line logged meanwhile."""


def add_request_id(_: Any, __: str, event: EventDict) -> EventDict:
    # One context variable read per line, where structlog's merge_contextvars walks the whole context.
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a log line from now on."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _secret_values.add(value)


def mask_secret_values(_: Any, __: str, event: EventDict) -> EventDict:
    # Runs on every line (one per request): plain substring tests first, the regex only on a hit.
    for key, value in event.items():
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            continue
        masked = value
        for secret in _secret_values:
            if secret in masked:
                masked = masked.replace(secret, "[redacted]")
        if "earer" in masked or "EARER" in masked:
            masked = _BEARER.sub(r"\1 [redacted]", masked)
        if masked is not value:
            event[key] = masked
    return event


class UserNameHasher:
    """Replaces userNames and mail addresses by a salted sha256 prefix.

    The same address always gives the same digest (with the same salt), so lines about
    one mailbox can still be followed without the log holding who it belongs to.
    """

    def __init__(self, salt: bytes) -> None:
        self._salt = salt

    def digest(self, value: str) -> str:
        return "sha256:" + hashlib.sha256(self._salt + value.strip().lower().encode("utf-8")).hexdigest()[:16]

    def __call__(self, _: Any, __: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            if not isinstance(value, str):
                continue
            if key.lower() in USER_NAME_KEYS:
                event[key] = self.digest(value)
            elif "@" in value:
                event[key] = _EMAIL.sub(lambda m: self.digest(m.group()), value)
        return event


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
    return event


def _orjson_text(obj: Any, **_: Any) -> str:
    # orjson renders a log line several times faster than json.dumps; str() for anything exotic.
    return orjson.dumps(obj, default=str).decode()


def configure_logging(
    fmt: str = "auto",
    level: str = "info",
    *,
    hash_user_names: bool = False,
    salt: bytes | None = None,
    secret_values: Iterable[str | None] = (),
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """Set up structlog and the standard library's root logger; ``stream`` defaults to stderr.

    ``cache_loggers=False`` lets tests reconfigure loggers that were already used.
    """
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    # Plain tracebacks: a pretty formatter may print local variables, i.e. request bodies and secrets.
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_text) if use_json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    for value in secret_values:
        register_secret(value)
    scrubbers: list[Processor] = [
        redact_secrets, structlog.processors.format_exc_info, mask_secret_values
    ]
    if hash_user_names:
        scrubbers.append(UserNameHasher(salt if salt is not None else secrets.token_bytes(16)))
    stamp: list[Processor] = [
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*stamp, *scrubbers, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=cache_loggers,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*stamp, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *scrubbers, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_scim_gateway", False)]:
        root.removeHandler(old)
    handler._scim_gateway = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # Libraries stay at WARNING (aiohttp's info lines are noise); the adapters' own lines follow ``level``.
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("adapters").setLevel(numeric)
