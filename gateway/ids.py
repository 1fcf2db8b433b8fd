"""Random identifiers (resource ids, journal entries, request ids) without a syscall each.

``uuid.uuid4()`` asks the kernel for 16 random bytes on every call; under load that was
several µs per id on the request path. Here the kernel's randomness is drawn in blocks
and sliced, so ids stay as unpredictable and unique as uuid4's.
"""

from __future__ import annotations

import os
import threading

_BLOCK = 16 * 256


class _RandomBytes:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also after a fork: the child must neither reuse the parent's unused bytes nor inherit
        # a lock that another of the parent's threads held at that moment.
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take16(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer = os.urandom(_BLOCK)
                self._offset = 0
            start = self._offset
            self._offset = start + 16
            return self._buffer[start:start + 16]


_random = _RandomBytes()
os.register_at_fork(after_in_child=_random._reset)


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical 36-character form."""
    raw = bytearray(_random.take16())
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_hex_id() -> str:
    """128 random bits as 32 hex digits."""
    return _random.take16().hex()
