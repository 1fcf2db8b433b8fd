"""Random identifiers: resource ids, journal entries, request ids."""

from __future__ import annotations

import uuid


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical 36-character form."""
    return str(uuid.uuid4())


def new_hex_id() -> str:
    """128 random bits as 32 hex digits."""
    return uuid.uuid4().hex
