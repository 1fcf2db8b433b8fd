"""Random identifiers: resource ids, journal entries, request ids."""

from __future__ import annotations

import os
import uuid


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical 36-character form."""
    return str(uuid.uuid4())


def new_hex_id() -> str:
    """128 random bits as 32 hex digits (every request takes one: uuid4 builds a UUID object first, 5x slower)."""
    return os.urandom(16).hex()
