"""The installed backends (entry points of ``scim_gateway.backends``) and building one for a tenant."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from adapters.base import Adapter
from adapters.plugins import ENTRY_POINT_GROUP, BackendContext, BackendPlugin, BackendSettingsModel

ENV_PREFIX = "SCIM_GATEWAY_"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

AnyPlugin = BackendPlugin[Any]


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that could not be loaded; listed with why, never used."""

    name: str
    target: str
    problem: str


@functools.cache
def installed() -> dict[str, AnyPlugin | BrokenPlugin]:
    """Every registered backend by name (each loaded once per process)."""
    return {name: _load(point) for name, point in _entry_points().items()}


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    # Reading every installed distribution's metadata is slow: once per process.
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


@functools.cache
def _load(point: EntryPoint) -> AnyPlugin | BrokenPlugin:
    try:
        loaded = point.load()
    except Exception as exc:  # a broken third-party package must not stop the others
        return BrokenPlugin(point.name, point.value, f"cannot be loaded: {exc!r}")
    if not isinstance(loaded, BackendPlugin):
        return BrokenPlugin(point.name, point.value, "is not a BackendPlugin")
    if loaded.name != point.name or not _NAME.match(loaded.name):
        return BrokenPlugin(point.name, point.value, f"names itself {loaded.name!r}; use lower-case letters, digits, _")
    return loaded


def plugin(name: str) -> AnyPlugin:
    """The backend called ``name``; ValueError naming the installed ones when there is none.

    Only that backend's package is imported: the others' drivers (LDAP, database clients,
    password hashers) stay out of a gateway that does not use them.
    """
    point = _entry_points().get(name)
    found = _load(point) if point is not None else None
    if isinstance(found, BackendPlugin):
        return found
    if isinstance(found, BrokenPlugin):
        raise ValueError(f"backend {name!r} ({found.target}) {found.problem}")
    usable = ", ".join(sorted(n for n, p in installed().items() if isinstance(p, BackendPlugin)))
    raise ValueError(f"no backend named {name!r} is installed (installed: {usable})")


def env_name(backend: str, setting: str) -> str:
    return f"{ENV_PREFIX}{backend.upper()}_{setting.upper()}"


def options_from_env(backend: AnyPlugin, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The backend's settings given as ``SCIM_GATEWAY_<NAME>_<SETTING>`` environment variables."""
    environ = os.environ if environ is None else environ
    upper = {key.upper(): value for key, value in environ.items()}
    return {field: upper[env_name(backend.name, field)] for field in backend.settings.model_fields
            if env_name(backend.name, field) in upper}


class BackendSettingsError(ValueError):
    """A backend's settings do not validate; one line per problem, each naming the setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def validate_options(backend: AnyPlugin, options: Mapping[str, Any], where: str) -> BackendSettingsModel:
    """``options`` checked by the backend's model; ``where`` names their source in messages.

    ``where`` is ``"env"`` (the names become ``SCIM_GATEWAY_<NAME>_<SETTING>``), a TOML
    table such as ``tenants.acme.backend``, or empty (the bare setting names).
    """
    try:
        settings: BackendSettingsModel = backend.settings.model_validate(dict(options))
    except ValidationError as exc:
        raise BackendSettingsError([_problem(backend, error, where) for error in exc.errors()]) from None
    return settings


def _problem(backend: AnyPlugin, error: Any, where: str) -> str:
    field = ".".join(str(p) for p in error["loc"])
    name = env_name(backend.name, field) if where == "env" else f"{where}.{field}" if where else field
    message = str(error["msg"]).removeprefix("Value error, ")
    info = backend.settings.model_fields.get(str(error["loc"][0])) if error["loc"] else None
    if error["type"] == "extra_forbidden":
        known = ", ".join(backend.settings.model_fields) or "none"
        return f"{name}: the {backend.name} backend has no such setting — remove it (its settings: {known})"
    hint = f" ({info.description.rstrip('.')})" if info is not None and info.description else ""
    return f"{name}: {message} — correct it{hint}"


def build(backend: str, options: Mapping[str, Any], context: BackendContext, where: str) -> Adapter:
    """The adapter for one tenant; ValueError (naming the setting) when its settings are wrong."""
    found = plugin(backend)
    settings = validate_options(found, options, where)
    return found.create(settings, context)


def describe(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """(setting, type, meaning) of each field of a backend's settings model."""
    rows = []
    for name, info in model.model_fields.items():
        kind = str(info.annotation).replace("typing.", "").replace("pydantic.types.", "")
        kind = kind.replace("<class '", "").replace("'>", "").replace("pathlib.", "")
        default = "" if info.is_required() else f" (default {info.default!r})" if info.default is not None else ""
        rows.append((name, kind, (info.description or "") + default))
    return rows
