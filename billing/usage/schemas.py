"""Usage events as the API takes them, and the ingestion answer.

The request side is decoded straight from the body bytes by `decode_batch` / `decode_event` (msgspec, no
per-event ORM object), with the event's fields left untyped on purpose: a wrong value in one event is reported by
its index (`errors[]`) while the others are accepted, instead of failing the whole request. JSON numbers decode
as exact `Decimal`s (never through a float), and `properties` stays the raw JSON text it was sent as, written to
the jsonb column without being rebuilt in Python. Since the handlers read the body themselves, the documented
shape of the body is given to OpenAPI by hand (billing/usage/routes.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

MAX_BATCH_EVENTS = 10_000
MAX_EVENT_ID_LENGTH = 255


class UsageEventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One event as sent; `ingest.validate_event` checks every field and names what is wrong."""

    id: Any = None
    customer: Any = None
    meter: Any = None
    timestamp: Any = None
    value: Any = None
    # The raw JSON text; empty when the field was not sent.
    properties: msgspec.Raw = msgspec.Raw(b"")


class UsageEventBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    events: list[UsageEventIn]


_batch_decoder = msgspec.json.Decoder(UsageEventBatchIn, float_hook=Decimal)
_event_decoder = msgspec.json.Decoder(UsageEventIn, float_hook=Decimal)


def decode_batch(body: bytes) -> UsageEventBatchIn:
    """Raises msgspec.ValidationError / DecodeError (with the JSON path) when the body is not a batch."""
    return _batch_decoder.decode(body)


def decode_event(body: bytes) -> UsageEventIn:
    return _event_decoder.decode(body)


class UsageEventError(msgspec.Struct, kw_only=True):
    """Why the event at `index` of the request was not accepted (nothing of it was stored)."""

    index: int
    code: str
    message: str
    param: str | None = None


class UsageEventBatch(msgspec.Struct, kw_only=True):
    """What happened to the events of one request: `accepted` were stored now; `duplicates` had an id this
    account already sent (in this request or an earlier one) and were not stored again; `errors` lists the
    refused events by their index in the request."""

    object: str = "usage_event_batch"
    accepted: int
    duplicates: int
    errors: list[UsageEventError]
