"""OpenAPI pieces used by every route: the bearer scheme, the error responses, the list parameters, and the
finishing that makes the document one a client generator can use (SPEC §3).

Written once here and applied to every schema and operation:
- a Struct's docstring is its schema's description, and a property without its own `Meta(description=...)` takes
  the shared wording of its name from `billing.api.field_docs` (with the schema's name where a word means
  something else in one place);
- every POST declares the `Idempotency-Key` header (`IDEMPOTENCY_KEY` below), added to the served document by
  the JSON render plugin, the one place every reader of /schema/openapi.json (and the /schema viewer) goes
  through.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

import msgspec

# The plugin that renders msgspec Structs (Litestar's own, not exported under a public name): subclassed to add
# the descriptions, nothing else changes.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, Example, Schema, SecurityScheme, Tag
from litestar.params import QueryParameter
from litestar.typing import FieldDefinition

from billing.api.field_docs import FIELD_DOCS, FIELD_DOCS_IN, FIELD_EXAMPLES, TAGS
from billing.api.schema_viewer import OfflineRedoc
from billing.api.schemas import ErrorBody, ErrorDetail, ListResponse

if TYPE_CHECKING:
    from litestar import Request
    from litestar._openapi.schema_generation import SchemaCreator

_ERROR_EXAMPLE = ErrorBody(
    error=ErrorDetail(
        type="invalid_request_error",
        code="parameter_unknown",
        message="Received unknown parameter: custmer. Remove it, or check its spelling against "
        "/schema/openapi.json.",
        param="custmer",
    )
)


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(
        ErrorBody,
        description=description,
        generate_examples=False,
        examples=[Example(summary="An unknown parameter", value=msgspec.to_builtins(_ERROR_EXAMPLE))],
    )


ERROR_RESPONSES: dict[int, ResponseSpec] = {
    400: _error("invalid_request_error: a parameter is missing or wrong; `param` names it"),
    401: _error("authentication_error: no key, or an invalid one"),
    404: _error("not_found: no such object for this merchant"),
    409: _error("conflict or idempotency_error"),
    500: _error("api_error: our fault; nothing was applied, retry"),
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

IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Any unique string up to 255 characters (a UUID is a good choice). A retry of this POST with the same key "
        "and body within 24 hours gets the first answer again instead of doing the work twice; the same key "
        "with another body is refused with idempotency_error (409)."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "example": "2f1b7c3e-6a0d-4d5e-9a57-0c1f4b8e2d11",
}


class DescribedStructs(StructSchemaPlugin):
    """Litestar's Struct schemas, with the Struct's docstring as description and the shared property words."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        name = struct.__name__
        if schema.description is None:
            schema.description = _docstring(struct)
        item = _list_item(struct)
        if item is not None and schema.properties is not None:
            # Litestar does not resolve the type parameter of a subclass of a generic Struct (`class
            # InvoiceList(ListResponse[Invoice])`): without this, `data` is an array of any object.
            schema.properties["data"] = schema_creator.for_field_definition(
                FieldDefinition.from_annotation(list[item])  # type: ignore[valid-type]
            )
        for key, prop in (schema.properties or {}).items():
            if prop.description is None:
                prop.description = FIELD_DOCS_IN.get(f"{name}.{key}") or FIELD_DOCS.get(key)
            if isinstance(prop, Schema) and not prop.examples and key in FIELD_EXAMPLES:
                prop.examples = [FIELD_EXAMPLES[key]]
        return schema


def _list_item(struct: type) -> type | None:
    """The item type of a list Struct (`CustomerList(ListResponse[Customer])` → Customer), or None."""
    for base in getattr(struct, "__orig_bases__", ()):
        if get_origin(base) is ListResponse:
            (item,) = get_args(base)
            return item  # type: ignore[no-any-return]
    return None


def _docstring(struct: type) -> str | None:
    """The Struct's own docstring, or that of the nearest base of ours (ListResponse for the lists)."""
    for cls in struct.__mro__:
        if cls is msgspec.Struct:
            return None
        if text := cls.__dict__.get("__doc__"):
            return inspect.cleandoc(text)
    return None


class FinishedJson(JsonRenderPlugin):
    """/schema/openapi.json: Litestar's document, with `Idempotency-Key` declared on every POST."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        declare_idempotency_key(openapi_schema)
        return super().render(request, openapi_schema)


def declare_idempotency_key(document: dict[str, Any]) -> None:
    """Add the header to every POST operation (once: the document is built once and cached)."""
    for path_item in document.get("paths", {}).values():
        operation = path_item.get("post")
        if operation is None:
            continue
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == IDEMPOTENCY_KEY["name"] for p in parameters):
            parameters.append(dict(IDEMPOTENCY_KEY))


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Billing engine API",
        version=version,
        description=(
            "Subscriptions, usage, invoices, payments and webhooks. Authenticate with "
            "`Authorization: Bearer sk_...`. Every POST accepts an `Idempotency-Key` header. Errors have the "
            'shape `{"error": {type, code, message, param}}`. Amounts are integers in the currency\'s minor unit '
            "(cents, fen; yen have none).\n\n订阅、用量、账单、支付与 Webhook。使用 `Authorization: Bearer sk_...` "
            "认证；每个 POST 都接受 `Idempotency-Key` 请求头；金额为货币最小单位的整数（分）。"
        ),
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(type="http", scheme="bearer", description="A secret key, sk_...")
            }
        ),
        security=[{"BearerAuth": []}],
        tags=[Tag(name=name, description=text) for name, text in TAGS.items()],
        path="/schema",
        render_plugins=[OfflineRedoc(), FinishedJson()],
    )
