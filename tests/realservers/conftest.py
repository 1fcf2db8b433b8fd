"""Real-server fixtures: each server's fixtures live in a module of their own, imported here."""

from tests.realservers.conftest_modoboa import (  # noqa: F401
    modoboa,
    modoboa_default_throttle,
    modoboa_default_throttle_server,
    modoboa_instance,
    modoboa_server,
)
