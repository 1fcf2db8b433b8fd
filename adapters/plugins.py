"""How a backend makes itself known to the gateway: a ``BackendPlugin`` in an entry point.

A package registers its backend in its ``pyproject.toml``::

    [project.entry-points."scim_gateway.backends"]
    jsonfile = "scim_jsonfile:PLUGIN"

where ``PLUGIN`` is a ``BackendPlugin``. The gateway validates the tenant's settings with
``settings`` (a pydantic model; errors name the setting) and calls ``create`` once per
tenant. For the quick-start tenant each setting comes from ``SCIM_GATEWAY_<NAME>_<SETTING>``
(``SCIM_GATEWAY_JSONFILE_PATH``); for a tenant of the config file, from its
``[tenants.NAME.backend]`` table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr

from adapters.base import Adapter

ENTRY_POINT_GROUP = "scim_gateway.backends"


class BackendSettingsModel(BaseModel):
    """Base for a backend's settings: unknown settings are errors, values are checked at start-up.

    Give every field a ``description``: ``scim-gateway backends`` and the README show it.
    Use ``SecretStr`` for secrets, so they are never printed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def secret_values(self) -> Iterator[str]:
        """Every secret these settings hold, so the gateway's log can mask it wherever it appears.

        The ``SecretStr`` fields by default; override to add secrets read from elsewhere.
        """
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                yield value.get_secret_value()


S = TypeVar("S", bound=BackendSettingsModel)


@dataclass(frozen=True)
class BackendContext:
    """What the gateway tells a backend about the tenant it serves."""

    tenant: str
    list_domain: str | None = None
    """Mail domain of distribution-list addresses, if the operator set one."""
    list_address_template: str = "{slug}@{domain}"
    """How a list's address is built from its displayName (``{slug}`` and ``{domain}``)."""
    domains: frozenset[str] = frozenset()
    """Mail domains the tenant may provision; empty allows any."""
    open_backend: Callable[[str], Adapter] | None = field(default=None, compare=False)
    """Builds another registered backend for the same tenant, with its own settings (for wrappers)."""


@dataclass(frozen=True)
class BackendPlugin(Generic[S]):
    name: str
    """The value of ``SCIM_GATEWAY_BACKEND``: lower case letters, digits and underscores."""
    summary: str
    settings: type[S]
    create: Callable[[S, BackendContext], Adapter]
    """Build the adapter; do no I/O here (``Adapter.start`` does)."""
    keeps_data: bool = True
    """False for a backend whose data lives in the gateway process and is lost on restart."""
    location: Callable[[S], str] | None = None
    """Where the platform is, for ``scim-gateway check`` (a URL without credentials)."""
    endpoint: Callable[[S], tuple[str, int]] | None = None
    """The platform's TCP host and port. With ``relocate``, ``verify-backend`` runs the
    transport-fault checks of the contract kit through a local proxy."""
    relocate: Callable[[S, str, int], S] | None = None
    """The same settings, pointed at another host and port (the proxy)."""
