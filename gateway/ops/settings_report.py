"""Loading settings for an operator command, and explaining why they are wrong.

Each problem becomes one ``SETTING: problem — fix`` line that names the setting the way
the operator wrote it: the environment variable when it is set there, else the TOML key
in the config file, so the line points at the one place to edit.
"""

from __future__ import annotations

import difflib
import inspect
import os
import tomllib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from gateway.config import Settings, load_settings

ENV_PREFIX = "SCIM_GATEWAY_"
_SECRET_WORDS = ("key", "token", "secret", "password")

_HINTS = {
    "missing": "set it",
    "int_parsing": "use a whole number",
    "int_from_float": "use a whole number",
    "float_parsing": "use a number",
    "bool_parsing": "use true or false",
    "string_type": "use a quoted string",
    "list_type": "use a list, e.g. [\"a\", \"b\"]",
    "dict_type": "use a table",
    "greater_than": "raise the value",
    "greater_than_equal": "raise the value",
    "less_than": "lower the value",
    "less_than_equal": "lower the value",
    "too_short": "add at least one entry",
}


class ConfigProblems(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def load(config_file: Path | None) -> Settings:
    """Settings with at least one tenant, or ConfigProblems with one line per problem."""
    path = config_file or _env_config()
    try:
        settings = load_settings(config_file)
    except ValidationError as exc:
        raise ConfigProblems(explain(exc, _read_toml(path), path)) from None
    except FileNotFoundError:
        raise ConfigProblems([f"{_config_setting(config_file)}: {path} does not exist — give the path of the TOML "
                              "settings file"]) from None
    except OSError as exc:
        raise ConfigProblems([f"{_config_setting(config_file)}: cannot read {path}: {exc.strerror} — check the path "
                              "and its permissions"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigProblems([f"{path}: not valid TOML: {exc} — correct the syntax there"]) from None
    try:
        settings.effective_tenants()
    except ValidationError as exc:
        raise ConfigProblems(explain(exc, _read_toml(path), path)) from None
    except ValueError as exc:
        problem, _, fix = str(exc).partition(": ")
        raise ConfigProblems([f"tenants: {problem} — {fix or 'correct the tenants'}"]) from None
    return settings


def _env_config() -> Path | None:
    value = os.environ.get(f"{ENV_PREFIX}CONFIG")
    return Path(value) if value else None


def _config_setting(config_file: Path | None) -> str:
    return "--config" if config_file is not None else f"{ENV_PREFIX}CONFIG"


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def explain(exc: ValidationError, document: dict[str, Any], path: Path | None = None) -> list[str]:
    """One ``SETTING: problem — fix`` line per validation error."""
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        info, model = _field(loc)
        problem = str(error["msg"]).removeprefix("Value error, ")
        if " — " in problem:
            # Already one line per setting, with its fix (a backend's own settings).
            lines.extend(problem.split("; ") if not loc else [f"{setting_name(loc, document, path)}: {problem}"])
            continue
        if error["type"] != "missing" and not _is_secret(loc, info) and _shown(error.get("input")):
            problem += f" (got {error['input']!r})"
        lines.append(f"{setting_name(loc, document, path)}: {problem} — {_fix(error, loc, info, model)}")
    return lines


def setting_name(loc: Sequence[int | str], document: dict[str, Any], path: Path | None = None) -> str:
    """The environment variable or TOML key an error location refers to."""
    parts = [str(p) for p in loc]
    where = f" in {path}" if path is not None else ""
    if not parts:
        return f"the configuration{where}"
    if parts[0] == "tenants":
        return ".".join(parts) + where
    entry = f" entry {'.'.join(parts[1:])}" if len(parts) > 1 else ""
    env = f"{ENV_PREFIX}{parts[0].upper()}"
    if any(name.upper() == env for name in os.environ):
        return env + entry
    if parts[0] in document.get("gateway", {}):
        return f"[gateway] {parts[0]}{entry}{where}"
    return f"{env}{entry} (or [gateway] {parts[0]} in the config file)"


def _shown(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(str(value)) <= 80


def _is_secret(loc: Sequence[int | str], info: FieldInfo | None) -> bool:
    if info is not None and SecretStr in _types_in(info.annotation):
        return True
    return any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)


def _types_in(annotation: Any) -> list[Any]:
    found = [annotation]
    for arg in typing.get_args(annotation):
        found.extend(_types_in(arg))
    return found


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for candidate in _types_in(annotation):
        if inspect.isclass(candidate) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field(loc: Sequence[int | str]) -> tuple[FieldInfo | None, type[BaseModel] | None]:
    """The field an error location ends at, and the model that holds it."""
    model: type[BaseModel] | None = Settings
    info: FieldInfo | None = None
    holder: type[BaseModel] | None = Settings
    for part in loc:
        if model is None:
            break
        holder = model
        if isinstance(part, str) and part in model.model_fields:
            info = model.model_fields[part]
            model = _model_in(info.annotation)
        else:
            # A dict key (a tenant's name), a list index, or a misspelt setting of this model.
            info = None
    return info, holder


def _fix(error: Any, loc: Sequence[int | str], info: FieldInfo | None, model: type[BaseModel] | None) -> str:
    kind = str(error["type"])
    if kind == "extra_forbidden":
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]) if loc else "", known, n=1)
        return "remove it" + (f", or did you mean {close[0]!r}?" if close else f"; known settings: {', '.join(known)}")
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "one of the listed values"))
        return f"use {expected}"
    hint = _HINTS.get(kind)
    description = info.description.rstrip(".").lower() if info is not None and info.description else ""
    if hint and description:
        return f"{hint} ({description})"
    return hint or (f"expected: {description}" if description else "correct the value")
