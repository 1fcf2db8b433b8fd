"""The gateway's contract kit against the jsonfile backend: what every plugin should run."""

from __future__ import annotations

from pathlib import Path

import pytest
from scim_jsonfile import JsonFileAdapter

from adapters.contract import CHECKS, Check, KitSkip, KitTarget


@pytest.fixture
async def target(tmp_path: Path) -> KitTarget:
    adapter = JsonFileAdapter(tmp_path / "mail.json", "{slug}@{domain}", "lists.example.org")
    await adapter.start()
    return KitTarget(adapter, domain="example.org")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.name)
async def test_contract(check: Check, target: KitTarget) -> None:
    try:
        await check.run(target)
    except KitSkip as skip:
        pytest.skip(str(skip))  # the transport-fault checks: a file has no network to fail
