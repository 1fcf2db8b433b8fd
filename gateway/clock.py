"""Timestamps as SCIM writes them (``meta.created``, ``lastModified``, journal entries)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_last: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The current UTC time, e.g. ``2026-11-26T17:05:09.123Z``.

    Every write stamps one or two of these; within one millisecond the string is reused
    instead of formatted again.
    """
    global _last
    ms = time.time_ns() // 1_000_000
    if ms != _last[0]:
        stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        _last = (ms, stamp)
    return _last[1]
