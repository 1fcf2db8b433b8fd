"""``scim-gateway verify-backend``: the contract kit against a configured tenant, leaving nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from tests.ops.live_mock import DOMAIN, LiveMock, acme_tenant_toml, live_mock

__all__ = ["live_mock"]
from gateway.tenants import hash_token

CHECK_COUNT_LINE = "verify-backend: "


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\nstate = "memory"\n{acme_tenant_toml(hash_token("t" * 24), url)}')
    return config


def test_passes_against_the_mock_and_leaves_nothing_behind(
    live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = live_mock.call("GET", "/__mock__/state")
    code = main(["verify-backend", "--config", str(_config(tmp_path, live_mock.url)), "--tenant", "acme",
                 "--domain", DOMAIN, "--i-accept-side-effects"])
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert code == 0, out
    assert last.startswith(CHECK_COUNT_LINE) and last.endswith(", 0 failed"), last
    assert int(last.removeprefix(CHECK_COUNT_LINE).split()[0]) >= 12
    assert "SKIP" not in out, "the transport-fault checks run through a proxy for a backend that says where it is"
    after = live_mock.call("GET", "/__mock__/state")
    assert {k: v for k, v in after.items() if k != "next_id"} == {k: v for k, v in before.items() if k != "next_id"}


def test_a_failing_platform_fails_the_run(live_mock: LiveMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    # The mock refuses mailboxes in a domain it does not have: every check that creates one fails.
    code = main(["verify-backend", "--config", str(_config(tmp_path, live_mock.url)), "--domain", "unknown.example",
                 "--i-accept-side-effects"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  user_lifecycle" in out and "domain" in out.lower()
    failed = int(out.strip().splitlines()[-1].split(", ")[1].split()[0])
    assert failed > 0


def test_refuses_to_start_without_consent(live_mock: LiveMock, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify-backend", "--config", str(_config(tmp_path, live_mock.url)), "--domain", DOMAIN])
    assert code == 2
    assert "--i-accept-side-effects" in capsys.readouterr().err
    assert live_mock.call("GET", "/__mock__/stats")["calls"] == {}


def test_backends_lists_every_installed_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    for name in ("memory", "cleanmail", "dryrun"):
        assert f"\n{name} — " in f"\n{out}"
    assert "SCIM_GATEWAY_CLEANMAIL_URL" in out
