"""``scim-gateway verify-backend`` against the real Modoboa, run as an operator would: a subprocess, env settings."""

from __future__ import annotations

import os
import subprocess
import sys

from adapters.modoboa.adapter import SELF_ALIAS_NOTE
from tests.realservers.modoboa import ModoboaServer

DOMAIN = "kit.example"


def test_verify_backend_passes_and_leaves_nothing_behind(modoboa: ModoboaServer) -> None:
    modoboa.create_domain(DOMAIN)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCIM_GATEWAY_")},
        "SCIM_GATEWAY_TOKEN": "verify-" + "t" * 24,
        "SCIM_GATEWAY_STATE": "memory",
        "SCIM_GATEWAY_BACKEND": "modoboa",
        "SCIM_GATEWAY_LIST_DOMAIN": DOMAIN,
        "SCIM_GATEWAY_MODOBOA_URL": modoboa.url,
        "SCIM_GATEWAY_MODOBOA_TOKEN": modoboa.token,
        # This server's throttle is raised; short budgets keep the transport-fault checks quick.
        "SCIM_GATEWAY_MODOBOA_REQUESTS_PER_MINUTE": "0",
        "SCIM_GATEWAY_MODOBOA_WRITES_PER_SECOND": "0",
        "SCIM_GATEWAY_MODOBOA_READS_PER_MINUTE": "0",
        "SCIM_GATEWAY_MODOBOA_ATTEMPT_TIMEOUT": "2",
        "SCIM_GATEWAY_MODOBOA_DEADLINE": "4",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "verify-backend", "--domain", DOMAIN, "--i-accept-side-effects"],
        env=env, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    lines = out.strip().splitlines()
    assert lines[-1].startswith("verify-backend: ") and lines[-1].endswith(", 0 failed"), lines[-1]
    assert int(lines[-1].removeprefix("verify-backend: ").split()[0]) >= 12
    assert "SKIP" not in out, "the transport-fault checks run through the proxy in front of Modoboa"
    assert f"NOTE  {SELF_ALIAS_NOTE}" in lines
    assert "PASS  lost_answer" in out and "PASS  unreachable" in out
    assert [a["username"] for a in modoboa.list_all("/api/v2/accounts/")] == ["admin"]
    assert modoboa.list_all("/api/v2/aliases/") == []
