"""Reading the event log: the API shape of an event and the queries behind /v1/events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from billing.api.schemas import ListResponse
from billing.db.lookup import Filter, equals, get_owned, list_owned
from billing.db.pagination import Page, PageRequest
from webhooks import models


class EventData(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The event's payload: the object as it is after the change, and for updates the attributes it had before."""

    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class Event(msgspec.Struct, kw_only=True):
    """The payload delivered to webhook endpoints: `{id, type, created_at, data: {object}}` (SPEC §7)."""

    id: str
    object: Literal["event"] = "event"
    type: str
    created_at: datetime
    data: EventData
    test_clock: str | None = None


class EventList(ListResponse[Event]):
    pass


def render_event(event: models.Event) -> Event:
    return Event(
        id=event.id,
        type=event.type,
        created_at=event.created_at,
        data=EventData(object=event.data, previous_attributes=event.previous_attributes),
        test_clock=event.test_clock_id,
    )


async def get_event(session: AsyncSession, merchant_id: str, event_id: str) -> models.Event:
    return await get_owned(
        session, models.Event, event_id, merchant_id=merchant_id, prefix="evt", kind="event"
    )


async def list_events(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    event_type: str | None = None,
    object_id: str | None = None,
) -> Page[models.Event]:
    by_type: Filter = None
    if event_type is not None:
        # customer.* : every event type of that prefix.
        by_type = (
            models.Event.type.startswith(event_type[:-1])
            if event_type.endswith(".*")
            else models.Event.type == event_type
        )
    filters = (by_type, equals(models.Event.object_id, object_id))
    return await list_owned(session, models.Event, merchant_id, filters, page, prefix="evt")
