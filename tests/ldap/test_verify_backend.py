"""``scim-gateway verify-backend`` against a tenant on a real slapd: every check passes, nothing is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.tenants import hash_token
from tests.realservers.slapd import Slapd

DOMAIN = "verify.example.org"


def _toml(value: str | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f'"{value}"'


def _config(tmp_path: Path, server: Slapd, **extra: str | bool) -> Path:
    lines = [
        '[gateway]', 'state = "memory"', '',
        '[tenants.directory]', f'token_hashes = ["{hash_token("v" * 24)}"]', '',
        '[tenants.directory.backend]', 'adapter = "ldap"', f'url = "{server.url}"',
        f'bind_dn = "{server.service_dn}"', f'bind_password = "{server.service_password}"',
        f'users_dn = "{server.users_dn}"', f'groups_dn = "{server.groups_dn}"', 'timeout = 1.0', 'deadline = 5.0',
        *(f"{key} = {_toml(value)}" for key, value in extra.items()),
    ]
    config = tmp_path / "gateway.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _kit_entries(server: Slapd) -> list[str]:
    return [e.dn for e in server.search(filterstr="(|(mail=kit-*)(cn=Kit *))", attributes=["1.1"])]


@pytest.mark.parametrize("mode", ["plain", "starttls"])
def test_verify_backend_passes_against_slapd(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server: Slapd = request.getfixturevalue("slapd" if mode == "plain" else "slapd_tls")
    extra: dict[str, str | bool] = {"start_tls": True, "ca_file": str(server.ca_file)} if mode == "starttls" else {}
    config = _config(tmp_path, server, **extra)

    code = main(["verify-backend", "--config", str(config), "--tenant", "directory",
                 "--domain", DOMAIN, "--i-accept-side-effects"])

    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert code == 0, out
    assert last.startswith("verify-backend: ") and last.endswith(", 0 failed"), last
    assert "SKIP" not in out, "the transport-fault checks run through a proxy in front of the directory"
    assert _kit_entries(server) == []
