"""scim2-tester's full check suite against the live gateway.

scim2-tester drives a *synchronous* scim2-client. scim2-client's only network engine
needs httpx2, which the project does not depend on, so a small engine on the standard
library's http.client is defined here; it takes the same request arguments as the
httpx2 engine (``params``, ``json``, ``content``, ``headers``).
"""

from __future__ import annotations

import asyncio
import http.client
import json as jsonlib
from collections import Counter
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from scim2_client import BaseSyncSCIMClient, RequestNetworkException
from scim2_tester import CheckResult, Status, check_server

from gateway.http.app import create_app
from tests.conformance import live_server, shorten
from tests.conftest import TOKEN, make_settings

FAILING = (Status.ERROR, Status.CRITICAL)
# Suite-wide bound so a server that stops answering fails the test instead of hanging CI.
SUITE_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 30


class StdlibResponse:
    """The response shape scim2-client reads: status_code, headers.get(), text."""

    def __init__(self, status_code: int, headers: http.client.HTTPMessage, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<HTTP {self.status_code} {shorten(self.text, 300)}>"


class StdlibSCIMClient(BaseSyncSCIMClient):
    """A blocking scim2-client engine on http.client: one connection per request."""

    def __init__(self, base_url: str, headers: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        self.default_headers = headers

    def _url(self, url: str) -> str:
        if urlsplit(url).scheme:
            return url
        # Relative endpoints are appended to the base path, as httpx does.
        return f"{self.base_url}/{url.lstrip('/')}"

    def _stays_under_base_url(self, endpoint: str) -> bool:
        base = urlsplit(self.base_url)
        target = urlsplit(urljoin(self.base_url + "/", self._url(endpoint)))
        return (target.scheme, target.netloc) == (base.scheme, base.netloc) and (
            target.path.rstrip("/") + "/"
        ).startswith(base.path.rstrip("/") + "/")

    def _parse_json(self, response: Any) -> Any:
        return jsonlib.loads(response.text)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> StdlibResponse:
        target = urlsplit(self._url(url))
        path = target.path or "/"
        query = target.query
        if params:
            extra = urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            path = f"{path}?{query}"
        sent = {"Accept": "application/scim+json", **self.default_headers}
        body = content
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/scim+json"
        sent.update(headers or {})
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                          timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request(method.upper(), path, body=body, headers=sent)
            raw = conn.getresponse()
            return StdlibResponse(raw.status, raw.headers, raw.read())
        except OSError as exc:
            error = RequestNetworkException()
            error.add_note(f"{method} {path}: {exc!r}")
            raise error from exc
        finally:
            conn.close()


def run_suite(base_url: str) -> list[CheckResult]:
    client = StdlibSCIMClient(base_url, {"Authorization": f"Bearer {TOKEN}"})
    # No tag filter: every checker check_server orchestrates (discovery, CRUD, PATCH, misc).
    return check_server(client, raise_exceptions=False)


def describe(result: CheckResult) -> str:
    where = f"[{result.resource_type}] " if result.resource_type else ""
    line = f"{result.status.name:<10} {where}{result.title}: {result.reason or ''}"
    # PATCH checks wrap the client exception in their data; its notes hold the actual
    # validation message, which the reason leaves out.
    error = result.data.get("error") if isinstance(result.data, dict) else None
    if isinstance(error, BaseException):
        notes = getattr(error, "__notes__", None) or [str(error.__cause__ or "")]
        line += f"\n             cause: {shorten(' | '.join(notes))}"
    if result.data is not None and result.status in FAILING:
        line += f"\n             data: {shorten(result.data)}"
    return line


def report(results: list[CheckResult]) -> str:
    counts = Counter(r.status.name for r in results)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [f"scim2-tester: {len(results)} checks, {tally}"]
    failing = [r for r in results if r.status in FAILING]
    if failing:
        lines.append("FAILURES:")
        lines += ["  " + describe(r) for r in failing]
    deviations = [r for r in results if r.status == Status.DEVIATION]
    if deviations:
        lines.append("DEVIATIONS (SHOULD-level, not failing the test):")
        lines += ["  " + describe(r) for r in deviations]
    return "\n".join(lines)


async def test_scim2_tester_full_suite() -> None:
    app = create_app(make_settings())
    async with live_server(app) as base_url:
        results = await asyncio.wait_for(asyncio.to_thread(run_suite, base_url), SUITE_TIMEOUT_S)
    text = report(results)
    print(text)
    assert results, "scim2-tester ran no check"
    failing = [r for r in results if r.status in FAILING]
    assert not failing, text
