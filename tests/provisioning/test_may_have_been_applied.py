"""The one definition of "the write may have been applied", on which create-at-most-once rests."""

from __future__ import annotations

import asyncio

import pytest

from adapters.base import AlreadyExists, NotFound, RateLimited, Rejected, Unavailable, may_have_been_applied
from gateway.provisioning.errors import CircuitOpen, Overloaded
from gateway.scim.errors import ScimError


@pytest.mark.parametrize(
    ("error", "applied"),
    [
        (Unavailable("answer lost after sending", may_apply=True), True),
        (Unavailable("connection refused"), False),
        (RateLimited("slow down", retry_after=2), False),
        (NotFound("gone"), False),
        (AlreadyExists("a@x.ch"), False),
        (Rejected("quota exceeded"), False),
        (CircuitOpen("held back"), False),
        (Overloaded("queue full"), False),
        (asyncio.CancelledError(), True),
        (RuntimeError("adapter bug mid-call"), True),
        (ScimError(400, "not a backend error"), True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_which_failures_leave_the_outcome_open(error: BaseException, applied: bool) -> None:
    assert may_have_been_applied(error) is applied


def test_a_rate_limit_never_claims_a_write_may_have_landed() -> None:
    # RateLimited fixes may_apply: the platform refused the call unprocessed.
    assert RateLimited("x").may_apply is False
