"""Input every /v1 route refuses before its handler runs, by one rule derived from the handler itself:

- a query parameter the handler does not declare (`/v1/invoices?custmer=...` would otherwise list every invoice),
  as msgspec refuses an unknown body field;
- a JSON body value that fits the handler's type only through a lax conversion: Litestar converts bodies with
  `strict=False`, which takes `"amount": "50.00"` or `50.0` as 50 and `"true"` as true. A JSON API takes JSON
  types; a money amount is an integer of minor units, and a string there is a bug in the caller to report.

What a handler declares is what Litestar parses for it (its query kwargs, under their declared names, so
`QueryParameter(name="state")` and `name="created[gte]"` are accepted as written), plus the bracketed families it
reads itself (`usage[<meter code>]`), named in its `opt` with `query_families(...)`.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar._kwargs import KwargsModel
from litestar.enums import RequestEncodingType, ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.params import BodyKwarg
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from billing.errors import InvalidRequest

QUERY_FAMILIES = "query_families"
# A family `usage` accepts `usage[<anything>]`; the placeholder shown to people says what goes inside.
_FAMILY_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[<([^>]+)>\]")


def query_families(*families: str) -> dict[str, tuple[str, ...]]:
    """`opt=` for a handler that reads bracketed query parameters itself, each family written as it is shown to
    people, e.g. `query_families("usage[<meter code>]")` accepts `usage[api_calls]=...`."""
    for family in families:
        if not _FAMILY_NAME.fullmatch(family):
            raise ValueError(f"a query family looks like 'name[<what goes inside>]', not {family!r}")
    return {QUERY_FAMILIES: families}


class _HandlerInput:
    """What one handler accepts: its query parameter names, its families, and a strict decoder of its body."""

    def __init__(self, handler: HTTPRouteHandler, model: KwargsModel) -> None:
        self.names = frozenset(p.field_alias for p in model.expected_query_params)
        self.families: tuple[str, ...] = tuple(handler.opt.get(QUERY_FAMILIES, ()))
        self.family_prefixes = tuple(
            match.group(1) + "[" for match in (_FAMILY_NAME.fullmatch(f) for f in self.families) if match
        )
        self.body: tuple[Any, msgspec.json.Decoder[Any]] | None = None
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is not None and (
            not isinstance(data.kwarg_definition, BodyKwarg)
            or data.kwarg_definition.media_type == RequestEncodingType.JSON
        ):
            self.body = (data.annotation, msgspec.json.Decoder(data.annotation, strict=True))

    def accepts(self, name: str) -> bool:
        return name in self.names or (name.endswith("]") and name.startswith(self.family_prefixes))

    def listing(self) -> str:
        return ", ".join([*sorted(self.names), *self.families])


def _unknown_parameters(unknown: list[str], handler_input: _HandlerInput) -> InvalidRequest:
    if handler_input.names or handler_input.families:
        accepted = f"This route accepts: {handler_input.listing()}."
    else:
        accepted = "This route takes no query parameters."
    close = difflib.get_close_matches(unknown[0], sorted(handler_input.names), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    named = ", ".join(unknown)
    return InvalidRequest(
        f"Received unknown query parameter{'s' if len(unknown) > 1 else ''}: {named}.{hint} {accepted}",
        code="parameter_unknown",
        param=unknown[0],
    )


_EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_JSON_TYPES = {
    "int": "a JSON integer",
    "bool": "true or false",
    "str": "a string",
    "float": "a JSON number",
    "array": "a JSON array",
    "object": "a JSON object",
}


def _lax_value(error: msgspec.ValidationError) -> InvalidRequest:
    """The strict decoder's complaint about a value that a lax conversion would have taken, said so a person can
    fix the call."""
    raw = str(error)
    detail, _, at = raw.partition(" - at `$")
    param = at.rstrip("`").lstrip(".") or None
    field = re.split(r"[.\[]", param or "")[-1] if param else ""
    match = _EXPECTED.search(detail)
    expected, got = match.groups() if match else ("", "")
    expected_word = next((word for kind, word in _JSON_TYPES.items() if kind in expected.split(" | ")), None)
    got_word = {"str": "a string", "float": "a number with a fraction", "int": "an integer"}.get(
        got, f"`{got}`"
    )
    name = param or "the body"
    if expected_word == "a JSON integer" and "amount" in field:
        message = (
            f"'{name}' is an amount in the currency's minor unit and takes a JSON integer (5000 for 50.00 USD, "
            f"500 for 500 JPY), not {got_word}. Send the number of minor units without quotes."
        )
    elif expected_word is not None:
        message = f"'{name}' takes {expected_word}, not {got_word}. Send it without quotes."
    else:
        message = f"'{name}' has the wrong JSON type ({detail.replace('`', '')})."
    return InvalidRequest(message, code="parameter_invalid", param=param)


def _refuse_lax_body(body: bytes, annotation: Any, decoder: msgspec.json.Decoder[Any]) -> None:
    if not body:
        return
    try:
        decoder.decode(body)
    except msgspec.ValidationError as strict_error:
        try:
            msgspec.convert(msgspec.json.decode(body), annotation, strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError, ValueError):
            return  # wrong even when read laxly: Litestar's validation answers, naming the field
        raise _lax_value(strict_error) from None
    except (msgspec.DecodeError, RecursionError):
        return  # not JSON: Litestar answers


def _kwargs_model(app: Litestar, handler: HTTPRouteHandler) -> KwargsModel:
    """The model Litestar itself parses the handler's parameters with (built when the app was assembled)."""
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for candidate, model in route.route_handler_map.values():
                if candidate is handler:
                    return model
    raise LookupError(f"no route of the app serves {handler}")


def strict_input_middleware(app: ASGIApp) -> ASGIApp:
    """Litestar middleware for the /v1 router (it runs after routing, so it knows the handler)."""
    cache: dict[int, _HandlerInput] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if scope["type"] != ScopeType.HTTP or not isinstance(handler, HTTPRouteHandler):
            await app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        handler_input = cache.get(id(handler))
        if handler_input is None:
            handler_input = cache[id(handler)] = _HandlerInput(handler, _kwargs_model(request.app, handler))
        unknown = [name for name in dict.fromkeys(request.query_params) if not handler_input.accepts(name)]
        if unknown:
            raise _unknown_parameters(unknown, handler_input)
        if handler_input.body is not None:
            _refuse_lax_body(await request.body(), *handler_input.body)
        await app(scope, receive, send)

    return middleware
