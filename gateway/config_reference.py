"""The configuration reference in the README, generated from the settings models.

``python -m gateway.config_reference`` prints it; a test keeps the README's copy in step.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.backends import BrokenPlugin, installed
from gateway.config import BackendSettings, Settings, TenantSettings

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None or value == [] or value == {}:
        return ""
    if hasattr(value, "model_dump"):
        return ""
    return f"`{value}`"


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("pydantic.types.", "")
    text = text.replace("<class '", "").replace("'>", "").replace("pathlib.", "")
    return text.replace("gateway.config.", "").replace("pydantic.networks.", "").replace("|", "or")


def _rows(model: type[BaseModel], env_prefix: str | None, toml_prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if name == "tenants" or (model is TenantSettings and name == "backend"):
            continue  # nested tables, documented separately
        env = f"`{env_prefix}{name.upper()}`" if env_prefix else ""
        meaning = field.description or ""
        rows.append(f"| `{toml_prefix}{name}` | {env} | {_type(field)} | {_default(field)} | {meaning} |")
    return rows


def reference() -> str:
    header = ["| TOML key | Environment variable | Type | Default | Meaning |", "|---|---|---|---|---|"]
    parts = [
        "Gateway-wide settings (TOML table `[gateway]`; the environment wins over the file):", "",
        *header, *_rows(Settings, "SCIM_GATEWAY_", ""), "",
        "Per tenant (TOML table `[tenants.NAME]`):", "",
        *header, *_rows(TenantSettings, None, ""), "",
        "Per tenant backend (TOML table `[tenants.NAME.backend]`):", "",
        *header, *_rows(BackendSettings, None, ""),
    ]
    for name, backend in sorted(installed().items()):
        if isinstance(backend, BrokenPlugin) or not backend.create.__module__.startswith("adapters."):
            continue  # the built-in backends only: a plugin documents itself
        parts += ["", f"Backend `{name}` ({backend.summary.rstrip('.')}): in `[tenants.NAME.backend]` with "
                      f"`adapter = \"{name}\"`, or for the quick-start tenant as environment variables:", "",
                  *header, *_rows(backend.settings, f"SCIM_GATEWAY_{name.upper()}_", "")]
    return "\n".join(parts)


def splice(readme: str) -> str:
    """``readme`` with the text between the reference markers replaced by the current reference."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + reference() + "\n" + readme[end:]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if sys.argv[1:] == ["--write-readme"]:
        path = Path(__file__).resolve().parents[1] / "README.md"
        path.write_text(splice(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(reference())
