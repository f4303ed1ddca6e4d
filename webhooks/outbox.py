"""The transactional outbox: `record_event` adds an event to the caller's session, so it commits or rolls back
together with the state change it describes. There is no other way to create an event."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.ids import new_id
from webhooks.catalog import EVENT_TYPES
from webhooks.models import Event


def record_event(
    session: AsyncSession,
    *,
    merchant_id: str,
    event_type: str,
    obj: Any,
    clock: Clock,
    previous_attributes: dict[str, Any] | None = None,
) -> Event:
    """Stage `event_type` about `obj` (a msgspec Struct as the API renders it) in the current transaction."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type {event_type!r} is not in webhooks.catalog.EVENT_TYPES")
    data = msgspec.to_builtins(obj)
    event = Event(
        id=new_id("evt"),
        merchant_id=merchant_id,
        type=event_type,
        object_id=data["id"],
        data=data,
        created_at=clock.now(),
        test_clock_id=clock.test_clock_id,
        previous_attributes=previous_attributes,
    )
    session.add(event)
    return event
