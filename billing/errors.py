"""Errors are part of the interface (SPEC §3): each has an HTTP status, a type, a code and a message a person
can act on. Domain code raises these; the HTTP layer only renders them."""

from __future__ import annotations

from typing import Any, ClassVar


class BillingError(Exception):
    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    default_code: ClassVar[str] = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.extra = extra or {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


class InvalidRequest(BillingError):
    status = 400
    type = "invalid_request_error"
    default_code = "parameter_invalid"


class PayloadTooLarge(BillingError):
    status = 413
    type = "invalid_request_error"
    default_code = "body_too_large"


class Unprocessable(BillingError):
    """Well-formed input that the current state of the objects cannot accept."""

    status = 422
    type = "invalid_request_error"
    default_code = "parameter_unprocessable"


class AuthenticationFailed(BillingError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(BillingError):
    status = 403
    type = "authentication_error"
    default_code = "insufficient_permissions"


class NotFound(BillingError):
    status = 404
    type = "not_found"
    default_code = "resource_missing"


class Conflict(BillingError):
    status = 409
    type = "conflict"
    default_code = "state_conflict"


class IdempotencyError(BillingError):
    status = 409
    type = "idempotency_error"
    default_code = "idempotency_key_reused"


class CardError(BillingError):
    status = 402
    type = "card_error"
    default_code = "card_declined"


class RateLimited(BillingError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limited"


class ApiError(BillingError):
    status = 500
    type = "api_error"
    default_code = "internal_error"


class ServiceUnavailable(BillingError):
    """A server we depend on cannot be reached right now; nothing was applied, and the same request (with the
    same Idempotency-Key) will succeed once it is back. Answered with Retry-After."""

    status = 503
    type = "api_error"
    default_code = "service_unavailable"
    retry_after_seconds: ClassVar[int] = 2


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The database is unavailable for a moment (a restart or a failover) and nothing was applied. Retry the "
        "request after the Retry-After seconds, with the same Idempotency-Key if you sent one.",
        code="database_unavailable",
    )


def not_found(kind: str, object_id: str, param: str | None = None) -> NotFound:
    """The one way to say an object does not exist (or belongs to another merchant: same answer, no leak)."""
    return NotFound(
        f"No such {kind}: '{object_id}'. Check the id, and that you use the API key of the "
        f"account that created it.",
        param=param,
    )
