"""HTTP client for Modoboa's REST API v2: token auth, pacing, retries, and its error shapes.

What is retried, from the point of view of "may this call have been applied?":

* never sent (connect refused or timed out), or refused unprocessed (429 with Retry-After):
  retried for every method, after the Retry-After Modoboa gave;
* sent, outcome unknown (read timeout, reset connection, HTTP 5xx, which Modoboa answers
  with an HTML page): retried only for GET, PUT, PATCH and DELETE. The adapter's PATCHes
  set absolute values on an object addressed by its primary key (a whole recipient list,
  ``is_active``, a new ``username``), so sending one twice changes nothing more. A POST
  (a new account, alias or domain) is never repeated: ``Unavailable(may_apply=True)`` at
  once, and the gateway re-reads by address;
* answered with a verdict (4xx with a JSON body): mapped to a domain error, never retried.

Modoboa's errors are not uniform, so the client keeps what the adapter needs to decide:
``FieldErrors`` (400 ``{"field": ["message"]}``), ``DomainMissing`` (404 ``No Domain matches``
on accounts, 400 ``Domain not found.`` on aliases), ``PageMissing`` (404 ``Invalid page.``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from yarl import URL

from adapters import telemetry
from adapters.base import NotFound, RateLimited, Rejected, Unavailable
from adapters.modoboa.pacing import Pacer, Rates, TooLong
from adapters.retry import MIN_ATTEMPT_S, Retryable, RetryPolicy

log = logging.getLogger(__name__)

API_PREFIX = ("api", "v2")
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
_NUMBER = re.compile(r"^\d+$")


DEFAULT_POLICY = RetryPolicy(attempt_timeout=10.0, connect_timeout=3.0, deadline=25.0)
"""Modoboa hashes a password on every account create: slower calls than most platforms'."""


@dataclass
class ClientStats:
    calls: int = 0
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    """429 answers from Modoboa (the pacing should keep this near 0)."""
    paced: int = 0
    """Calls held back by the pacing so as not to trip Modoboa's throttle."""
    paced_ms: int = 0
    timeouts: int = 0
    ambiguous: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FieldErrors(Rejected):
    """Modoboa's validation answer: HTTP 400 with ``{"field": ["message", …]}``."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in self.errors.items()))

    def says(self, field: str, *fragments: str) -> bool:
        """Whether ``field`` has a message containing one of ``fragments`` (case-insensitively)."""
        return any(f.lower() in m.lower() for m in self.errors.get(field, []) for f in fragments)


class DomainMissing(Rejected):
    """The mail domain of an address does not exist in Modoboa (or the token cannot see it)."""


class PageMissing(NotFound):
    """A list page past the last one."""


class _DeletedMeanwhile(Exception):
    """A retried DELETE found nothing left: an earlier attempt of it did the job."""


@dataclass
class _Call:
    method: str
    path: str
    pattern: str
    retry_safe: bool
    deadline_at: float
    maybe_applied: bool = False


def _pattern(segments: Sequence[str]) -> str:
    """Modoboa's throttle key for a path: its URL pattern, e.g. ``accounts/{pk}``."""
    return "/".join("{pk}" if _NUMBER.match(s) else s for s in segments)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("detail", "error", "status"):
            if isinstance(body.get(key), str):
                return str(body[key])
        return _dumps(body)[:300]
    return str(body)[:300]


class ModoboaClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        policy: RetryPolicy | None = None,
        rates: Rates | None = None,
        max_concurrency: int = 4,
        verify_tls: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        url = URL(base_url)
        parts = [p for p in url.path.split("/") if p]
        if tuple(parts[-2:]) == API_PREFIX:
            parts = parts[:-2]
        self.root = url.with_path("/" + "/".join(parts)).with_query(None)
        self._token = token
        self.policy = policy or DEFAULT_POLICY
        self.pacer = Pacer(rates or Rates())
        self._slots = asyncio.Semaphore(max_concurrency)
        self._pool_limit = max_concurrency
        self._verify_tls = verify_tls
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self.stats = ClientStats()
        self.sent: Counter[str] = Counter()
        """Requests sent, by method and URL pattern (``"GET accounts"``, ``"PATCH aliases/{pk}"``)."""

    def __repr__(self) -> str:
        return f"ModoboaClient({str(self.root)!r})"

    async def start(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        connector = aiohttp.TCPConnector(limit=self._pool_limit, keepalive_timeout=15,
                                         ssl=self._verify_tls)
        self._session = aiohttp.ClientSession(
            connector=connector,
            json_serialize=_dumps,
            headers={"Authorization": f"Token {self._token}", "Accept": "application/json",
                     "User-Agent": "scim-mail-gateway"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, segments: Sequence[str]) -> URL:
        """``/api/v2/<segments>/`` below the root; Django wants the trailing slash."""
        path = "/".join([*(p for p in self.root.path.split("/") if p), *API_PREFIX, *segments])
        return self.root.with_path(f"/{path}/", encoded=False)

    # --- public calls ---------------------------------------------------------------------

    async def request(
        self,
        method: str,
        segments: Sequence[str],
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        deadline: float | None = None,
    ) -> Any:
        """One logical call: the parsed JSON answer (None for 204), or a domain error."""
        if self._session is None:
            await self.start()
        loop = asyncio.get_running_loop()
        url = self.url(segments)
        call = _Call(method=method, path=url.path, pattern=_pattern(segments), retry_safe=method in SAFE_METHODS,
                     deadline_at=loop.time() + (self.policy.deadline if deadline is None else deadline))
        self.stats.calls += 1
        retrying = AsyncRetrying(
            stop=lambda state: self.policy.should_stop(state, call.deadline_at),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            before_sleep=lambda state: self._before_sleep(state, call),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(call, url, params, body)
        except Retryable as failed:
            self.stats.failures += 1
            raise failed.final from None
        except _DeletedMeanwhile:
            return None
        except Exception:
            self.stats.failures += 1
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def get(self, *segments: str, params: Mapping[str, str | int] | None = None,
                  deadline: float | None = None) -> Any:
        return await self.request("GET", segments, params=params, deadline=deadline)

    # --- retry plumbing -------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        hint = failure.retry_after if isinstance(failure, Retryable) else None
        return self.policy.backoff(state.attempt_number, self._rng, hint)

    def _before_sleep(self, state: RetryCallState, call: _Call) -> None:
        self.stats.retries += 1
        telemetry.note_retry()
        failure = state.outcome.exception() if state.outcome else None
        log.info("modoboa %s %s failed (%s); attempt %d in %.2fs", call.method, call.path, failure,
                 state.attempt_number + 1, state.upcoming_sleep)

    async def _admit(self, call: _Call) -> None:
        # A request goes out only with a whole attempt's time left: one cut short by the
        # deadline would leave a write's outcome unknown for no reason.
        remaining = call.deadline_at - asyncio.get_running_loop().time() - self.policy.attempt_timeout
        waited_before = self.pacer.waited_s
        try:
            await self.pacer.admit(call.pattern, call.method not in ("GET", "HEAD"), max(0.0, remaining))
        except TooLong as slow:
            # Nothing was sent: the caller may come back after the wait.
            raise RateLimited(f"Modoboa's request budget for this API token is used up for now "
                              f"({call.method} {call.pattern})", retry_after=max(1.0, slow.wait)) from None
        if self.pacer.waited_s > waited_before:
            self.stats.paced += 1
            self.stats.paced_ms += round((self.pacer.waited_s - waited_before) * 1000)

    async def _attempt(self, call: _Call, url: URL, params: Mapping[str, str | int] | None, body: Any) -> Any:
        assert self._session is not None
        async with self._slots:
            await self._admit(call)
            remaining = call.deadline_at - asyncio.get_running_loop().time()
            budget = max(MIN_ATTEMPT_S, min(self.policy.attempt_timeout, remaining))
            timeout = aiohttp.ClientTimeout(total=budget, connect=min(self.policy.connect_timeout, budget))
            telemetry.spend()
            self.stats.attempts += 1
            self.sent[f"{call.method} {call.pattern}"] += 1
            try:
                async with self._session.request(call.method, url, params=params, json=body,
                                                 timeout=timeout, allow_redirects=False) as response:
                    raw = await response.read()
                    status, headers = response.status, response.headers
            except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as err:
                # Nothing reached Modoboa, so even a create may be sent again.
                raise Retryable(Unavailable(f"cannot connect to Modoboa at {self.root}: {err}")) from err
            except TimeoutError as err:
                self.stats.timeouts += 1
                raise self._unknown_outcome(call, f"no answer from Modoboa within {budget:.1f}s") from err
            except aiohttp.ClientError as err:
                raise self._unknown_outcome(call, f"the connection to Modoboa failed: {err!r}") from err
        json_answer = "json" in headers.get("Content-Type", "")
        return self._interpret(call, status, headers.get("Retry-After"), raw, json_answer)

    def _unknown_outcome(self, call: _Call, detail: str, retry_after: float | None = None) -> Exception:
        """What to raise when a request was sent but its effect is unknown."""
        hint = retry_after if retry_after is not None else self.policy.fallback_retry_after
        if call.retry_safe:
            call.maybe_applied = True
            return Retryable(Unavailable(detail, retry_after=hint), retry_after)
        self.stats.ambiguous += 1
        return Unavailable(f"{detail}; the {call.method} may have been applied", retry_after=hint, may_apply=True)

    # --- answers --------------------------------------------------------------------------

    def _interpret(self, call: _Call, status: int, retry_after: str | None, raw: bytes, json_answer: bool) -> Any:
        body: Any = None
        if json_answer and raw.strip():
            try:
                body = orjson.loads(raw)
            except ValueError:
                json_answer = False
        if status == 429:
            self.stats.rate_limited += 1
            wait = _seconds(retry_after)
            self.pacer.pause(call.pattern, wait if wait is not None else 1.0)
            hint = wait if wait is not None else self.policy.fallback_retry_after
            raise Retryable(RateLimited(f"Modoboa throttled the gateway's token: {_message(body)}",
                                         retry_after=hint), wait if wait is not None else 1.0)
        if status >= 500:
            # Modoboa's server errors are HTML pages: the status is all there is to tell.
            kind = "a JSON error" if json_answer else "an HTML error page"
            detail = f"Modoboa answered HTTP {status} ({kind}) to {call.method} {call.pattern}"
            raise self._unknown_outcome(call, detail, _seconds(retry_after))
        if status == 401:
            # The gateway's configuration is wrong, not the SCIM client's request.
            raise Unavailable(f"Modoboa refused the gateway's API token: {_message(body)}")
        if 200 <= status < 300:
            if status == 204 or not raw.strip():
                return None
            if body is None:
                raise self._unknown_outcome(call, f"Modoboa sent a reply that is not JSON (HTTP {status}); "
                                                  f"is {self.root} Modoboa's address?")
            return body
        if not json_answer:
            raise Unavailable(f"{call.method} {call.path} is not a Modoboa API endpoint (HTTP {status}, "
                              f"not JSON); check the Modoboa URL")
        self._raise_verdict(call, status, body)

    def _raise_verdict(self, call: _Call, status: int, body: Any) -> None:
        message = _message(body)
        if status == 404:
            if message == "Invalid page.":
                raise PageMissing("no such page")
            if message.startswith("No Domain matches"):
                raise DomainMissing("the mail domain does not exist in Modoboa")
            if isinstance(body, dict) and "error" in body:
                # e.g. an alias recipient that is neither a local mailbox nor an alias.
                raise Rejected(f"Modoboa: {message}")
            if call.method == "DELETE" and call.maybe_applied:
                raise _DeletedMeanwhile
            raise NotFound(f"{call.pattern}: {message}")
        if status == 400 and isinstance(body, dict):
            errors = {str(k): _messages(v) for k, v in body.items()}
            if any("Domain not found." in m for m in errors.get("address", [])):
                raise DomainMissing("the mail domain does not exist in Modoboa")
            raise FieldErrors(errors)
        if status == 403:
            raise Rejected(f"Modoboa does not let the gateway's API token do this ({call.method} {call.pattern}): "
                           f"{message}", status=403)
        raise Rejected(f"Modoboa refused {call.method} {call.pattern} (HTTP {status}): {message}")


def page_rows(reply: Any) -> tuple[list[dict[str, Any]], int, bool]:
    """(rows, count, has_next) of one page of a Modoboa listing."""
    if not isinstance(reply, dict) or not isinstance(reply.get("results"), list):
        raise Unavailable("Modoboa sent a malformed list page")
    rows = [r for r in reply["results"] if isinstance(r, dict)]
    return rows, int(reply.get("count") or 0), bool(reply.get("next"))


def _messages(value: Any) -> list[str]:
    if isinstance(value, list):
        return [_message(v) if not isinstance(v, str) else v for v in value]
    if isinstance(value, dict):
        return [f"{k}: {' '.join(_messages(v))}" for k, v in value.items()]
    return [str(value)]


def _seconds(value: str | None) -> float | None:
    """Modoboa's Retry-After: whole seconds."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
