"""Request deadlines: one watcher cancels what runs too long, and nothing else."""

from __future__ import annotations

import asyncio

from adapters.base import Filter, Page, UserRecord
from adapters.memory import MemoryAdapter
from gateway.http.app import create_app
from gateway.http.deadlines import Deadlines
from gateway.http.middleware import DEADLINES_KEY
from tests.conftest import AUTH, BASE, ClientFactory, make_settings


class SlowOnce(MemoryAdapter):
    """The first lookup hangs past the deadline; later ones answer at once."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = True

    async def find_users(self, filter: Filter | None, offset: int, limit: int) -> Page[UserRecord]:
        if self.slow:
            self.slow = False
            await asyncio.sleep(5)
        return await super().find_users(filter, offset, limit)


async def test_a_timed_out_request_leaves_its_connection_usable(aiohttp_client: ClientFactory) -> None:
    app = create_app(make_settings(request_timeout=0.2), adapter=SlowOnce())
    client = await aiohttp_client(app, headers=AUTH)
    first = await client.get(f'{BASE}/Users?filter=userName eq "a@x.ch"')
    assert first.status == 503
    assert first.headers["Retry-After"] == "5"
    # The next requests on the same keep-alive connection (the same task) run to the end.
    for _ in range(3):
        again = await client.get(f'{BASE}/Users?filter=userName eq "a@x.ch"')
        assert again.status == 200
        await asyncio.sleep(0.1)  # the watcher looks again: it must find nothing to cancel
    assert app[DEADLINES_KEY].in_flight() == 0


async def test_a_task_that_swallows_the_cancellation_is_left_uncancelled() -> None:
    deadlines = Deadlines(0.05)
    deadlines.start()
    finished = asyncio.Event()

    async def stubborn() -> int:
        task = asyncio.current_task()
        assert task is not None
        deadlines.enter(task)
        try:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                assert deadlines.expired(task)
            await asyncio.sleep(0.1)  # still alive after the deadline's cancellation was answered
            return task.cancelling()
        finally:
            deadlines.leave(task)
            finished.set()

    try:
        assert await asyncio.wait_for(stubborn(), 2) == 1  # cancelled once, by the watcher ...
        await finished.wait()
        assert deadlines.in_flight() == 0  # ... and leave() took that cancellation back
    finally:
        await deadlines.stop()


async def test_requests_within_the_limit_are_never_cancelled() -> None:
    deadlines = Deadlines(0.2)

    async def quick() -> None:
        task = asyncio.current_task()
        assert task is not None
        deadlines.enter(task)
        try:
            await asyncio.sleep(0.01)
        finally:
            deadlines.leave(task)

    deadlines.start()
    try:
        await asyncio.gather(*(quick() for _ in range(50)))
        deadlines.sweep()
        assert deadlines.in_flight() == 0
    finally:
        await deadlines.stop()
