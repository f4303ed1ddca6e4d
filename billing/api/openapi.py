"""OpenAPI pieces used by every route: the bearer scheme, the error responses, the list parameters."""

from __future__ import annotations

from typing import Annotated

from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import QueryParameter

from billing.api.schema_viewer import OfflineRedoc
from billing.api.schemas import ErrorBody

ERROR_RESPONSES: dict[int, ResponseSpec] = {
    400: ResponseSpec(
        ErrorBody, description="invalid_request_error: a parameter is missing or wrong; `param` names it"
    ),
    401: ResponseSpec(ErrorBody, description="authentication_error: no key, or an invalid one"),
    404: ResponseSpec(ErrorBody, description="not_found: no such object for this merchant"),
    409: ResponseSpec(ErrorBody, description="conflict or idempotency_error"),
    500: ResponseSpec(ErrorBody, description="api_error: our fault; nothing was applied, retry"),
}

Limit = Annotated[
    int, QueryParameter(ge=1, le=100, description="How many objects to return, 1 to 100 (default 10).")
]
StartingAfter = Annotated[
    str | None,
    QueryParameter(
        max_length=64, description="An object id: return the objects after it (older), for the next page."
    ),
]


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Billing engine API",
        version=version,
        description=(
            "Subscriptions, usage, invoices, payments and webhooks. Authenticate with "
            "`Authorization: Bearer sk_...`. Every POST accepts an `Idempotency-Key` header. Errors have the "
            'shape `{"error": {type, code, message, param}}`.'
        ),
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(type="http", scheme="bearer", description="A secret key, sk_...")
            }
        ),
        security=[{"BearerAuth": []}],
        path="/schema",
        render_plugins=[OfflineRedoc()],
    )
