"""HTTP client for the Cleanmail-like admin API: retries, deadlines and error mapping.

Failure policy, from the point of view of "may this call have been applied?":

* never sent (connect refused / connect timeout) or refused unprocessed (429): retried
  for every method;
* sent, outcome unknown (read timeout, connection reset, 5xx): retried only when the
  call is safe to repeat (GET, PUT, DELETE, and calls the caller marks ``retry_safe``);
  otherwise ``Unavailable(may_apply=True)`` at once, so the caller re-reads by address
  instead of risking a second mailbox;
* answered with a verdict (4xx, or any status with an error body): mapped to
  ``NotFound`` / ``AlreadyExists`` / ``Rejected`` and never retried.

Backoff is exponential with full jitter, at least as long as the server's Retry-After,
and every attempt shares one overall deadline kept below Entra's request patience.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

import aiohttp
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from yarl import URL

from adapters import telemetry
from adapters.base import AlreadyExists, NotFound, RateLimited, Rejected, Unavailable
from adapters.retry import Retryable, RetryPolicy, parse_retry_after
from adapters.telemetry import note_retry

log = logging.getLogger(__name__)

API_PREFIX = ("api", "v1")
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@dataclass
class ClientStats:
    calls: int = 0
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    ambiguous: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class _DeletedMeanwhile(Exception):
    """A retried DELETE found nothing left to delete: an earlier attempt did it."""


@dataclass
class _Call:
    method: str
    path: str
    retry_safe: bool
    deadline_at: float
    maybe_applied: bool = False


_SCIM_TYPES = {
    "invalid_json": "invalidSyntax",
    "invalid_value": "invalidValue",
    "address_immutable": "mutability",
    "domain_unknown": "invalidValue",
    "member_unknown": "invalidValue",
}


class CleanmailClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        policy: RetryPolicy | None = None,
        pool_limit: int = 32,
        rng: random.Random | None = None,
    ) -> None:
        url = URL(base_url)
        parts = [p for p in url.path.split("/") if p]
        if tuple(parts[-2:]) == API_PREFIX:
            parts = parts[:-2]
        self.base_url = url.with_path("/" + "/".join([*parts, *API_PREFIX]))
        self._api_key = api_key
        self.policy = policy or RetryPolicy()
        self._pool_limit = pool_limit
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self.stats = ClientStats()

    def __repr__(self) -> str:
        return f"CleanmailClient({str(self.base_url)!r})"

    async def start(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        # Idle connections are dropped well before typical server keep-alive limits so
        # a pooled connection is rarely reused just as the server closes it.
        connector = aiohttp.TCPConnector(limit=self._pool_limit, limit_per_host=self._pool_limit, keepalive_timeout=15)
        self._session = aiohttp.ClientSession(
            connector=connector,
            json_serialize=_dumps,
            headers={
                "X-API-Key": self._api_key,
                "Accept": "application/json",
                "User-Agent": "scim-mail-gateway",
            },
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, *segments: str) -> URL:
        """The URL of ``segments`` below ``/api/v1``, each one percent-encoded."""
        url = self.base_url
        for segment in segments:
            url = url / segment
        return url

    # --- public calls -----------------------------------------------------------------

    async def request(
        self,
        method: str,
        segments: Sequence[str],
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        retry_safe: bool | None = None,
        empty_is_not_found: bool = False,
        deadline: float | None = None,
    ) -> Any:
        """Perform one logical call; return the parsed JSON body or raise an AdapterError.

        ``empty_is_not_found`` marks endpoints that answer a missing object with 200 ``{}``;
        ``deadline`` overrides the policy's budget for this call.
        """
        if self._session is None:
            await self.start()
        loop = asyncio.get_running_loop()
        url = self.url(*segments)
        call = _Call(
            method=method,
            path=url.path,
            retry_safe=method in SAFE_METHODS if retry_safe is None else retry_safe,
            deadline_at=loop.time() + (self.policy.deadline if deadline is None else deadline),
        )
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
                    return await self._attempt(call, url, params, body, empty_is_not_found)
        except Retryable as failed:
            self.stats.failures += 1
            raise failed.final from None
        except _DeletedMeanwhile:
            return {"status": "ok"}
        except Exception:
            self.stats.failures += 1
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def get(self, *segments: str, params: Mapping[str, str | int] | None = None) -> Any:
        return await self.request("GET", segments, params=params)

    # --- retry plumbing ---------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        hint = failure.retry_after if isinstance(failure, Retryable) else None
        return self.policy.backoff(state.attempt_number, self._rng, hint)

    def _before_sleep(self, state: RetryCallState, call: _Call) -> None:
        self.stats.retries += 1
        note_retry()
        failure = state.outcome.exception() if state.outcome else None
        log.info(
            "cleanmail %s %s failed (%s); attempt %d in %.2fs",
            call.method,
            call.path,
            failure,
            state.attempt_number + 1,
            state.upcoming_sleep,
        )

    async def _attempt(
        self,
        call: _Call,
        url: URL,
        params: Mapping[str, str | int] | None,
        body: Any,
        empty_is_not_found: bool,
    ) -> Any:
        assert self._session is not None
        remaining = call.deadline_at - asyncio.get_running_loop().time()
        budget = min(self.policy.attempt_timeout, remaining)
        timeout = aiohttp.ClientTimeout(total=budget, connect=min(self.policy.connect_timeout, budget))
        telemetry.spend()
        self.stats.attempts += 1
        try:
            async with self._session.request(call.method, url, params=params, json=body, timeout=timeout) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as err:
            # Nothing reached the server, so even a create may be sent again.
            raise Retryable(Unavailable(f"cannot connect to Cleanmail: {err}")) from err
        except TimeoutError as err:
            self.stats.timeouts += 1
            raise self._unknown_outcome(call, f"no answer from Cleanmail within {budget:.1f}s") from err
        except aiohttp.ClientError as err:
            raise self._unknown_outcome(call, f"connection to Cleanmail failed: {err!r}") from err
        return self._interpret(call, status, headers.get("Retry-After"), raw, empty_is_not_found)

    def _unknown_outcome(self, call: _Call, detail: str, retry_after: float | None = None) -> Exception:
        """The failure to raise when a request was sent but its effect is unknown."""
        hint = retry_after if retry_after is not None else self.policy.fallback_retry_after
        if call.retry_safe:
            call.maybe_applied = True
            return Retryable(Unavailable(detail, retry_after=hint), retry_after)
        self.stats.ambiguous += 1
        return Unavailable(f"{detail}; the {call.method} may have been applied", retry_after=hint, may_apply=True)

    # --- response mapping -------------------------------------------------------------

    def _interpret(
        self, call: _Call, status: int, retry_after_header: str | None, raw: bytes, empty_is_not_found: bool
    ) -> Any:
        try:
            body = orjson.loads(raw) if raw.strip() else None
            parsed = True
        except ValueError:
            body, parsed = None, False
        if status == 429:
            self.stats.rate_limited += 1
            wait = parse_retry_after(retry_after_header)
            hint = wait if wait is not None else self.policy.fallback_retry_after
            raise Retryable(RateLimited("Cleanmail is rate-limiting us", retry_after=hint), wait)
        if status >= 500:
            reason = body.get("message") if isinstance(body, dict) else None
            detail = f"Cleanmail answered HTTP {status}" + (f": {reason}" if reason else "")
            raise self._unknown_outcome(call, detail, parse_retry_after(retry_after_header))
        if status in (401, 403):
            # Our configuration is wrong, not the SCIM client's request: report "unavailable".
            raise Unavailable(f"Cleanmail refused the API key (HTTP {status})")
        if isinstance(body, dict) and body.get("status") == "error":
            self._raise_error_body(call, status, body)
        if status == 404:
            if parsed:
                raise NotFound(f"{call.path} does not exist")
            raise Unavailable(f"{call.path} is not a Cleanmail endpoint (HTTP 404); check the base URL")
        if status >= 400:
            raise Rejected(f"Cleanmail refused the request (HTTP {status})")
        if not parsed:
            raise self._unknown_outcome(call, f"Cleanmail sent an unreadable reply (HTTP {status})")
        if empty_is_not_found and body == {}:
            raise NotFound(f"{call.path} does not exist")
        return body

    def _raise_error_body(self, call: _Call, status: int, body: Mapping[str, Any]) -> NoReturn:
        code = str(body.get("code", ""))
        message = str(body.get("message") or code or f"HTTP {status}")
        if code == "not_found":
            if call.method == "DELETE" and call.maybe_applied:
                # An earlier attempt of this very delete most likely succeeded.
                raise _DeletedMeanwhile
            raise NotFound(message)
        if code == "object_exists":
            raise AlreadyExists(str(body.get("existing", "")), f"Cleanmail: {message}")
        if code == "address_in_use":
            raise Rejected(f"Cleanmail: {message}", scim_type="uniqueness", status=409)
        if code in _SCIM_TYPES:
            raise Rejected(f"Cleanmail: {message}", scim_type=_SCIM_TYPES[code])
        if code == "unauthorized":
            raise Unavailable(f"Cleanmail refused the API key: {message}")
        if code in ("unavailable", "gateway_timeout"):
            raise self._unknown_outcome(call, f"Cleanmail: {message}")
        raise Rejected(f"Cleanmail refused the request: {message}")
