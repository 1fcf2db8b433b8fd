"""Transport faults for the contract kit: a TCP proxy between an adapter and its platform.

Protocol-agnostic (HTTP, PostgreSQL, MySQL, LDAP alike), so every network backend can be
checked for what the gateway relies on most: a call that never reached the platform is
reported as such, and a write whose answer was lost says it *may* have been applied.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal, Protocol, runtime_checkable

Mode = Literal["pass", "refuse", "lose_answers"]
CHUNK = 65536


@runtime_checkable
class TransportFaults(Protocol):
    async def refuse(self) -> None:
        """From now on new connections are refused: nothing reaches the platform."""

    async def lose_answers(self) -> None:
        """From now on requests reach the platform but its answers never come back."""

    async def heal(self) -> None:
        """Back to normal."""


class TcpFaultProxy:
    """Listens on 127.0.0.1 and forwards to ``target_host:target_port``, with faults on demand.

    Point the adapter at ``proxy.host:proxy.port`` instead of the platform.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = "127.0.0.1"
        self.port = 0
        self.mode: Mode = "pass"
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop_connections()

    async def __aenter__(self) -> TcpFaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def refuse(self) -> None:
        self.mode = "refuse"
        if self._server is not None:
            # Closed listener: a connect now fails at once, before any byte is sent.
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def lose_answers(self) -> None:
        self.mode = "lose_answers"

    async def heal(self) -> None:
        self.mode = "pass"
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def _drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            client_writer.close()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, server_writer))
        upstream = asyncio.create_task(self._pipe(client_reader, server_writer, answers=False))
        downstream = asyncio.create_task(self._pipe(server_reader, client_writer, answers=True))
        self._links.update((upstream, downstream))
        try:
            await asyncio.wait((upstream, downstream), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upstream, downstream):
                task.cancel()
                self._links.discard(task)
            for writer in (client_writer, server_writer):
                writer.close()
                self._writers.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return
                if answers and self.mode == "lose_answers":
                    continue  # the platform answered; the client never hears it
                writer.write(data)
                await writer.drain()
