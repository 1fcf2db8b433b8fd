"""Two Python LDAP clients against a real, throwaway OpenLDAP slapd: ldap3 (sync, in threads) vs bonsai (asyncio).

    .venv/bin/pip install -q ldap3==2.9.1 bonsai==1.5.5 && .venv/bin/python -m bench.ldap_clients

(slapd and ldap-utils are installed through apt when missing, as the test fixtures do; bonsai has
no Linux wheel and compiles against libldap2-dev and libsasl2-dev.) Options: ``--ops N`` per
operation and concurrency (default 1000), ``--concurrency 1,8``, ``--json FILE``.

Each client does, as the gateway's service account, N adds (inetOrgPerson), N searches by mail
(equality-indexed), N modifies, N password-modify extended operations and N deletes, at each
concurrency. ldap3 runs in a thread pool as large as the concurrency with one bound connection per
thread; bonsai uses its asyncio connection pool of the same size. Reported per operation: ops/s,
p50/p95/p99 latency, CPU per operation in this process and in slapd (which is pinned to one core,
the benchmark to another, when the machine has two). Then each client's behaviour across a server
restart: what the first two searches on an already open connection do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tests.realservers.slapd import DEBCONF, PACKAGES, Slapd
from tests.realservers.support import apt_install

OPERATIONS = ("add", "search_mail", "modify", "password_modify", "delete")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Client(Protocol):
    name: str

    async def open(self, concurrency: int) -> None: ...
    async def close(self) -> None: ...
    async def add(self, dn: str, attributes: dict[str, Any]) -> None: ...
    async def find_by_mail(self, base: str, mail: str) -> str | None: ...
    async def replace(self, dn: str, attribute: str, value: str) -> None: ...
    async def set_password(self, dn: str, password: str) -> None: ...
    async def delete(self, dn: str) -> None: ...


class Ldap3Client:
    """ldap3's synchronous strategy: one bound connection per worker thread, borrowed from a queue."""

    name = "ldap3"

    def __init__(self, url: str, bind_dn: str, password: str, strategy: str = "SYNC") -> None:
        self._url, self._bind_dn, self._password, self._strategy = url, bind_dn, password, strategy
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None

    def _connect(self) -> Any:
        import ldap3

        # get_info=NONE: the default (SCHEMA) reads the whole schema on every new connection.
        server = ldap3.Server(self._url, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(
            server,
            self._bind_dn,
            self._password,
            client_strategy=getattr(ldap3, self._strategy),
            auto_bind=ldap3.AUTO_BIND_NO_TLS,
            raise_exceptions=True,
            receive_timeout=10,
        )

    async def open(self, concurrency: int) -> None:
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="ldap3")
        asyncio.get_running_loop().set_default_executor(self._executor)  # what asyncio.to_thread uses
        for _ in range(concurrency):
            self._idle.put_nowait(await asyncio.to_thread(self._connect))

    async def close(self) -> None:
        while not self._idle.empty():
            connection = self._idle.get_nowait()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(connection.unbind)

    async def _run(self, work: Callable[[Any], Any]) -> Any:
        connection = await self._idle.get()
        try:
            return await asyncio.to_thread(work, connection)
        finally:
            self._idle.put_nowait(connection)

    async def add(self, dn: str, attributes: dict[str, Any]) -> None:
        await self._run(lambda c: c.add(dn, attributes=attributes))

    async def find_by_mail(self, base: str, mail: str) -> str | None:
        def search(connection: Any) -> str | None:
            connection.search(base, f"(mail={mail})", attributes=["mail", "uid", "cn", "entryUUID"])
            return connection.response[0]["dn"] if connection.response else None

        return await self._run(search)  # type: ignore[no-any-return]

    async def replace(self, dn: str, attribute: str, value: str) -> None:
        import ldap3

        await self._run(lambda c: c.modify(dn, {attribute: [(ldap3.MODIFY_REPLACE, [value])]}))

    async def set_password(self, dn: str, password: str) -> None:
        await self._run(lambda c: c.extend.standard.modify_password(dn, None, password))

    async def delete(self, dn: str) -> None:
        await self._run(lambda c: c.delete(dn))


def _reader_only_connection_class() -> type:
    """bonsai's asyncio connection without its write-readiness watch.

    The stock class waits for a result by watching the socket for reading *and* writing; a
    connected socket is always writable, so the loop calls back without pause and a pending
    request costs a full core for as long as the server takes. Watching for reading only is
    enough for small requests on a plain connection (measured here); TLS and requests larger than
    the socket buffer are not covered by this benchmark.
    """
    import bonsai
    from bonsai.asyncio import AIOLDAPConnection
    from bonsai.ldapconnection import BaseLDAPConnection

    class ReaderOnlyConnection(AIOLDAPConnection):  # type: ignore[misc]
        def _ready(self, msg_id: int, future: asyncio.Future[Any]) -> None:
            self._loop.remove_reader(self.fileno())
            try:
                result = BaseLDAPConnection.get_result(self, msg_id)
            except bonsai.LDAPError as error:
                future.set_exception(error)
                return
            if result is not None:
                future.set_result(result)
            else:
                self._loop.add_reader(self.fileno(), self._ready, msg_id, future)

        # bonsai calls _poll(msg_id, timeout): the signature is bonsai's.
        async def _poll(self, msg_id: int, timeout: float | None = None) -> Any:  # noqa: ASYNC109
            future: asyncio.Future[Any] = self._loop.create_future()
            self._loop.add_reader(self.fileno(), self._ready, msg_id, future)
            try:
                return await asyncio.wait_for(future, timeout)
            except BaseException:
                if self.fileno() > -1:
                    self._loop.remove_reader(self.fileno())
                raise

    return ReaderOnlyConnection


class BonsaiClient:
    """bonsai's asyncio connections from its AIOConnectionPool (optionally with the reader-only connection class)."""

    def __init__(self, url: str, bind_dn: str, password: str, reader_only: bool = False) -> None:
        self._url, self._bind_dn, self._password = url, bind_dn, password
        self._reader_only = reader_only
        self.name = "bonsai-reader-only" if reader_only else "bonsai"
        self._pool: Any = None

    async def open(self, concurrency: int) -> None:
        import bonsai
        from bonsai.asyncio import AIOConnectionPool

        client = bonsai.LDAPClient(self._url)
        client.set_credentials("SIMPLE", user=self._bind_dn, password=self._password)
        if self._reader_only:
            client.set_async_connection_class(_reader_only_connection_class())
        self._pool = AIOConnectionPool(client, minconn=concurrency, maxconn=concurrency)
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()

    async def add(self, dn: str, attributes: dict[str, Any]) -> None:
        import bonsai

        entry = bonsai.LDAPEntry(dn)
        for name, value in attributes.items():
            entry[name] = value
        async with self._pool.spawn() as connection:
            await connection.add(entry, timeout=10)

    async def find_by_mail(self, base: str, mail: str) -> str | None:
        import bonsai

        async with self._pool.spawn() as connection:
            found = await connection.search(
                base, bonsai.LDAPSearchScope.SUBTREE, f"(mail={mail})", ["mail", "uid", "cn", "entryUUID"], timeout=10
            )
        return str(found[0].dn) if found else None

    async def replace(self, dn: str, attribute: str, value: str) -> None:
        import bonsai

        async with self._pool.spawn() as connection:
            entry = bonsai.LDAPEntry(dn, connection)
            entry.change_attribute(attribute, bonsai.LDAPModOp.REPLACE, value)
            await entry.modify(timeout=10)

    async def set_password(self, dn: str, password: str) -> None:
        async with self._pool.spawn() as connection:
            await connection.modify_password(dn, password, timeout=10)

    async def delete(self, dn: str) -> None:
        async with self._pool.spawn() as connection:
            await connection.delete(dn, timeout=10)


@dataclass
class Measurement:
    client: str
    concurrency: int
    operation: str
    ops: int
    ops_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    client_cpu_us_per_op: float
    server_cpu_us_per_op: float


def _percentile(sorted_values: list[float], q: float) -> float:
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def _server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


async def _measure(
    client: Client, concurrency: int, operation: str, calls: list[Callable[[], Awaitable[Any]]], slapd_pid: int
) -> Measurement:
    latencies: list[float] = []
    pending = iter(calls)

    async def worker() -> None:
        for call in pending:  # the workers share one iterator: at most `concurrency` calls in flight
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    cpu, server_cpu, wall = time.process_time(), _server_cpu_s(slapd_pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    cpu, server_cpu = time.process_time() - cpu, _server_cpu_s(slapd_pid) - server_cpu
    latencies.sort()
    count = len(latencies)
    return Measurement(
        client=client.name,
        concurrency=concurrency,
        operation=operation,
        ops=count,
        ops_per_s=round(count / wall, 1),
        p50_ms=round(_percentile(latencies, 50) * 1000, 2),
        p95_ms=round(_percentile(latencies, 95) * 1000, 2),
        p99_ms=round(_percentile(latencies, 99) * 1000, 2),
        client_cpu_us_per_op=round(cpu / count * 1e6),
        server_cpu_us_per_op=round(server_cpu / count * 1e6),
    )


async def run_client(client: Client, server: Slapd, concurrency: int, ops: int) -> list[Measurement]:
    await client.open(concurrency)
    prefix = f"{client.name}-c{concurrency}-{os.getpid()}"
    uids = [f"{prefix}-{index}" for index in range(ops)]
    dns = [f"uid={uid},{server.users_dn}" for uid in uids]

    def person(uid: str) -> dict[str, Any]:
        return {
            "objectClass": ["inetOrgPerson"],
            "uid": uid,
            "cn": f"User {uid}",
            "sn": "Benchmark",
            "givenName": "User",
            "displayName": f"User {uid}",
            "mail": f"{uid}@example.org",
        }

    async def find(uid: str) -> None:
        if await client.find_by_mail(server.users_dn, f"{uid.upper()}@EXAMPLE.ORG") is None:
            raise AssertionError(f"{uid} not found by mail")

    plan: dict[str, list[Callable[[], Awaitable[Any]]]] = {
        "add": [lambda dn=dn, uid=uid: client.add(dn, person(uid)) for dn, uid in zip(dns, uids, strict=True)],
        "search_mail": [lambda uid=uid: find(uid) for uid in uids],
        "modify": [lambda dn=dn: client.replace(dn, "displayName", "Renamed User") for dn in dns],
        "password_modify": [lambda dn=dn: client.set_password(dn, "Bench-Passw0rd") for dn in dns],
        "delete": [lambda dn=dn: client.delete(dn) for dn in dns],
    }
    pid = server.pid
    assert pid is not None
    try:
        return [await _measure(client, concurrency, operation, plan[operation], pid) for operation in OPERATIONS]
    finally:
        await client.close()


async def cpu_while_waiting(client: Client, server: Slapd) -> str:
    """CPU this process spends while one request waits three seconds for the server's answer."""
    await client.open(1)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        await client.find_by_mail(server.fault_dn("slow"), "nobody@example.org")
        return f"{time.process_time() - cpu:.2f} s CPU in {time.perf_counter() - wall:.2f} s"
    finally:
        await client.close()


async def restart_behaviour(client: Client, server: Slapd) -> dict[str, str]:
    """What searches on a connection opened before a server restart do (no reconnect logic of our own)."""
    await client.open(1)
    outcome: dict[str, str] = {}
    try:
        await client.find_by_mail(server.users_dn, "nobody@example.org")
        server.restart()
        for attempt in ("first", "second"):
            started = time.perf_counter()
            try:
                await client.find_by_mail(server.users_dn, "nobody@example.org")
                result = "ok"
            except Exception as error:  # the point is to record whatever the library raises
                result = f"{type(error).__module__}.{type(error).__name__}: {str(error)[:90]}"
            outcome[attempt] = f"{result} ({(time.perf_counter() - started) * 1000:.0f} ms)"
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    return outcome


def _pin(server: Slapd) -> str:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or server.pid is None:
        return "not pinned (one core)"
    os.sched_setaffinity(server.pid, {cores[0]})
    os.sched_setaffinity(0, {cores[1]})
    return f"slapd on core {cores[0]}, benchmark on core {cores[1]}"


def _table(results: list[Measurement]) -> str:
    lines = [
        "| client | c | operation | ops/s | p50 ms | p95 ms | p99 ms | client CPU µs/op | slapd CPU µs/op |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m.client} | {m.concurrency} | {m.operation} | {m.ops_per_s:,.0f} | {m.p50_ms} | {m.p95_ms} | "
        f"{m.p99_ms} | {m.client_cpu_us_per_op} | {m.server_cpu_us_per_op} |"
        for m in results
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=1000, help="operations of each kind per client and concurrency")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    arguments = parser.parse_args()
    concurrencies = [int(value) for value in arguments.concurrency.split(",")]

    apt_install("OpenLDAP slapd", PACKAGES, DEBCONF)
    with tempfile.TemporaryDirectory(prefix="bench-slapd-") as workdir:
        server = Slapd(Path(workdir))
        server.configure()
        server.start()
        try:
            pinning = _pin(server)
            credentials = (server.url, server.service_dn, server.service_password)
            factories: list[Callable[[], Client]] = [
                lambda: Ldap3Client(*credentials),
                lambda: BonsaiClient(*credentials),
                lambda: BonsaiClient(*credentials, reader_only=True),
            ]
            results: list[Measurement] = []
            for concurrency in concurrencies:
                # Alternate the order so neither client always meets the warmer server.
                order = factories if concurrency % 2 else list(reversed(factories))
                for factory in order:
                    results += asyncio.run(run_client(factory(), server, concurrency, arguments.ops))
            results.sort(key=lambda m: (m.concurrency, OPERATIONS.index(m.operation), m.client))
            waiting: dict[str, str] = {}
            for factory in factories:
                client = factory()
                waiting[client.name] = asyncio.run(cpu_while_waiting(client, server))
            restarts = {
                "ldap3 (SYNC)": asyncio.run(restart_behaviour(Ldap3Client(*credentials), server)),
                "ldap3 (RESTARTABLE)": asyncio.run(
                    restart_behaviour(Ldap3Client(*credentials, strategy="RESTARTABLE"), server)
                ),
                "bonsai": asyncio.run(restart_behaviour(BonsaiClient(*credentials), server)),
                "bonsai-reader-only": asyncio.run(
                    restart_behaviour(BonsaiClient(*credentials, reader_only=True), server)
                ),
            }
        finally:
            server.stop()
    print(f"slapd {server.url}, {arguments.ops} ops per row, {pinning}\n")
    print(_table(results))
    print("\nOne search answered after three seconds (the server's canned slow answer):")
    for name, outcome in waiting.items():
        print(f"- {name}: {outcome}")
    print("\nAfter a server restart, on a connection opened before it:")
    for name, outcome in restarts.items():
        print(f"- {name}: first search {outcome['first']}; second {outcome['second']}")
    if arguments.json:
        document = {
            "results": [asdict(m) for m in results],
            "cpu_while_waiting": waiting,
            "restart": restarts,
            "pinning": pinning,
        }
        arguments.json.write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
