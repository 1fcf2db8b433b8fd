"""The pacing mirrors Modoboa's throttle windows, in virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import Any

import pytest

from adapters.modoboa.pacing import WINDOW_MARGIN, Pacer, Rates, TooLong

WRITE_WINDOW = 1.0 * (1 + WINDOW_MARGIN)
MINUTE = 60.0 * (1 + WINDOW_MARGIN)


class VirtualTime:
    """A clock that jumps to the next sleeper's wake-up once every task is waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    async def run(self, *jobs: Awaitable[Any]) -> list[Any]:
        tasks = [asyncio.ensure_future(job) for job in jobs]
        while not all(t.done() for t in tasks):
            for _ in range(20):
                await asyncio.sleep(0)
            if self._sleepers and not all(t.done() for t in tasks):
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)
        return [t.result() for t in tasks]


def pacer(time: VirtualTime, **rates: int) -> Pacer:
    values = {"requests_per_minute": 0, "writes_per_second": 0, "reads_per_minute": 0, **rates}
    return Pacer(Rates(**values), clock=time.clock, sleep=time.sleep)


async def stamps(time: VirtualTime, pace: Pacer, requests: list[tuple[str, bool]]) -> list[float]:
    """When each request (pattern, is_write) is let through, sent one after the other."""
    sent: list[float] = []
    for pattern, write in requests:
        await time.run(pace.admit(pattern, write, 1000.0))
        sent.append(time.now)
    return sent


async def test_writes_to_one_pattern_wait_for_the_one_second_window() -> None:
    time = VirtualTime()
    pace = pacer(time, writes_per_second=5)
    sent = await stamps(time, pace, [("accounts", True)] * 11)
    assert sent[:5] == [0.0] * 5
    assert sent[5:10] == [pytest.approx(WRITE_WINDOW)] * 5
    assert sent[10] == pytest.approx(2 * WRITE_WINDOW)
    assert pace.waits == 2  # the 6th and the 11th; the ones after each found the window empty


async def test_reads_and_writes_of_a_pattern_share_one_history() -> None:
    time = VirtualTime()
    pace = pacer(time, writes_per_second=5, reads_per_minute=200)
    sent = await stamps(time, pace, [("accounts", False)] * 5 + [("accounts", True)])
    # Five searches fill the write window of /accounts/: the create waits for them to age out.
    assert sent == [0.0] * 5 + [pytest.approx(WRITE_WINDOW)]


async def test_patterns_are_paced_apart() -> None:
    time = VirtualTime()
    pace = pacer(time, writes_per_second=5)
    sent = await stamps(time, pace, [("accounts", True)] * 5 + [("aliases", True)] * 5 + [("accounts/{pk}", True)])
    assert sent == [0.0] * 11


async def test_reads_of_a_pattern_are_held_to_their_minute_window() -> None:
    time = VirtualTime()
    pace = pacer(time, reads_per_minute=200)
    sent = await stamps(time, pace, [("aliases", False)] * 201)
    assert sent[199] == 0.0
    assert sent[200] == pytest.approx(MINUTE)


async def test_the_token_budget_spans_every_pattern() -> None:
    time = VirtualTime()
    pace = pacer(time, requests_per_minute=300)
    patterns = ["accounts", "aliases", "domains"]
    sent = await stamps(time, pace, [(patterns[i % 3], False) for i in range(301)])
    assert sent[299] == 0.0
    assert sent[300] == pytest.approx(MINUTE)


async def test_a_waiting_write_is_not_overtaken_by_reads_behind_it() -> None:
    time = VirtualTime()
    pace = pacer(time, writes_per_second=5, reads_per_minute=200)
    order: list[str] = []

    async def send(label: str, write: bool) -> None:
        await pace.admit("accounts", write, 1000.0)
        order.append(label)

    await time.run(*(send(f"read{i}", False) for i in range(5)))
    await time.run(send("write", True), *(send(f"late{i}", False) for i in range(3)))
    assert order[5:] == ["write", "late0", "late1", "late2"]


async def test_a_wait_longer_than_allowed_is_refused_and_not_counted() -> None:
    time = VirtualTime()
    pace = pacer(time, writes_per_second=1)
    await time.run(pace.admit("accounts", True, 10.0))
    with pytest.raises(TooLong) as refused:
        await time.run(pace.admit("accounts", True, 0.5))
    assert refused.value.wait == pytest.approx(WRITE_WINDOW)
    # The refused request left no trace: the next one waits for the first alone.
    await time.run(pace.admit("accounts", True, 10.0))
    assert time.now == pytest.approx(WRITE_WINDOW)


async def test_a_throttle_answer_pauses_its_pattern_and_a_long_one_every_pattern() -> None:
    time = VirtualTime()
    pace = pacer(time)
    pace.pause("accounts", 1.0)
    assert await stamps(time, pace, [("aliases", True), ("accounts", True)]) == [0.0, 1.0]
    pace.pause("accounts", 30.0)
    assert await stamps(time, pace, [("aliases", False)]) == [31.0]


async def test_no_rates_no_waiting() -> None:
    time = VirtualTime()
    pace = pacer(time)
    assert await stamps(time, pace, [("accounts", True)] * 1000) == [0.0] * 1000
