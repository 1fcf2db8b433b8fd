"""The HTTP edge: domain errors become SCIM Error responses here, and only here."""

from __future__ import annotations

from adapters.base import AlreadyExists, BackendError, NotFound, RateLimited, Rejected, Unavailable
from adapters.telemetry import BudgetExhausted
from gateway.provisioning.errors import Backpressure
from gateway.scim.errors import ScimError

DEFAULT_RETRY_AFTER = 5.0
"""Seconds a client is asked to wait when nobody gave a better hint."""


def as_scim_error(exc: ScimError | BackendError) -> ScimError:
    """The SCIM answer to an error: status, scimType, detail and Retry-After."""
    if isinstance(exc, ScimError):
        return exc
    if isinstance(exc, NotFound):
        return ScimError(404, exc.detail)
    if isinstance(exc, AlreadyExists):
        return ScimError(409, exc.detail, "uniqueness")
    if isinstance(exc, BudgetExhausted):
        return ScimError(400, f"The request is too costly: {exc.reason}; narrow it down.", exc.scim_type)
    if isinstance(exc, Rejected):
        return ScimError(exc.status, f"The mail platform rejected the request: {exc.reason}", exc.scim_type)
    if isinstance(exc, Unavailable):
        retry_after = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
        status = 429 if isinstance(exc, RateLimited) else 503
        if isinstance(exc, Backpressure):
            detail = exc.detail
        elif status == 429:
            detail = f"The mail platform is rate-limiting the gateway: {exc.detail}"
        else:
            detail = f"The mail platform is unavailable: {exc.detail}"
        return ScimError(status, detail, retry_after=retry_after)
    return ScimError(500, f"Unexpected backend error: {exc.detail}")
