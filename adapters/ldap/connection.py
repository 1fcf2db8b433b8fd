"""ldap3 in a bounded thread pool: one bound connection per worker, retries, result codes.

ldap3 is synchronous. Each operation borrows one of ``pool_size`` connections and runs in
the pool's own threads, so at most ``pool_size`` operations are in flight and a slow
directory never blocks the event loop. A connection is opened and bound on first use.

Failure policy, by whether the operation may have been applied:

* **Not sent**: no connection could be opened or bound, sending failed, or the connection
  was found closed by the server before sending (a restart closes every connection; the
  adapter looks before it writes, so a write never lands on a dead socket). Retried for
  every operation, on a new connection.
* **Sent, no answer** (connection cut or timed out while waiting): retried only for
  operations that are safe to repeat (reads, replaces, member edits that recompute from a
  fresh read); otherwise ``Unavailable(may_apply=True)``, so the gateway re-reads instead
  of adding an entry twice. ldap3's RESTARTABLE strategy is not used because it replays
  any operation, writes included, after a reconnect.
* **busy (51) / unavailable (52)**: the server did not perform the operation; retried
  with backoff, then ``Unavailable``.
* **Any other result code**: the directory's verdict, raised as ``LdapResult`` for the
  adapter to interpret (``noSuchObject`` → NotFound …), never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import select
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import ldap3
from ldap3.core import exceptions as ldap_errors
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from adapters import telemetry
from adapters.base import Unavailable
from adapters.retry import Retryable

log = logging.getLogger(__name__)

T = TypeVar("T")

CLIENT_REFUSED = -1
"""Not a result code: ldap3 refused to send a value (a password SASLprep rejects, a malformed DN)."""
SIZE_LIMIT_EXCEEDED = 4
INVALID_CREDENTIALS = 49
BIND_REFUSAL_PAUSE_S = 30.0
NO_SUCH_OBJECT = 32
BUSY = 51
UNAVAILABLE = 52
MIN_ATTEMPT_S = 0.05

# Result codes that say the service account or the connection is set up wrongly: the
# SCIM request is fine, the gateway cannot serve it until an operator acts.
_CONFIGURATION = {
    8: "strongerAuthRequired: the directory wants TLS or a stronger bind (set start_tls or use ldaps://)",
    13: "confidentialityRequired: the directory wants TLS (set start_tls or use ldaps://)",
    48: "inappropriateAuthentication",
    49: "invalidCredentials: check bind_dn and bind_password",
    50: "insufficientAccess: the service account lacks a right it needs (see the README's ACL)",
    10: "referral: this server does not hold the entries (a read-only replica?); point url at a writable one",
    53: "unwillingToPerform",
}


class Safety(Enum):
    """Whether an operation may be sent again when its answer was lost."""

    REPEATABLE = "repeatable"
    """Reads, and writes whose repetition changes nothing (replace, recomputed member edits)."""
    ONCE = "once"
    """Adds, renames, password changes: a lost answer is reported, never retried."""


class LdapResult(Exception):
    """The directory answered with a result code other than success (and not busy/unavailable)."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"{name} ({code}){': ' + message if message else ''}")
        self.code = code
        self.name = name
        self.message = message


@dataclass(frozen=True)
class ConnectionSettings:
    url: str
    bind_dn: str
    bind_password: str
    start_tls: bool = False
    ca_file: Path | None = None
    tls_server_name: str | None = None
    """The name the directory's certificate must carry, when it is not the URL's host."""
    pool_size: int = 8
    timeout: float = 5.0
    """Seconds one operation may wait for its answer."""
    connect_timeout: float = 3.0
    deadline: float = 20.0
    """Seconds one logical call may take, its retries and waits included."""
    max_attempts: int = 4
    backoff_initial: float = 0.1
    backoff_max: float = 2.0


@dataclass
class PoolStats:
    calls: int = 0
    attempts: int = 0
    retries: int = 0
    connects: int = 0
    reconnects: int = 0
    """Connections replaced because the server had closed them or a call on them failed."""
    timeouts: int = 0
    ambiguous: int = 0
    """Writes whose answer was lost and that were reported rather than retried."""
    busy: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Slot:
    """One worker's connection; None until first used or after it was dropped."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection: ldap3.Connection | None = None


@dataclass
class _Call:
    label: str
    safety: Safety
    deadline_at: float
    sent_before: bool = False
    """An earlier attempt was sent and its answer lost."""


def _closed_by_peer(connection: ldap3.Connection, timeout: float) -> bool:
    """Whether the server has closed (or written unasked on) an idle connection, without blocking.

    slapd closes every connection when it stops; reading that before sending keeps a write
    from ever being sent on a dead socket, where its fate would be unknown.
    """
    sock = connection.socket
    if sock is None or connection.closed:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    if not isinstance(sock, ssl.SSLSocket):
        return True  # nothing is due on an idle connection: the end of the stream, or a notice of disconnection
    # With TLS the bytes may be a session ticket, which the TLS layer takes without handing up data.
    sock.setblocking(False)
    try:
        sock.recv(1)
    except ssl.SSLWantReadError:
        return False
    except (ssl.SSLError, OSError):
        return True
    finally:
        sock.settimeout(timeout)
    return True


class LdapPool:
    def __init__(self, settings: ConnectionSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.stats = PoolStats()
        self._rng = rng or random.Random()
        self._executor: ThreadPoolExecutor | None = None
        self._idle: asyncio.LifoQueue[_Slot] | None = None
        self._slots: list[_Slot] = []
        self._binds_refused_until = 0.0
        """After the directory refused the credentials, no bind is tried until then (monotonic)."""
        self._bind_refusal: Unavailable | None = None

    def _make_server(self) -> ldap3.Server:
        """A new Server per connection: ldap3 marks an address dead for 5 s after one refused connect,
        which would outlast a restart."""
        s = self.settings
        tls = None
        if s.url.lower().startswith("ldaps://") or s.start_tls:
            # No version: the standard library's default context (TLS 1.2 or newer); ldap3 checks the host name.
            names = [s.tls_server_name] if s.tls_server_name else None
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(s.ca_file) if s.ca_file else None,
                            valid_names=names, sni=s.tls_server_name)
        # get_info=NONE: the default reads the whole schema on every new connection.
        return ldap3.Server(s.url, get_info=ldap3.NONE, connect_timeout=s.connect_timeout, tls=tls)

    async def start(self) -> None:
        """Open and bind the connections, as far as the directory answers within ``connect_timeout``.

        A directory that is down does not stop the start: its connections are opened on first
        use. Bound connections mean a write is the first thing an operation sends, so a lost
        answer is a lost answer to the write.
        """
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(self.settings.pool_size, thread_name_prefix="ldap")
        self._idle = asyncio.LifoQueue()
        self._slots = [_Slot() for _ in range(self.settings.pool_size)]
        first, *rest = self._slots
        await self._warm_up([first])
        if first.connection is None:
            # Not answering, or refusing the credentials: more binds would only add failed attempts
            # (which a password policy may count towards locking the service account).
            for slot in rest:
                self._idle.put_nowait(slot)
            return
        await self._warm_up(rest)

    async def _warm_up(self, slots: list[_Slot]) -> None:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        warming = []
        for slot in slots:
            future = loop.run_in_executor(self._executor, self._warm, slot)
            # A slot is handed out only once its connection attempt is over.
            future.add_done_callback(functools.partial(self._slot_ready, slot))
            warming.append(future)
        if warming:
            await asyncio.wait(warming, timeout=self.settings.connect_timeout)

    def _slot_ready(self, slot: _Slot, _: object) -> None:
        self._give_back(slot)

    def _warm(self, slot: _Slot) -> None:
        try:
            self._ready_connection(slot)
        except Exception as err:  # the first operation on this slot tries again and reports
            log.info("ldap: no connection to %s at start: %s", self.settings.url, err)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        slots, self._slots = self._slots, []
        await asyncio.get_running_loop().run_in_executor(executor, _unbind_all, slots)
        executor.shutdown(wait=True)
        self._idle = None

    # --- one logical call -----------------------------------------------------------

    async def run(self, label: str, operation: Callable[[ldap3.Connection], T], safety: Safety,
                  *, deadline: float | None = None) -> T:
        """Run ``operation`` on a pooled connection; retry as the module's docstring says."""
        done = await self._run(label, operation, safety, gone_is_done=False, deadline=deadline)
        assert done is not None
        return done[0]

    async def delete(self, label: str, operation: Callable[[ldap3.Connection], object]) -> None:
        """A delete: repeated when its answer was lost, and then noSuchObject means the first one did it."""
        await self._run(label, operation, Safety.REPEATABLE, gone_is_done=True, deadline=None)

    async def _run(self, label: str, operation: Callable[[ldap3.Connection], T], safety: Safety,
                   *, gone_is_done: bool, deadline: float | None) -> tuple[T] | None:
        if self._executor is None:
            await self.start()
        loop = asyncio.get_running_loop()
        budget = self.settings.deadline if deadline is None else deadline
        call = _Call(label, safety, loop.time() + budget)
        self.stats.calls += 1
        retrying = AsyncRetrying(
            stop=lambda state: self._should_stop(state, call),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=lambda state: self._before_sleep(state, call),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return (await self._borrow_and_run(call, operation),)
        except Retryable as failed:
            self.stats.failures += 1
            raise failed.final from None
        except LdapResult as answer:
            if gone_is_done and answer.code == NO_SUCH_OBJECT and call.sent_before:
                return None
            raise
        except Unavailable:
            self.stats.failures += 1
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _borrow_and_run(self, call: _Call, operation: Callable[[ldap3.Connection], T]) -> T:
        assert self._idle is not None and self._executor is not None
        # Here, not in the worker thread: the request's accounting lives in a context variable.
        telemetry.spend()
        slot = await self._idle.get()
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._attempt, slot, call, operation)
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The thread still uses the connection: it goes back to the pool only when done.
            future.add_done_callback(lambda _: self._give_back(slot))
            raise
        except BaseException:
            self._give_back(slot)
            raise
        self._give_back(slot)
        return result

    def _give_back(self, slot: _Slot) -> None:
        if self._idle is not None:
            self._idle.put_nowait(slot)

    # --- in a worker thread ---------------------------------------------------------

    def _attempt(self, slot: _Slot, call: _Call, operation: Callable[[ldap3.Connection], T]) -> T:
        self.stats.attempts += 1
        connection = self._ready_connection(slot)
        try:
            return operation(connection)
        except ldap_errors.LDAPOperationResult as err:
            raise self._verdict(err) from err
        except ldap_errors.LDAPSocketSendError as err:
            self._drop(slot)
            raise Retryable(Unavailable(f"cannot send to the directory: {err}")) from err
        except (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPResponseTimeoutError, OSError) as err:
            self._drop(slot)
            if isinstance(err, ldap_errors.LDAPResponseTimeoutError) or "timed out" in str(err):
                self.stats.timeouts += 1
            raise self._lost_answer(call, f"the directory's answer to {call.label} was lost ({err})") from err
        except ldap_errors.LDAPExceptionError as err:
            raise LdapResult(CLIENT_REFUSED, "not sendable", str(err)) from err

    def _ready_connection(self, slot: _Slot) -> ldap3.Connection:
        """The slot's connection, opened and bound; a connection the server closed is replaced first."""
        if slot.connection is not None and _closed_by_peer(slot.connection, self.settings.timeout):
            self.stats.reconnects += 1
            self._drop(slot)
        if slot.connection is None:
            slot.connection = self._connect()
        return slot.connection

    def _connect(self) -> ldap3.Connection:
        s = self.settings
        if self._bind_refusal is not None and time.monotonic() < self._binds_refused_until:
            # Every bind with wrong credentials counts towards a password policy's lockout of the account.
            raise self._bind_refusal
        connection = ldap3.Connection(
            self._make_server(), s.bind_dn, s.bind_password, client_strategy=ldap3.SYNC, auto_bind=ldap3.AUTO_BIND_NONE,
            raise_exceptions=True, read_only=False,
        )
        try:
            connection.open()
            # Set here rather than as ldap3's receive_timeout, which takes whole seconds only.
            connection.socket.settimeout(s.timeout)
            if s.start_tls:
                connection.start_tls()
            connection.bind()
        except ldap_errors.LDAPOperationResult as err:
            _quietly_unbind(connection)
            verdict = self._verdict(err, binding=True)
            if isinstance(verdict, Unavailable) and err.result == INVALID_CREDENTIALS:
                self._bind_refusal = verdict
                self._binds_refused_until = time.monotonic() + BIND_REFUSAL_PAUSE_S
            raise verdict from err
        except (ldap_errors.LDAPException, OSError) as err:
            _quietly_unbind(connection)
            # Nothing of the caller's operation was sent yet: any operation may try again.
            raise Retryable(Unavailable(f"cannot connect to the directory at {s.url}: {err}")) from err
        self.stats.connects += 1
        return connection

    def _drop(self, slot: _Slot) -> None:
        if slot.connection is not None:
            _quietly_unbind(slot.connection)
            slot.connection = None

    def _verdict(self, err: ldap_errors.LDAPOperationResult, binding: bool = False) -> Exception:
        code = int(err.result or 0)
        name = str(err.description or "result")
        message = str(err.message or "").strip()
        if code in (BUSY, UNAVAILABLE):
            self.stats.busy += 1
            # The server did not perform the operation: any operation may be sent again.
            return Retryable(Unavailable(f"the directory is {name} ({code}){': ' + message if message else ''}",
                                          retry_after=1.0))
        if code in _CONFIGURATION:
            what = "bind as bind_dn" if binding else "operation"
            return Unavailable(f"the directory refused the {what}: {_CONFIGURATION[code]}"
                               f"{' (' + message + ')' if message else ''}")
        return LdapResult(code, name, message)

    def _lost_answer(self, call: _Call, detail: str) -> Exception:
        if call.safety is Safety.REPEATABLE:
            call.sent_before = True
            return Retryable(Unavailable(detail))
        self.stats.ambiguous += 1
        return Unavailable(f"{detail}; it may have been applied", may_apply=True)

    # --- retry plumbing -------------------------------------------------------------

    def _should_stop(self, state: RetryCallState, call: _Call) -> bool:
        if state.attempt_number >= self.settings.max_attempts:
            return True
        starts_at = asyncio.get_running_loop().time() + state.upcoming_sleep
        return starts_at > call.deadline_at - MIN_ATTEMPT_S

    def _wait(self, state: RetryCallState) -> float:
        s = self.settings
        if state.attempt_number == 1:
            failure = state.outcome.exception() if state.outcome else None
            if isinstance(failure, Retryable) and failure.final.retry_after is None:
                return 0.0  # a connection found dead: a fresh one is worth trying at once
        ceiling = min(s.backoff_max, s.backoff_initial * 2 ** min(state.attempt_number - 1, 30))
        return self._rng.uniform(0, ceiling)

    def _before_sleep(self, state: RetryCallState, call: _Call) -> None:
        self.stats.retries += 1
        telemetry.note_retry()
        failure = state.outcome.exception() if state.outcome else None
        log.info("ldap %s failed (%s); attempt %d in %.2fs", call.label, failure, state.attempt_number + 1,
                 state.upcoming_sleep)


def _quietly_unbind(connection: ldap3.Connection) -> None:
    with contextlib.suppress(Exception):
        connection.unbind()


def _unbind_all(slots: list[_Slot]) -> None:
    for slot in slots:
        if slot.connection is not None:
            _quietly_unbind(slot.connection)
            slot.connection = None


def truncated(connection: ldap3.Connection) -> bool:
    """Whether the server cut the last search short (ldap3 does not raise for sizeLimitExceeded)."""
    return bool((connection.result or {}).get("result") == SIZE_LIMIT_EXCEEDED)


def entries(connection: ldap3.Connection) -> list[tuple[str, dict[str, list[str]]]]:
    """The entries of the last search on ``connection``: DN and attributes (names lower-cased)."""
    if truncated(connection):
        # A truncated listing must not pass for a whole one.
        raise Unavailable("the directory cut a search short (sizeLimitExceeded): give the service account "
                          "'limits dn.exact=\"<bind_dn>\" size=unlimited' (see the README)")
    found = []
    for item in connection.response or []:
        if item.get("type") != "searchResEntry":
            continue
        attributes: dict[str, list[str]] = {}
        for name, values in (item.get("attributes") or {}).items():
            listed: list[Any] = values if isinstance(values, list) else [values]
            attributes[name.lower()] = [v.decode() if isinstance(v, bytes) else str(v) for v in listed]
        found.append((str(item["dn"]), attributes))
    return found
