"""The README is the user's manual: what it names must exist, and what exists must be in it."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.backends import BrokenPlugin, env_name, installed
from gateway.cli import build_parser, subcommands
from gateway.config import Settings
from gateway.config_reference import splice

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def test_configuration_reference_is_current_and_complete() -> None:
    assert splice(README) == README, "run: .venv/bin/python -m gateway.config_reference --write-readme"
    assert "PydanticUndefined" not in README


def test_two_setup_commands_and_the_make_targets_it_names_exist() -> None:
    assert "make run" in README and "make test" in README
    for target in set(re.findall(r"`make ([a-z-]+)", README)):
        assert re.search(rf"^{target}:", MAKEFILE, re.M), f"README names `make {target}`; no such Makefile target"


def test_every_command_is_documented_and_every_documented_command_exists() -> None:
    commands = set(subcommands(build_parser()))
    assert {"serve", "check", "reconcile", "verify-backend", "backends", "token", "mock-cleanmail"} <= commands
    mentioned = set(re.findall(r"scim-gateway ([a-z][a-z-]+)", README))
    assert mentioned <= commands, f"README names commands that do not exist: {sorted(mentioned - commands)}"
    assert commands <= mentioned, f"commands missing from the README: {sorted(commands - mentioned)}"


def test_every_environment_variable_the_readme_names_is_a_setting() -> None:
    known = {f"SCIM_GATEWAY_{name.upper()}" for name in Settings.model_fields}
    for name, backend in installed().items():
        if not isinstance(backend, BrokenPlugin):
            known |= {env_name(name, field) for field in backend.settings.model_fields}
    named = set(re.findall(r"SCIM_GATEWAY_[A-Z0-9_]*[A-Z0-9]", README)) - {"SCIM_GATEWAY_"}
    named = {n for n in named if not n.endswith(("_BACKEND_SETTING", "_NAME_SETTING"))}
    stale = sorted(n for n in named if n not in known and not n.startswith("SCIM_GATEWAY_TEST"))
    assert not stale, f"README names variables that are no setting: {stale}"


def test_every_built_in_backend_has_a_section() -> None:
    for name, backend in installed().items():
        if isinstance(backend, BrokenPlugin) or not backend.create.__module__.startswith("adapters."):
            continue
        assert f"Backend `{name}`" in README, f"no configuration section for the {name} backend"
