"""Request deadlines, kept by one watcher instead of a timer per request.

``asyncio.timeout()`` schedules and cancels a timer for every request: about 10 µs, 5-7 % of
a filter GET. A deadline of a minute needs no such precision, so one task looks over the
requests in flight a few times per limit (at least once a second) and cancels those past
it; a request then costs a dictionary entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

Task = asyncio.Task[Any]


class Deadlines:
    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._started: dict[Task, float] = {}
        self._cancelled: set[Task] = set()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def interval_s(self) -> float:
        return min(1.0, self.limit_s / 4)

    def enter(self, task: Task) -> None:
        self._started[task] = time.monotonic()

    def expired(self, task: Task) -> bool:
        """Whether the watcher cancelled ``task`` (its CancelledError is then a timeout)."""
        return task in self._cancelled

    def leave(self, task: Task) -> None:
        del self._started[task]
        if task in self._cancelled:
            self._cancelled.discard(task)
            task.uncancel()  # the cancellation was ours and has been answered: the task may go on

    def in_flight(self) -> int:
        return len(self._started)

    def sweep(self) -> None:
        too_old = time.monotonic() - self.limit_s
        for task, started in list(self._started.items()):
            if started <= too_old and task not in self._cancelled:
                self._cancelled.add(task)
                task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.sweep()

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
