"""Random ids: the shape uuid4 has, unique, and never repeated across a fork."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from gateway import ids

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_new_uuid_is_a_version_4_uuid() -> None:
    for _ in range(2000):
        value = ids.new_uuid()
        assert UUID4.match(value), value
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_are_unique_across_buffer_refills() -> None:
    many = [ids.new_uuid() for _ in range(5000)] + [ids.new_hex_id() for _ in range(5000)]
    assert len(set(many)) == len(many)
    assert all(re.fullmatch(r"[0-9a-f]{32}", h) for h in many[5000:])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_repeat_the_parents_ids() -> None:
    ids.new_hex_id()  # the parent now holds unused random bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write_end, ids.new_hex_id().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.waitpid(pid, 0)
    os.close(read_end)
    assert child != ids.new_hex_id()
