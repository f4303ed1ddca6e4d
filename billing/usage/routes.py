"""HTTP routes of usage ingestion: read the body, call the use case, render.

Both routes decode the raw body themselves (billing.usage.schemas: exact decimals, per-event errors), so their
request body is described to OpenAPI here, by hand, through the operation class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.errors import InvalidRequest
from billing.usage.ingest import ingest_usage_events
from billing.usage.schemas import (
    MAX_BATCH_EVENTS,
    MAX_EVENT_ID_LENGTH,
    UsageEventBatch,
    UsageEventIn,
    decode_batch,
    decode_event,
)

# A batch of 10,000 events is about 2 MB with small properties; this leaves room for 1.6 KB per event. Read by
# ApiMiddleware (billing.api.middleware.ROUTE_BODY_LIMITS) as well as by Litestar.
BATCH_MAX_BODY_BYTES = 16 * 1024 * 1024


def _string(description: str, *, min_length: int | None = None, max_length: int | None = None) -> Schema:
    return Schema(
        type=OpenAPIType.STRING, description=description, min_length=min_length, max_length=max_length
    )


EVENT_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    title="UsageEventCreate",
    description=(
        "One usage event. A test-clock customer's events live in the clock's time: `timestamp` defaults to the "
        "clock's time and is checked against it."
    ),
    required=["id", "customer", "meter"],
    additional_properties=False,
    properties={
        "id": _string(
            "Your id for this event, 1 to 255 characters: the dedupe key. An id this account already sent "
            "(within 35 days at least) is counted as a duplicate and not stored again.",
            min_length=1,
            max_length=MAX_EVENT_ID_LENGTH,
        ),
        "customer": _string("The customer: its id (cus_...) or your external_id for it.", min_length=1),
        "meter": _string("The meter's code.", min_length=1),
        "timestamp": Schema(
            type=OpenAPIType.STRING,
            format="date-time",  # type: ignore[arg-type]
            description=(
                "When the usage happened, RFC 3339 with an offset (default: now). At most 35 days before now and "
                "5 minutes after it; it counts in the billing period that contains this instant."
            ),
        ),
        "value": Schema(
            one_of=[Schema(type=OpenAPIType.NUMBER, minimum=0), Schema(type=OpenAPIType.STRING)],
            description=(
                "The quantity: a number, or a decimal number as a string for exact values ('0.125'). Required "
                "for sum, max and last meters; zero or more, below 10^15, at most 12 decimal places."
            ),
        ),
        "properties": Schema(
            type=OpenAPIType.OBJECT,
            description=(
                "Your attributes of the event. A unique_count meter counts the distinct values of its "
                "`property` key, which must be present."
            ),
        ),
    },
)

BATCH_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    title="UsageEventBatchCreate",
    required=["events"],
    additional_properties=False,
    properties={
        "events": Schema(
            type=OpenAPIType.ARRAY,
            items=EVENT_SCHEMA,
            max_items=MAX_BATCH_EVENTS,
            description=f"Up to {MAX_BATCH_EVENTS:,} events, each accepted or refused on its own.",
        )
    },
)


def _json_body(schema: Schema) -> RequestBody:
    return RequestBody(required=True, content={"application/json": OpenAPIMediaType(schema=schema)})


@dataclass
class _BatchOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(BATCH_SCHEMA)


@dataclass
class _EventOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(EVENT_SCHEMA)


def _decode(decode: Any, body: bytes) -> Any:
    try:
        return decode(body)
    except msgspec.ValidationError as error:
        # The JSON path in the message ("- at `$.events[3]`") is turned into `param` by the API's handler.
        raise ValidationException(detail="", extra=[{"message": str(error), "source": "body"}]) from None
    except msgspec.DecodeError as error:
        raise InvalidRequest(
            f"The request body is not valid JSON ({error}). Send a JSON object as documented in "
            "/schema/openapi.json.",
            code="body_invalid",
        ) from None


class UsageEventsController(Controller):
    path = "/usage_events"
    tags = ["usage_events"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        operation_class=_EventOperation,
        summary="Report one usage event",
        description=(
            "Answers like a batch of one: `accepted` 1, or `duplicates` 1 when this id was already accepted. An "
            "invalid event is a 400 whose `code` is the one a batch would report for it (unknown_customer, "
            "unknown_meter, invalid_timestamp, timestamp_too_old, timestamp_in_future, missing_value, "
            "invalid_value, missing_property...)."
        ),
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], request: Request[Any, Any, Any]
    ) -> UsageEventBatch:
        event: UsageEventIn = _decode(decode_event, await request.body())
        result = await ingest_usage_events(ctx.session, ctx.merchant_id, [event], param_prefix="")
        if result.errors:
            error = result.errors[0]
            raise InvalidRequest(error.message, code=error.code, param=error.param)
        return result

    @post(
        "/batch",
        status_code=200,
        responses=ERROR_RESPONSES,
        operation_class=_BatchOperation,
        request_max_body_size=BATCH_MAX_BODY_BYTES,
        summary="Report up to 10,000 usage events",
        description=(
            "Not all-or-nothing: valid events are stored, each id once per account (later copies, in this "
            "request or another, count as `duplicates`), and invalid ones are listed in `errors` by their index "
            "with a code and a message. The events are billable as soon as this answers."
        ),
    )
    async def batch(
        self, ctx: NamedDependency[RequestContext], request: Request[Any, Any, Any]
    ) -> UsageEventBatch:
        batch = _decode(decode_batch, await request.body())
        if len(batch.events) > MAX_BATCH_EVENTS:
            raise InvalidRequest(
                f"A batch holds at most {MAX_BATCH_EVENTS:,} events and this one has {len(batch.events):,}. "
                f"Split it into batches of {MAX_BATCH_EVENTS:,} or fewer.",
                code="batch_too_large",
                param="events",
            )
        return await ingest_usage_events(ctx.session, ctx.merchant_id, batch.events)
