"""Process-local keyed locks (the stores that serve a single process use these)."""

from __future__ import annotations

import asyncio
from types import TracebackType


class KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    def hold(self, key: object) -> _Held:
        return _Held(self, key)

    def _join(self, key: object) -> asyncio.Lock:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        return lock

    def _leave(self, key: object) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)


class _Held:
    """``async with locks.hold(key)``: a class rather than a generator, as every write takes one."""

    __slots__ = ("_key", "_lock", "_owner")

    def __init__(self, owner: KeyedLocks, key: object) -> None:
        self._owner = owner
        self._key = key
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        lock = self._owner._join(self._key)
        try:
            await lock.acquire()
        except BaseException:  # cancelled while waiting: no longer a user of the lock
            self._owner._leave(self._key)
            raise
        self._lock = lock

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._lock is not None
        self._lock.release()
        self._owner._leave(self._key)
