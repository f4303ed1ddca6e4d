"""Webhook endpoint use cases: one function each, in the caller's transaction, the event staged inside it.

Also the read side of delivery (an endpoint's deliveries with their attempts) and redelivery of an event."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import msgspec
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import SYSTEM_CLOCK, utc_now
from billing.db.lookup import equals, list_owned
from billing.db.pagination import Page, PageRequest
from billing.errors import Conflict, InvalidRequest, Unprocessable, not_found
from billing.ids import is_valid_id, new_id
from billing.metadata import merge_metadata, validate_metadata
from webhooks import schemas
from webhooks.catalog import EVENT_TYPES
from webhooks.delivery_models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from webhooks.fanout import NOTIFY_CHANNEL, receives
from webhooks.models import Event
from webhooks.outbox import previous_attributes, record_event
from webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from webhooks.secret_box import SecretBox
from webhooks.signing import SECRET_PREFIX, generate_secret
from webhooks.urls import UnsafeUrl, check_endpoint_url

# Stripe's limit: it bounds the fan-out work of every state change.
MAX_ENDPOINTS = 16
# After a rotation the old secret keeps signing for this long, so receivers can switch without losing a message.
ROTATION_OVERLAP = timedelta(hours=24)


def render_endpoint(endpoint: WebhookEndpoint, *, secret: str | None = None) -> schemas.WebhookEndpoint:
    """The endpoint as the API shows it; with `secret` (its plaintext, known only when created or rotated) once."""
    expires = endpoint.previous_secret_expires_at
    return schemas.WebhookEndpoint(
        id=endpoint.id,
        created_at=endpoint.created_at,
        url=endpoint.url,
        description=endpoint.description,
        enabled_events=list(endpoint.enabled_events),
        status="enabled" if endpoint.status == "enabled" else "disabled",
        disabled_reason=endpoint.disabled_reason,  # type: ignore[arg-type]
        previous_secret_expires_at=expires if endpoint.previous_secret is not None else None,
        metadata=endpoint.metadata_,
        secret=secret if secret is not None else msgspec.UNSET,
    )


def render_attempt(attempt: WebhookDeliveryAttempt) -> schemas.WebhookDeliveryAttempt:
    return schemas.WebhookDeliveryAttempt(
        id=attempt.id,
        attempted_at=attempt.attempted_at,
        succeeded=attempt.succeeded,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
        response_body=attempt.response_body,
        next_attempt_at=attempt.next_attempt_at,
    )


def render_delivery(
    delivery: WebhookDelivery, attempts: Iterable[WebhookDeliveryAttempt]
) -> schemas.WebhookDelivery:
    return schemas.WebhookDelivery(
        id=delivery.id,
        created_at=delivery.created_at,
        endpoint=delivery.endpoint_id,
        event=delivery.event_id,
        event_type=delivery.event_type,
        origin="redelivery" if delivery.origin == "redelivery" else "event",
        status=delivery.status,  # type: ignore[arg-type]
        attempt_count=delivery.attempt_count,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        completed_at=delivery.completed_at,
        last_error=delivery.last_error,
        attempts=[render_attempt(a) for a in attempts],
    )


def _no_nul(value: str, param: str) -> str:
    if "\x00" in value:
        raise InvalidRequest(f"{param} cannot contain NUL characters.", param=param)
    return value


def _metadata(metadata: dict[str, str]) -> dict[str, str]:
    for key, value in metadata.items():
        _no_nul(key, "metadata")
        _no_nul(value, f"metadata[{key}]")
    return metadata


def validate_enabled_events(enabled_events: Sequence[str]) -> list[str]:
    """Known event types without duplicates, in the order given; ["*"] when "*" is among them."""
    if not enabled_events:
        raise InvalidRequest(
            'enabled_events needs at least one event type, or ["*"] for every type.', param="enabled_events"
        )
    if "*" in enabled_events:
        return ["*"]
    unique: list[str] = []
    for index, event_type in enumerate(enabled_events):
        if event_type not in EVENT_TYPES:
            raise InvalidRequest(
                f"{event_type[:64]!r} is not an event type this engine emits. Use a type listed in "
                'docs/webhooks.md (e.g. "customer.created"), or ["*"] for every type.',
                param=f"enabled_events[{index}]",
            )
        if event_type not in unique:
            unique.append(event_type)
    return unique


async def _checked_url(url: str, *, production: bool) -> str:
    try:
        return (await check_endpoint_url(_no_nul(url, "url"), production=production)).url
    except UnsafeUrl as exc:
        raise InvalidRequest(str(exc), code="url_invalid", param="url") from None


async def get_endpoint(
    session: AsyncSession,
    merchant_id: str,
    endpoint_id: str,
    *,
    for_update: bool = False,
    param: str | None = None,
) -> WebhookEndpoint:
    """The merchant's live endpoint with that id; NotFound for another merchant's, a deleted or an unknown one."""
    if not is_valid_id(endpoint_id, "we"):
        raise not_found("webhook endpoint", endpoint_id, param)
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id,
        WebhookEndpoint.merchant_id == merchant_id,
        WebhookEndpoint.deleted_at.is_(None),
    )
    if for_update:
        stmt = stmt.with_for_update()
    endpoint = await session.scalar(stmt)
    if endpoint is None:
        raise not_found("webhook endpoint", endpoint_id, param)
    return endpoint


async def create_endpoint(
    session: AsyncSession,
    merchant_id: str,
    params: WebhookEndpointCreate,
    *,
    production: bool,
    box: SecretBox,
) -> tuple[WebhookEndpoint, str]:
    """A new enabled endpoint and its fresh secret, stored sealed: the plaintext returned here is the only one
    shown (render it with `secret=`)."""
    url = await _checked_url(params.url, production=production)
    enabled_events = validate_enabled_events(params.enabled_events)
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.deleted_at.is_(None))
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise InvalidRequest(
            f"An account can have at most {MAX_ENDPOINTS} webhook endpoints. Delete one you no longer use, or "
            "subscribe an existing endpoint to more event types.",
            code="webhook_endpoint_limit",
        )
    now = SYSTEM_CLOCK.now()
    endpoint_id, secret = new_id("we"), generate_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        merchant_id=merchant_id,
        url=url,
        description=_no_nul(params.description, "description") if params.description is not None else None,
        enabled_events=enabled_events,
        status="enabled",
        secret=await box.seal_secret(secret, endpoint_id),
        metadata_=_metadata(validate_metadata(params.metadata)),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="webhook_endpoint.created",
        obj=render_endpoint(endpoint),
        clock=SYSTEM_CLOCK,
    )
    return endpoint, secret


async def _cancel_pending(session: AsyncSession, endpoint_id: str, reason: str) -> int:
    """Cancel the endpoint's pending deliveries (they stay redeliverable through POST /v1/events/{id}/redeliver)."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="canceled", last_error=reason, lease_until=None, completed_at=utc_now())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def update_endpoint(
    session: AsyncSession,
    merchant_id: str,
    endpoint_id: str,
    params: WebhookEndpointUpdate,
    *,
    production: bool,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, merchant_id, endpoint_id, for_update=True)
    before = msgspec.to_builtins(render_endpoint(endpoint))
    if params.url is not msgspec.UNSET:
        endpoint.url = await _checked_url(params.url, production=production)
    if params.enabled_events is not msgspec.UNSET:
        endpoint.enabled_events = validate_enabled_events(params.enabled_events)
    if params.description is not msgspec.UNSET:
        endpoint.description = (
            _no_nul(params.description, "description") if params.description is not None else None
        )
    if params.metadata is not msgspec.UNSET:
        endpoint.metadata_ = _metadata(merge_metadata(endpoint.metadata_, params.metadata))
    if params.disabled is True and endpoint.status == "enabled":
        endpoint.status = "disabled"
        endpoint.disabled_reason = "requested"
        await _cancel_pending(session, endpoint.id, "canceled: the endpoint was disabled")
    elif params.disabled is False and endpoint.status == "disabled":
        endpoint.status = "enabled"
        endpoint.disabled_reason = None
        endpoint.failing_since = None
    after = render_endpoint(endpoint)
    previous = previous_attributes(before, after)
    if previous:
        endpoint.updated_at = SYSTEM_CLOCK.now()
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="webhook_endpoint.updated",
            obj=after,
            clock=SYSTEM_CLOCK,
            previous_attributes=previous,
        )
    return endpoint


async def delete_endpoint(session: AsyncSession, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """Soft delete: the row stays for its delivery log; pending deliveries are canceled; the id answers 404."""
    endpoint = await get_endpoint(session, merchant_id, endpoint_id, for_update=True)
    endpoint.deleted_at = SYSTEM_CLOCK.now()
    await _cancel_pending(session, endpoint.id, "canceled: the endpoint was deleted")
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="webhook_endpoint.deleted",
        obj=render_endpoint(endpoint),
        clock=SYSTEM_CLOCK,
    )
    return endpoint


async def rotate_secret(
    session: AsyncSession, merchant_id: str, endpoint_id: str, *, box: SecretBox
) -> tuple[WebhookEndpoint, str]:
    """A new secret (returned in plaintext, this once); the current one keeps signing beside it for 24 h (both
    signatures in the header), so the receiver can deploy the new one without rejecting a message in between."""
    endpoint = await get_endpoint(session, merchant_id, endpoint_id, for_update=True)
    secret = generate_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utc_now() + ROTATION_OVERLAP
    endpoint.secret = await box.seal_secret(secret, endpoint.id)
    endpoint.updated_at = SYSTEM_CLOCK.now()
    await session.flush()
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="webhook_endpoint.secret_rotated",
        obj=render_endpoint(endpoint),
        clock=SYSTEM_CLOCK,
    )
    return endpoint, secret


async def disable_endpoint(session: AsyncSession, endpoint: WebhookEndpoint, reason: str) -> None:
    """The engine gives up on an endpoint (`gone`: it answered 410; `failing`: no success for three days):
    disable it, cancel what is pending, and record webhook_endpoint.disabled, all in the caller's transaction."""
    endpoint.status = "disabled"
    endpoint.disabled_reason = reason
    endpoint.updated_at = SYSTEM_CLOCK.now()
    await _cancel_pending(session, endpoint.id, f"canceled: the endpoint was disabled ({reason})")
    await session.flush()
    record_event(
        session,
        merchant_id=endpoint.merchant_id,
        event_type="webhook_endpoint.disabled",
        obj=render_endpoint(endpoint),
        clock=SYSTEM_CLOCK,
    )


async def list_endpoints(session: AsyncSession, merchant_id: str, page: PageRequest) -> Page[WebhookEndpoint]:
    live = (WebhookEndpoint.deleted_at.is_(None),)
    return await list_owned(session, WebhookEndpoint, merchant_id, live, page, prefix="we")


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[str]
) -> dict[str, list[WebhookDeliveryAttempt]]:
    """Every attempt of these deliveries, oldest first, by delivery id (one query)."""
    grouped: dict[str, list[WebhookDeliveryAttempt]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        rows = await session.scalars(
            select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookDeliveryAttempt.seq)
        )
        for attempt in rows:
            grouped[attempt.delivery_id].append(attempt)
    return grouped


async def render_deliveries(
    session: AsyncSession, deliveries: Sequence[WebhookDelivery]
) -> list[schemas.WebhookDelivery]:
    attempts = await attempts_of(session, [d.id for d in deliveries])
    return [render_delivery(d, attempts[d.id]) for d in deliveries]


async def list_deliveries(
    session: AsyncSession,
    merchant_id: str,
    endpoint_id: str,
    page: PageRequest,
    *,
    status: str | None = None,
    event_id: str | None = None,
) -> Page[WebhookDelivery]:
    """The endpoint's deliveries, newest first (a deleted endpoint's log stays readable by its owner)."""
    if not is_valid_id(endpoint_id, "we"):
        raise not_found("webhook endpoint", endpoint_id)
    owner = await session.scalar(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.merchant_id == merchant_id
        )
    )
    if owner is None:
        raise not_found("webhook endpoint", endpoint_id)
    filters = (
        WebhookDelivery.endpoint_id == endpoint_id,
        equals(WebhookDelivery.status, status),
        equals(WebhookDelivery.event_id, event_id),
    )
    return await list_owned(session, WebhookDelivery, merchant_id, filters, page, prefix="wd")


async def redeliver_event(
    session: AsyncSession, merchant_id: str, event_id: str, *, endpoint_id: str | None = None
) -> list[WebhookDelivery]:
    """Send an event again, now: to one endpoint, or to every enabled endpoint that listens to its type (also
    endpoints created after the event). The receiver sees the same webhook-id as before, so it can tell a
    redelivery from a new event. A delivery still pending is made due now instead of doubled."""
    if not is_valid_id(event_id, "evt"):
        raise not_found("event", event_id)
    event = await session.scalar(select(Event).where(Event.id == event_id, Event.merchant_id == merchant_id))
    if event is None:
        raise not_found("event", event_id)
    if endpoint_id is not None:
        endpoint = await get_endpoint(session, merchant_id, endpoint_id, for_update=True, param="endpoint")
        if endpoint.status != "enabled":
            raise Conflict(
                f"Webhook endpoint {endpoint.id} is disabled. Enable it (PATCH with disabled=false), then "
                "redeliver.",
                code="webhook_endpoint_disabled",
                param="endpoint",
            )
        if event.type.startswith("webhook_endpoint.") and event.object_id == endpoint.id:
            raise Unprocessable(
                "An endpoint does not receive events about itself. Choose another endpoint.", param="endpoint"
            )
        targets = [endpoint]
    else:
        candidates = await session.scalars(
            select(WebhookEndpoint)
            .where(
                WebhookEndpoint.merchant_id == merchant_id,
                WebhookEndpoint.status == "enabled",
                WebhookEndpoint.deleted_at.is_(None),
            )
            .order_by(WebhookEndpoint.seq)
            .with_for_update()
        )
        targets = [e for e in candidates if receives(e.id, e.enabled_events, event.type, event.object_id)]
        if not targets:
            raise Unprocessable(
                f"No enabled webhook endpoint listens to {event.type}. Create one, enable one, or add "
                f"{event.type} to an endpoint's enabled_events, then redeliver.",
                code="no_webhook_endpoint",
            )
    now = utc_now()
    deliveries: list[WebhookDelivery] = []
    for target in targets:
        pending = await session.scalar(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.event_id == event.id,
                WebhookDelivery.endpoint_id == target.id,
                WebhookDelivery.status == "pending",
            )
            .order_by(WebhookDelivery.seq.desc())
            .limit(1)
            .with_for_update()
        )
        if pending is not None:
            pending.next_attempt_at = min(pending.next_attempt_at or now, now)
            deliveries.append(pending)
            continue
        delivery = WebhookDelivery(
            id=new_id("wd"),
            merchant_id=merchant_id,
            endpoint_id=target.id,
            event_id=event.id,
            event_type=event.type,
            origin="redelivery",
            status="pending",
            attempt_count=0,
            lease_token=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(delivery)
        deliveries.append(delivery)
    await session.flush()
    await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
    return deliveries


def deliveries_url(endpoint_id: str) -> str:
    return f"/v1/webhook_endpoints/{endpoint_id}/deliveries"


async def seal_plaintext_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Seal the secrets of endpoints created before secrets were stored sealed (run at start-up; idempotent)."""
    rows = (
        await session.scalars(
            select(WebhookEndpoint)
            .where(
                or_(
                    WebhookEndpoint.secret.startswith(SECRET_PREFIX),
                    WebhookEndpoint.previous_secret.startswith(SECRET_PREFIX),
                )
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    for endpoint in rows:
        if endpoint.secret.startswith(SECRET_PREFIX):
            endpoint.secret = await box.seal_secret(endpoint.secret, endpoint.id)
        if endpoint.previous_secret and endpoint.previous_secret.startswith(SECRET_PREFIX):
            endpoint.previous_secret = await box.seal_secret(endpoint.previous_secret, endpoint.id)
    return len(rows)
