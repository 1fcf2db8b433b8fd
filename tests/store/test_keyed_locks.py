"""Process-local keyed locks: exclusion per key, and nothing left behind by waiters that give up."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store.locks import KeyedLocks


async def test_same_key_excludes_other_keys_do_not() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, tag: str) -> None:
        async with locks.hold(key):
            order.append(f"{tag}+")
            await asyncio.sleep(0.01)
            order.append(f"{tag}-")

    await asyncio.gather(hold("a", "1"), hold("a", "2"), hold("b", "3"))
    assert order.index("1-") < order.index("2+")
    assert order.index("3+") < order.index("1-")
    assert locks._locks == {}


async def test_cancelled_waiter_and_failing_holder_leave_no_lock_behind() -> None:
    locks = KeyedLocks()
    entered = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            entered.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("boom")

    async def waiter() -> None:
        async with locks.hold("k"):
            pytest.fail("the waiter was cancelled before it got the lock")

    held = asyncio.create_task(holder())
    await entered.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(RuntimeError):
        await held
    assert locks._locks == {}
    async with locks.hold("k"):  # and the key is usable again
        pass
