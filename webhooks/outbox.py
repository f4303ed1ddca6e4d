"""The transactional outbox: `record_event` adds an event to the caller's session, so it commits or rolls back
together with the state change it describes. There is no other way to create an event.

When the session flushes the event, webhooks.fanout adds its deliveries (one per enabled endpoint listening to
its type) in the same transaction, so the event and the work of delivering it commit together."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

import webhooks.fanout  # noqa: F401 - installs the fan-out hook on every session
from billing.clock import Clock
from billing.ids import new_id
from webhooks.catalog import EVENT_TYPES
from webhooks.models import Event
from webhooks.payloads import redact

log = logging.getLogger("billing.webhooks")


def record_event(
    session: AsyncSession,
    *,
    merchant_id: str,
    event_type: str,
    obj: Any,
    clock: Clock,
    previous_attributes: dict[str, Any] | None = None,
    object_id: str | None = None,
) -> Event:
    """Stage `event_type` about `obj` (a msgspec Struct as the API renders it) in the current transaction.

    Anything in the object that looks like a card number or a secret is replaced by "[redacted]" (webhooks.payloads):
    events leave the engine, and must never carry those."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type {event_type!r} is not in webhooks.catalog.EVENT_TYPES")
    data, redacted = redact(msgspec.to_builtins(obj))
    if previous_attributes is not None:
        previous_attributes, redacted_before = redact(previous_attributes, "previous_attributes")
        redacted += redacted_before
    if redacted:
        log.warning("event %s about %s: redacted %s", event_type, data.get("id"), ", ".join(redacted))
    event = Event(
        id=new_id("evt"),
        merchant_id=merchant_id,
        type=event_type,
        # An object without an id of its own (an upcoming invoice) names the object it is about.
        object_id=object_id or data["id"],
        data=data,
        created_at=clock.now(),
        test_clock_id=clock.test_clock_id,
        previous_attributes=previous_attributes,
    )
    session.add(event)
    return event


def previous_attributes(before: dict[str, Any], after: Any) -> dict[str, Any]:
    """The fields of `before` (builtins of the API object) whose value differs in `after` (the new object): an
    `*.updated` event's previous_attributes."""
    after_builtins = msgspec.to_builtins(after)
    return {key: value for key, value in before.items() if after_builtins.get(key) != value}
