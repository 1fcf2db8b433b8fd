"""Write timestamps: SCIM's millisecond UTC form, and the current time, not a stale one."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from gateway.clock import now_iso


def test_now_iso_is_millisecond_utc_with_z() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now_iso())


def test_now_iso_follows_the_clock() -> None:
    first = now_iso()
    time.sleep(0.003)
    second = now_iso()
    assert second > first
    parsed = datetime.fromisoformat(second.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 1
