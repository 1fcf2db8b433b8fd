"""The container files, checked without a Docker engine: structure, and references into the code."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from gateway import cli
from gateway.backends import env_name, plugin
from gateway.config import Settings
from gateway.http.app import create_app
from tests.conftest import make_settings
from tests.ops.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
GATEWAYS = ("gateway", "gateway-1", "gateway-2")
COMPILERS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|python3?-dev|libc6?-dev)\b")


def parse_cli(command: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """Run the real ``scim-gateway`` parser on ``command`` without starting anything."""
    seen: list[argparse.Namespace] = []

    def record(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    for name in ("_serve", "_mock"):
        monkeypatch.setattr(cli, name, record)
    assert cli.main(command) == 0
    return seen[0]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# --- docker-compose.yml -----------------------------------------------------------------


def test_default_services_and_replica_profile() -> None:
    default = {name for name, s in SERVICES.items() if not s.get("profiles")}
    assert default == {"gateway", "mock"}
    replicas = {name for name, s in SERVICES.items() if "replicas" in s.get("profiles", [])}
    assert replicas == {"postgres", "gateway-1", "gateway-2"}
    assert SERVICES["postgres"]["image"].startswith("postgres:16")


def test_every_service_has_a_healthcheck_and_dependencies_wait_for_it() -> None:
    for name, service in SERVICES.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, (name, dependency)
            assert rule == {"condition": "service_healthy"}, (name, dependency)
    assert set(SERVICES["gateway"]["depends_on"]) == {"mock"}
    for name in ("gateway-1", "gateway-2"):
        assert set(SERVICES[name]["depends_on"]) == {"postgres", "mock"}


def test_published_ports_are_distinct_and_reach_the_listening_port() -> None:
    published: list[str] = []
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            *host, container = str(mapping).split(":")
            published.append(":".join(host))
            if name in GATEWAYS:
                command = service["command"]
                assert container == command[command.index("--port") + 1], name
    assert len(published) == len(set(published))
    assert {p.rsplit(":", 1)[-1] for p in published} >= {"8080", "8091", "8092"}


@pytest.mark.parametrize("name", [*GATEWAYS, "mock"])
def test_commands_are_real_cli_invocations(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    command = [re.sub(r"\$\{[^}]*:-([^}]*)\}", r"\1", part) for part in SERVICES[name]["command"]]
    args = parse_cli(command, monkeypatch)
    assert args.host == "0.0.0.0"
    if name == "mock":
        assert args.command == "mock-cleanmail" and args.control and args.auto_create_domains
    else:
        assert args.command == "serve"


@pytest.mark.parametrize("name", GATEWAYS)
def test_environment_names_are_settings(name: str) -> None:
    env = env_of(SERVICES[name])
    backend = plugin(env["SCIM_GATEWAY_BACKEND"])
    backend_vars = {env_name(backend.name, field) for field in backend.settings.model_fields}
    for key in env:
        assert key.startswith("SCIM_GATEWAY_"), key
        assert key.removeprefix("SCIM_GATEWAY_").lower() in Settings.model_fields or key in backend_vars, key
    assert env["SCIM_GATEWAY_CLEANMAIL_URL"] == "http://mock:8081"
    state = env["SCIM_GATEWAY_STATE"]
    if name == "gateway":
        assert state.startswith("sqlite:///")
    else:
        assert state.startswith("postgresql://") and "@postgres:5432/" in state


def test_replicas_share_one_database() -> None:
    states = {env_of(SERVICES[name])["SCIM_GATEWAY_STATE"] for name in ("gateway-1", "gateway-2")}
    assert len(states) == 1


def test_stop_grace_outlasts_the_shutdown_timeout() -> None:
    default = Settings.model_fields["shutdown_timeout"].default
    for name in GATEWAYS:
        grace = SERVICES[name]["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > default


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    stages: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def instructions(stage: list[str], keyword: str) -> Iterator[str]:
    for line in stage:
        word, _, rest = line.partition(" ")
        if word.upper() == keyword:
            yield rest.strip()


def test_dockerfile_is_multi_stage_with_a_slim_final_image() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert any("pip wheel" in run for run in instructions(stages[0], "RUN"))
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", text)
    final = stages[-1]
    assert not any(" AS " in f.upper() for f in instructions(final, "FROM"))


def test_final_stage_has_no_compilers_and_runs_unprivileged() -> None:
    final = dockerfile_stages()[-1]
    for run in instructions(final, "RUN"):
        assert not re.search(r"apt-get install|apk add", run), run
        assert not COMPILERS.search(run), run
    users = list(instructions(final, "USER"))
    assert users, "the final stage must drop root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert list(instructions(final, "EXPOSE")) == ["8080"]
    assert list(instructions(final, "ENTRYPOINT")) == ['["scim-gateway"]']
    assert list(instructions(final, "CMD")) == ['["serve", "--host", "0.0.0.0"]']


def healthcheck_program() -> list[str]:
    final = dockerfile_stages()[-1]
    (check,) = instructions(final, "HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--interval" in options and "--timeout" in options
    argv: list[str] = yaml.safe_load(command)  # the JSON exec form
    assert argv[:2] == ["python", "-c"]
    return argv


async def _run_healthcheck(argv: list[str], env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv[1:], env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await proc.wait()


async def test_dockerfile_healthcheck_probes_healthz() -> None:
    argv = healthcheck_program()
    runner = web.AppRunner(create_app(make_settings()))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        assert await _run_healthcheck(argv, {"SCIM_GATEWAY_PORT": str(port)}) == 0
    finally:
        await runner.cleanup()
    assert await _run_healthcheck(argv, {"SCIM_GATEWAY_PORT": str(port)}) != 0


@pytest.mark.parametrize("name", ["gateway", "mock"])
def test_compose_healthchecks_are_valid_python(name: str) -> None:
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[1:3] == ["python", "-c"]
    compile(test[3], f"{name}-healthcheck", "exec")
    assert "/healthz" in test[3]


def test_dockerignore_keeps_local_state_out_of_the_build() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "*.sqlite3", "tests"):
        assert entry in ignored
