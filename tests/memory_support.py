"""Measuring what each stored item costs in memory (tracemalloc), for the compactness guards."""

from __future__ import annotations

import tracemalloc
from collections.abc import Awaitable, Callable


async def bytes_per_call(count: int, call: Callable[[int], Awaitable[object]]) -> float:
    """Bytes still allocated after ``call(0)`` … ``call(count - 1)``, per call."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            await call(i)
        return (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
