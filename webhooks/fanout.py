"""Fan-out in the event's own transaction: every event flushed to PostgreSQL gets one pending delivery per enabled
endpoint of its merchant that listens to its type, in the same flush. The event and its deliveries commit together
or not at all, so no event can be committed and then forgotten by the delivery machinery.

It is a SQLAlchemy `after_flush` hook rather than a step inside `record_event` because `record_event` is
synchronous (it only stages the event, and every use case calls it that way), while finding the endpoints needs
the database; at flush time the session is already talking to it, inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.orm import Session, UOWTransaction

from billing.clock import utc_now
from billing.ids import new_id
from webhooks.delivery_models import WebhookDelivery, WebhookEndpoint
from webhooks.models import Event

# Workers LISTEN on this channel; PostgreSQL delivers the notification only if the transaction commits.
NOTIFY_CHANNEL = "billing_webhooks"
ENDPOINT_EVENT_PREFIX = "webhook_endpoint."


def listens_to(enabled_events: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to `enabled_events` receives `event_type` (an exact type, or "*")."""
    return "*" in enabled_events or event_type in enabled_events


def receives(endpoint_id: str, enabled_events: Sequence[str], event_type: str, object_id: str) -> bool:
    """Whether an endpoint gets an event. An endpoint never receives events about itself: its own
    `webhook_endpoint.disabled` must not be sent to the endpoint that was just disabled for failing."""
    if event_type.startswith(ENDPOINT_EVENT_PREFIX) and object_id == endpoint_id:
        return False
    return listens_to(enabled_events, event_type)


def delivery_rows(events: Sequence[Event], endpoints: Sequence[Any]) -> list[dict[str, Any]]:
    """The delivery rows for `events` given the enabled endpoints (rows with id, merchant_id, enabled_events)."""
    now = utc_now()
    rows: list[dict[str, Any]] = []
    for item in events:
        for endpoint in endpoints:
            if endpoint.merchant_id == item.merchant_id and receives(
                endpoint.id, endpoint.enabled_events, item.type, item.object_id
            ):
                rows.append(
                    {
                        "id": new_id("wd"),
                        "merchant_id": item.merchant_id,
                        "endpoint_id": endpoint.id,
                        "event_id": item.id,
                        "event_type": item.type,
                        "origin": "event",
                        "status": "pending",
                        "attempt_count": 0,
                        "lease_token": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    return rows


@event.listens_for(Session, "after_flush")
def _fan_out(session: Session, flush_context: UOWTransaction) -> None:
    # After a flush, `session.new` still lists what this flush inserted.
    events = [obj for obj in session.new if isinstance(obj, Event)]
    if not events:
        return
    connection = session.connection()
    endpoints = connection.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.merchant_id, WebhookEndpoint.enabled_events).where(
            WebhookEndpoint.merchant_id.in_({e.merchant_id for e in events}),
            WebhookEndpoint.status == "enabled",
            WebhookEndpoint.deleted_at.is_(None),
        )
    ).all()
    rows = delivery_rows(events, endpoints)
    if rows:
        connection.execute(insert(WebhookDelivery), rows)
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
