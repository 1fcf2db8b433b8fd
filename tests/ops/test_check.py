"""``scim-gateway check``: configuration, state store and backends, as a table and an exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from tests.ops.live_mock import API_KEY, DOMAIN, LiveMock, acme_tenant_toml, dead_port, live_mock

__all__ = ["live_mock"]

HASH_A = "a" * 64
HASH_B = "b" * 64


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOKEN", "BACKEND", "CONFIG", "STATE", "PORT", "CLEANMAIL_URL", "CLEANMAIL_API_KEY"):
        monkeypatch.delenv(f"SCIM_GATEWAY_{name}", raising=False)


def write_config(tmp_path: Path, backend_url: str, *, state: str | None = None, extra: str = "") -> Path:
    state = state or f"sqlite:///{tmp_path / 'state' / 'gateway.sqlite3'}"
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[gateway]
state = "{state}"
{extra}
{acme_tenant_toml(HASH_A, backend_url)}
[tenants.trial]
token_hashes = ["{HASH_B}"]
dry_run = true
""")
    return config


def rows(output: str) -> dict[str, tuple[str, str]]:
    lines = output.strip().splitlines()
    assert lines[0].split() == ["COMPONENT", "STATUS", "DETAIL"]
    status_at = lines[0].index("STATUS")
    detail_at = lines[0].index("DETAIL")
    return {line[:status_at].strip(): (line[status_at:detail_at].strip(), line[detail_at:]) for line in lines[1:]}


def test_everything_reachable(live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live_mock.call("POST", "/api/v1/mailboxes", {"address": f"a@{DOMAIN}"})
    config = write_config(tmp_path, live_mock.url)

    assert main(["check", "--config", str(config)]) == 0

    table = rows(capsys.readouterr().out)
    assert {name: status for name, (status, _) in table.items()} == {
        "configuration": "OK",
        f"state store (sqlite:///{tmp_path / 'state' / 'gateway.sqlite3'})": "OK",
        "backend acme (cleanmail)": "OK",
        "backend trial (memory)": "OK",
    }
    assert "1 mailbox, 0 lists" in table["backend acme (cleanmail)"][1]
    assert "dry-run" in table["backend trial (memory)"][1]
    assert "2 tenants" in table["configuration"][1]
    # A check must not create the state file it checks.
    assert not (tmp_path / "state").exists()
    assert live_mock.call("GET", "/__mock__/stats")["calls"].get("POST /api/v1/mailboxes") == 1


def test_existing_sqlite_store_is_opened(live_mock: LiveMock, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "existing.sqlite3").close()
    config = write_config(tmp_path, live_mock.url, state=f"sqlite:///{tmp_path / 'existing.sqlite3'}")
    assert main(["check", "--config", str(config)]) == 0
    store_row = next(v for k, v in rows(capsys.readouterr().out).items() if k.startswith("state store"))
    assert store_row[0] == "OK" and "reachable" in store_row[1]


def test_dead_backend_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{dead_port()}"
    config = write_config(tmp_path, url)

    assert main(["check", "--config", str(config), "--timeout", "5"]) == 1

    table = rows(capsys.readouterr().out)
    status, detail = table["backend acme (cleanmail)"]
    assert status == "FAIL"
    assert url in detail and "connect" in detail.lower()
    assert table["backend trial (memory)"][0] == "OK"


def test_unreachable_store_fails_without_printing_its_password(
    live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"postgresql://gw:hunter2@127.0.0.1:{dead_port()}/gateway"
    config = write_config(tmp_path, live_mock.url, state=dsn)

    assert main(["check", "--config", str(config), "--timeout", "5"]) == 1

    out = capsys.readouterr().out
    assert "hunter2" not in out
    store = next(v for k, v in rows(out).items() if k.startswith("state store"))
    assert store[0] == "FAIL"


def test_broken_config_names_the_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:1", extra='port = 70000\nlog_formt = "json"')

    assert main(["check", "--config", str(config)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert any(line.startswith(f"[gateway] port in {config}: ") and "65535" in line and " — " in line
               for line in lines), lines
    assert any(line.startswith("[gateway] log_formt") and "did you mean 'log_format'?" in line for line in lines), lines


def test_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SCIM_GATEWAY_TOKEN", "t" * 20)
    monkeypatch.setenv("SCIM_GATEWAY_BACKEND", "exchange")

    assert main(["check"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("SCIM_GATEWAY_BACKEND: ")
    assert "no backend named 'exchange' is installed (installed: cleanmail, dryrun, " in err and " — " in err


def test_backend_secret_missing_is_a_configuration_error(
    live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_CLEANMAIL_KEY", raising=False)
    config = write_config(tmp_path, live_mock.url)
    config.write_text(config.read_text().replace(f'api_key = "{API_KEY}"', 'api_key_env = "ACME_CLEANMAIL_KEY"'))

    assert main(["check", "--config", str(config)]) == 2

    captured = capsys.readouterr()
    assert rows(captured.out)["backend acme (cleanmail)"][0] == "FAIL"
    assert "tenants.acme.backend: environment variable ACME_CLEANMAIL_KEY" in captured.err


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err.startswith("--config: ")
