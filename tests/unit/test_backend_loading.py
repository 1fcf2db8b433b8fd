"""Backends are loaded by name: a gateway imports only the backend it serves."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.backends import installed, plugin

OTHER_DRIVERS = ("ldap3", "asyncpg", "asyncmy", "bcrypt", "argon2")


def test_serving_the_memory_backend_imports_no_other_backends_driver() -> None:
    code = ("import sys; from gateway.backends import plugin; plugin('memory'); "
            f"print(','.join(m for m in {OTHER_DRIVERS!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_an_unknown_backend_is_refused_naming_the_installed_ones() -> None:
    with pytest.raises(ValueError, match=r"no backend named 'nope' is installed \(installed: .*memory"):
        plugin("nope")


def test_every_built_in_backend_is_listed() -> None:
    assert {"memory", "cleanmail", "dryrun", "ldap", "modoboa", "postfixadmin"} <= set(installed())
