"""Every failure leaves the API in one shape: `{"error": {type, code, message, param}}` (SPEC §3)."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)

from billing.db.availability import is_database_unavailable
from billing.errors import (
    ApiError,
    BillingError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    database_unavailable,
)
from plans.errors import CatalogError

log = logging.getLogger("billing.api")

JSON = "application/json"


def error_json(error: BillingError) -> bytes:
    return msgspec.json.encode(error.to_body())


def error_headers(error: BillingError) -> dict[str, str]:
    """The headers an error carries beside its body: when to retry a 503."""
    if isinstance(error, ServiceUnavailable):
        return {"Retry-After": str(error.retry_after_seconds)}
    return {}


def _render(error: BillingError, headers: dict[str, str] | None = None) -> Response[bytes]:
    headers = {**error_headers(error), **(headers or {})}
    return Response(content=error_json(error), status_code=error.status, media_type=JSON, headers=headers)


_CONSTRAINTS = (
    (re.compile(r"Expected int >= (-?\d+)"), "must be a whole number of at least {0}"),
    (re.compile(r"Expected int <= (-?\d+)"), "must be a whole number of at most {0}"),
    (re.compile(r"Expected str of length >= 1$"), "must not be empty"),
    (re.compile(r"Expected str of length >= (\d+)"), "must be at least {0} characters long"),
    (re.compile(r"Expected str of length <= (\d+)"), "must be at most {0} characters long"),
    (re.compile(r"Expected (?:array|object) of length >= 1$"), "must not be empty"),
    (re.compile(r"Expected (?:array|object) of length >= (\d+)"), "must hold at least {0} items"),
    (re.compile(r"Expected (?:array|object) of length <= (\d+)"), "must hold at most {0} items"),
    (re.compile(r"Invalid enum value (.+)$"), "{0} is not one of its accepted values"),
    (re.compile(r"Expected (\w+), got (\w+)"), "must be {0}, not {1}"),
)


def explain_constraint(raw: str) -> str:
    """msgspec's words for a broken constraint ("Expected int >= 1") as a sentence about the value."""
    plain = raw.replace("`", "")
    for pattern, template in _CONSTRAINTS:
        found = pattern.search(plain)
        if found:
            return template.format(*found.groups())
    return plain


def _validation_error(exc: ValidationException) -> BillingError:
    details = exc.extra if isinstance(exc.extra, list) else []
    first = details[0] if details and isinstance(details[0], dict) else {}
    raw = str(first.get("message") or exc.detail or "the request could not be read")
    source = first.get("source")
    key = str(first.get("key") or "")
    # Where the problem is: msgspec's "- at `$.a.b`" suffix, else Litestar's key ("data" is the body itself).
    location = ""
    if " - at `$" in raw:
        raw, _, at = raw.partition(" - at `$")
        location = at.rstrip("`").lstrip(".")
    elif key and key != "data":
        location = key.replace("[...]", "")
    for pattern, code, template in (
        (
            "unknown field `",
            "parameter_unknown",
            "Received unknown parameter: {param}. Remove it, or check its spelling against /schema/openapi.json.",
        ),
        ("missing required field `", "parameter_missing", "Missing required parameter: {param}."),
    ):
        if pattern in raw:
            field = raw.split(pattern, 1)[1].split("`", 1)[0]
            param = ".".join(p for p in (location, field) if p)
            return InvalidRequest(template.format(param=param), code=code, param=param)
    if source == "body" and not location:
        return InvalidRequest(
            f"The request body is not what this route takes ({raw.replace('`', '')}). Send a "
            "JSON object as documented in /schema/openapi.json.",
            code="body_invalid",
        )
    explained = "it does not have the expected format" if "matching regex" in raw else explain_constraint(raw)
    where = f" (in the {source})" if source in ("query", "path", "header", "cookie") else ""
    # The fix is in the schema: it lists the accepted values, lengths, ranges and formats of every parameter.
    return InvalidRequest(
        f"Invalid value for '{location}'{where}: {explained.replace('`', '')}. Send a value that fits "
        f"'{location}' as /schema/openapi.json describes it.",
        param=location or None,
    )


def _msgspec_detail_error(detail: str) -> BillingError:
    return _validation_error(ValidationException(detail="", extra=[{"message": detail, "source": "body"}]))


def handle_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    return _render(_validation_error(exc))


def handle_catalog_error(_: Request[Any, Any, Any], exc: CatalogError) -> Response[bytes]:
    """The pure packages raise CatalogError with the field path; to the API it is an invalid request."""
    message = exc.message if exc.message.endswith(".") else exc.message + "."
    return _render(InvalidRequest(message, code=exc.code, param=exc.param or None))


def handle_billing_error(_: Request[Any, Any, Any], exc: BillingError) -> Response[bytes]:
    return _render(exc)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if isinstance(exc, NotFoundException):
        error: BillingError = NotFound(
            f"Unrecognized request URL ({request.method} {request.url.path}). See /schema/openapi.json for the "
            "routes of this API.",
            code="route_not_found",
        )
    elif isinstance(exc, MethodNotAllowedException):
        error = InvalidRequest(
            f"{request.method} is not allowed on {request.url.path}. See /schema/openapi.json "
            "for the methods of each route.",
            code="method_not_allowed",
        )
        return Response(content=error_json(error), status_code=405, media_type=JSON)
    elif exc.status_code == 413:
        error = InvalidRequest("The request body is too large.", code="body_too_large")
        return Response(content=error_json(error), status_code=413, media_type=JSON)
    elif exc.status_code < 500:
        detail = str(exc.detail or "bad request")
        if "Object contains unknown field" in detail or "- at `$" in detail:
            error = _msgspec_detail_error(detail)
        else:
            error = InvalidRequest(
                f"{detail}. Check the request against /schema/openapi.json.", code="request_invalid"
            )
        return Response(
            content=error_json(error),
            status_code=exc.status_code if exc.status_code != 422 else 400,
            media_type=JSON,
        )
    else:
        return handle_unexpected(request, exc)
    return _render(error)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if is_database_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _render(database_unavailable())
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _render(
        ApiError(
            "Something went wrong on our side. The request was not applied; retry it, with the "
            "same Idempotency-Key if you sent one."
        )
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: handle_validation,
    BillingError: handle_billing_error,
    CatalogError: handle_catalog_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
