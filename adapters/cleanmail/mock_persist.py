"""Keeps the mock's data in a JSON file across restarts.

Writes are debounced: a burst of changes costs one write ``delay`` seconds after the
first of them, and the last state is flushed on shutdown. The snapshot is taken on
the event loop (so it is consistent), then encoded and written from a worker thread to
a temporary file in the same directory, then renamed over the target, so a crash mid-write
leaves the previous file intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a mock data file")
    return data


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Persistence:
    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]], delay: float = 0.2) -> None:
        self.path = path
        self._snapshot = snapshot
        self._delay = delay
        self._dirty = False
        self._pending: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def mark_dirty(self) -> None:
        self._dirty = True
        if self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # changes made before the server runs are written by the final flush
        self._pending = loop.call_later(self._delay, self._spawn_flush)

    def _spawn_flush(self) -> None:
        self._pending = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        async with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            # The snapshot shares only immutable values with the live data, so the
            # worker thread may encode it while handlers keep changing the store.
            snapshot = self._snapshot()
            try:
                await asyncio.to_thread(write_atomic, self.path, snapshot)
            except OSError:
                self._dirty = True
                log.exception("could not write mock data to %s", self.path)

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()
